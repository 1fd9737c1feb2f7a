"""Writers for recordings the project makes (simulated samples, converted streams)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .encoders import encode_evt3
from .types import SensorSize


def raw_evt3_header(size: SensorSize) -> bytes:
    """The ASCII header of a Prophesee RAW file holding EVT 3.0 words."""
    lines = [
        "% evt 3.0",
        f"% format EVT3;height={size.height};width={size.width}",
        f"% geometry {size.width}x{size.height}",
        "% integrator_name event_clip_ros",
        "% end",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_raw_evt3(path: str | Path, chunks: Iterable[np.ndarray], size: SensorSize) -> int:
    """Write time-ordered event chunks as a Prophesee RAW EVT 3.0 file; return the event count.

    The file is written to ``path.tmp`` and renamed at the end, so an interrupted
    run never leaves a truncated recording under the final name.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    prev_t_us: int | None = None  # the encoder bridges 24-bit wraps between chunks
    with open(tmp, "wb") as f:
        f.write(raw_evt3_header(size))
        for ev in chunks:
            if not ev.size:
                continue
            f.write(encode_evt3(ev, prev_t_us))
            n += ev.size
            prev_t_us = int(ev["t"][-1])
    tmp.replace(path)
    return n
