"""Input checks shared by the encoders: an encoder refuses what it cannot represent."""

from __future__ import annotations

import numpy as np

from ..types import EVENT_DTYPE


def validate_events(events: np.ndarray, encoding: str, max_x: int, max_y: int) -> None:
    """Raise ValueError unless ``events`` is an :data:`EVENT_DTYPE` array, sorted by t,
    with 0/1 polarities, t >= 0 and x <= max_x, y <= max_y (the encoding's field widths)."""
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise ValueError(f"{encoding}: events must be a 1-D EVENT_DTYPE array")
    if events.size == 0:
        return
    t = events["t"]
    if t[0] < 0:
        raise ValueError(f"{encoding}: negative event time {t[0]} us")
    if np.any(t[1:] < t[:-1]):
        raise ValueError(f"{encoding}: events must be sorted by t")
    if int(events["x"].max()) > max_x or int(events["y"].max()) > max_y:
        raise ValueError(f"{encoding}: x must be <= {max_x} and y <= {max_y}")
    if int(events["p"].max()) > 1:
        raise ValueError(f"{encoding}: polarity must be 0 or 1")
