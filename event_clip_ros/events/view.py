"""A window's events as a colour picture for people: polarity colours, robust scaling.

The model's frame (:mod:`event_clip_ros.events.frames`) divides counts by the
busiest pixel's count + 1. On real sensors one hot or very busy pixel sets that
maximum and the rest of the picture is nearly black. This view is for looking
at, never for the model:

* ON and OFF events get their own colour (``on_rgb``, ``off_rgb``) over a
  ``background_rgb``; a pixel with both mixes the two by their shares;
* a pixel's strength is its count (ON + OFF) over the ``percentile`` of the
  counts of the pixels that fired (99 by default, so 1% of the pixels saturate
  whatever one pixel does), to the power ``gamma`` (0.5 lifts single events),
  capped at 1.

Coordinates are rescaled to ``out_size`` as the model's frames do
(``x * out_w // width``), so a view and a model frame of one window line up
pixel for pixel. The result is an (H, W, 3) uint8 RGB image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .types import EVENT_DTYPE, SensorSize

RGB = tuple[int, int, int]

#: What the frame modes show (the node's ``frame_mode``, ``event-clip render --view``).
FRAME_MODES: dict[str, str] = {
    "model": "the model's input frame (mono8, its representation's normalisation; one hot pixel can darken it)",
    "view": "a picture for people (rgb8: ON blue, OFF red on white, scaled by the 99th percentile of the "
            "active pixels' counts); never the model's input",
}


@dataclass(frozen=True)
class ViewConfig:
    """How a window becomes a picture (see module doc)."""

    out_size: tuple[int, int] | None = None  #: (height, width); None = sensor size
    percentile: float = 99.0  #: counts at this percentile of the active pixels (and above) show at full strength
    gamma: float = 0.5  #: strength = (count / scale) ** gamma, capped at 1
    on_rgb: RGB = (31, 119, 180)  #: ON events (brightness up): blue
    off_rgb: RGB = (214, 39, 40)  #: OFF events: red
    background_rgb: RGB = (255, 255, 255)  #: pixels without events

    def __post_init__(self) -> None:
        if not (math.isfinite(self.percentile) and 0.0 < self.percentile <= 100.0):
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile!r}")
        if not (math.isfinite(self.gamma) and self.gamma > 0.0):
            raise ValueError(f"gamma must be a positive finite number, got {self.gamma!r}")
        for name in ("on_rgb", "off_rgb", "background_rgb"):
            colour = getattr(self, name)
            if len(colour) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in colour):
                raise ValueError(f"{name} must be three integers in 0..255, got {colour!r}")
        if self.out_size is not None and (len(self.out_size) != 2 or not all(0 < int(v) <= 65535 for v in self.out_size)):
            raise ValueError(f"out_size must be (height, width) in pixels, got {self.out_size!r}")


def polarity_counts(events: np.ndarray, size: SensorSize, out_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ON counts, OFF counts), each (H, W) int64 at ``out_size`` (default: the sensor size).

    ValueError for events outside ``size`` (the wrong sensor size was given), as the model's frames.
    """
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise ValueError("expected a 1-D EVENT_DTYPE array")
    out_h, out_w = out_size if out_size is not None else (size.height, size.width)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if x.size and (int(x.max()) >= size.width or int(y.max()) >= size.height):
        raise ValueError(f"events outside the {size.width}x{size.height} sensor: wrong sensor size?")
    flat = (y * out_h // size.height) * out_w + x * out_w // size.width
    on = events["p"] != 0
    n = out_h * out_w
    return (np.bincount(flat[on], minlength=n).reshape(out_h, out_w),
            np.bincount(flat[~on], minlength=n).reshape(out_h, out_w))


def build_view(events: np.ndarray, size: SensorSize, config: ViewConfig = ViewConfig()) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of one window's events (see module doc)."""
    on, off = polarity_counts(events, size, config.out_size)
    total = on + off
    active = total[total > 0]
    image = np.empty((*total.shape, 3), dtype=np.float32)
    image[:] = np.asarray(config.background_rgb, dtype=np.float32)
    if active.size:
        scale = max(float(np.percentile(active, config.percentile)), 1.0)
        strength = np.minimum(total / scale, 1.0) ** config.gamma
        share_on = np.divide(on, total, out=np.zeros(total.shape), where=total > 0)
        colour = (share_on[..., None] * np.asarray(config.on_rgb, dtype=np.float64)
                  + (1.0 - share_on[..., None]) * np.asarray(config.off_rgb, dtype=np.float64))
        s = strength[..., None]
        image = (1.0 - s) * image + s * colour
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
