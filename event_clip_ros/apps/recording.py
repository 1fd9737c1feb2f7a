"""Windows of a recording, batched and embedded: the path from a file to embeddings.

The ``classify``, ``anomaly`` and ``retrieve`` commands read recordings through these
helpers (bag evaluation goes through the node's own Detector instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..events.noise import NoiseFilter, NoiseFilterConfig
from ..events.readers import open_events
from ..events.types import SensorSize
from ..events.windows import Window, WindowConfig, iter_windows
from ..model.event_clip import EventClip


def batched(windows: Iterable[Window], batch_size: int) -> Iterator[list[Window]]:
    """Group windows into lists of at most ``batch_size``."""
    batch: list[Window] = []
    for w in windows:
        batch.append(w)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_windows(
    model: EventClip, windows: Iterable[Window], size: SensorSize, batch_size: int = 32
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    """Yield (windows, (B, D) normalised embeddings) batch by batch."""
    for batch in batched(windows, batch_size):
        yield batch, model.embed_windows([w.events for w in batch], size, batch_size=batch_size)


def embed_recording(
    model: EventClip,
    path: str | Path,
    windows: WindowConfig,
    topic: str | None = None,
    size: SensorSize | None = None,
    batch_size: int = 32,
    noise: NoiseFilterConfig = NoiseFilterConfig(),
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    """Open a recording, cut it into windows on sensor time (after the ``noise`` filters, off by default)
    and embed them batch by batch."""
    with open_events(path, topic=topic, size=size) as reader:
        noise_filter = NoiseFilter(noise) if noise.enabled else None
        chunks = iter_windows(reader.chunks(), windows, noise_filter, reader.size)
        yield from embed_windows(model, chunks, reader.size, batch_size)
