"""The official training augmentations, on event arrays and on batches of frames.

Events (numpy, one sample; ``data/imagenet_dataset.py`` of the paper's code,
from ECDP): :func:`random_window` (N consecutive events, the loader's
``slice_method='random'``), then in :func:`augment_events` the official
``base_augment`` order: :func:`random_time_flip`, :func:`random_shift`,
:func:`add_correlated_events`. Every function takes an explicit
``numpy.random.Generator``, returns a new array (inputs are never modified)
and keeps the events sorted by time.

Frames (torch, a (B, H, W) batch; ``data/augmentation.py``):
:func:`augment_frames` = ``RandomResizedCrop(scale=(0.45, 1), nearest)`` +
``RandomHorizontalFlip`` with per-sample parameters from a
``torch.Generator``. As in the official code the paired image does not get
the same crop or flip.

Units
    The official code rescales N-ImageNet events to 224 x 224 before the
    augmentations, so its 20 px shift and 1.5 px jitter are 224-frame pixels.
    Here events stay at sensor coordinates (the frame builder rescales), so
    :class:`EventAugmentConfig` states its pixel values in a reference frame
    (``reference_size``, default 224 x 224) and converts them per axis to
    sensor pixels; ``reference_size=None`` takes them as sensor pixels (the
    N-Caltech101 / N-MNIST loaders augment at sensor resolution).

Deviations, all deliberate
    * time flip: times become ``t_first + t_last - t`` (the window keeps its
      span) instead of the official ``t_last - t`` (which starts at 0); frames
      ignore absolute time, so the frames are the same;
    * coordinates are integers: jittered copies are rounded to the nearest
      pixel and clipped to the sensor (the official code keeps floats, clips
      to the largest coordinate present and truncates when histogramming);
      jittered times are clipped to the window's span;
    * a shift is a whole number of sensor pixels drawn from the converted
      range (the official code draws whole 224-frame pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...events.types import EVENT_DTYPE, SensorSize, concat_events


def _check(events: np.ndarray) -> None:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise ValueError("expected a 1-D EVENT_DTYPE array")


def random_window(events: np.ndarray, num_events: int, rng: np.random.Generator) -> np.ndarray:
    """``num_events`` consecutive events from a uniformly drawn start (all events when there are fewer)."""
    _check(events)
    if num_events <= 0:
        raise ValueError(f"num_events must be positive, got {num_events}")
    if events.shape[0] <= num_events:
        return events
    start = int(rng.integers(0, events.shape[0] - num_events + 1))
    return events[start:start + num_events]


def time_flip(events: np.ndarray) -> np.ndarray:
    """The events played backwards: reversed order, ON <-> OFF, times mirrored inside their span."""
    _check(events)
    out = events[::-1].copy()
    if out.shape[0]:
        out["t"] = events["t"][0] + events["t"][-1] - out["t"]
        out["p"] = 1 - out["p"]
    return out


def random_time_flip(events: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """:func:`time_flip` with probability ``p`` (a draw is made either way)."""
    return time_flip(events) if rng.random() < p else events


def random_shift(events: np.ndarray, size: SensorSize, rng: np.random.Generator,
                 max_shift_px: tuple[int, int]) -> np.ndarray:
    """Shift by whole pixels drawn uniformly in [-max, max] per axis (x, y); events leaving the sensor are dropped."""
    _check(events)
    dx, dy = (int(rng.integers(-m, m + 1)) for m in max_shift_px)
    x = events["x"].astype(np.int64) + dx
    y = events["y"].astype(np.int64) + dy
    keep = (x >= 0) & (x < size.width) & (y >= 0) & (y < size.height)
    out = events[keep]  # boolean indexing copies
    out["x"] = x[keep]
    out["y"] = y[keep]
    return out


def add_correlated_events(events: np.ndarray, size: SensorSize, rng: np.random.Generator,
                          count_range: tuple[int, int] = (100, 5000), min_events: int = 1000,
                          xy_sigma_px: tuple[float, float] = (1.5, 1.5), t_sigma_us: float = 1000.0) -> np.ndarray:
    """Add jittered copies of randomly chosen events (ECDP's "add correlated events"), re-sorted by time.

    Windows with fewer than ``min_events`` events are returned unchanged. The
    number of copies is drawn in ``[min(low, n - 1), min(high, n))`` as the
    official code does; each copy moves by N(0, sigma) in x, y (rounded,
    clipped to the sensor) and t (clipped to the window's span).
    """
    _check(events)
    n = events.shape[0]
    if n < min_events:
        return events
    count = int(rng.integers(min(count_range[0], n - 1), min(count_range[1], n)))
    copies = events[rng.choice(n, size=count, replace=False)]
    x = np.rint(copies["x"] + rng.normal(0.0, xy_sigma_px[0], count))
    y = np.rint(copies["y"] + rng.normal(0.0, xy_sigma_px[1], count))
    t = np.rint(copies["t"] + rng.normal(0.0, t_sigma_us, count))
    copies["x"] = np.clip(x, 0, size.width - 1)
    copies["y"] = np.clip(y, 0, size.height - 1)
    copies["t"] = np.clip(t, events["t"][0], events["t"][-1])
    out = concat_events([events, copies])
    return out[np.argsort(out["t"], kind="stable")]


@dataclass(frozen=True)
class EventAugmentConfig:
    """Official event augmentations; pixel values refer to a ``reference_size`` frame (see the module docstring)."""

    time_flip_p: float = 0.5  #: probability of playing the window backwards
    max_shift_px: float = 20.0  #: largest shift per axis
    correlated_count: tuple[int, int] = (100, 5000)  #: range of the number of added copies
    correlated_min_events: int = 1000  #: windows with fewer events get no copies
    xy_sigma_px: float = 1.5  #: spatial jitter of a copy
    t_sigma_us: float = 1000.0  #: temporal jitter of a copy
    reference_size: tuple[int, int] | None = (224, 224)  #: (H, W) the pixel values refer to; None = sensor

    def __post_init__(self) -> None:
        if not 0.0 <= self.time_flip_p <= 1.0:
            raise ValueError(f"time_flip_p must be in [0, 1], got {self.time_flip_p}")
        if self.max_shift_px < 0 or self.xy_sigma_px < 0 or self.t_sigma_us < 0:
            raise ValueError("max_shift_px, xy_sigma_px and t_sigma_us must be >= 0")
        lo, hi = self.correlated_count
        if not 1 <= lo <= hi:
            raise ValueError(f"correlated_count must be (low, high) with 1 <= low <= high, got {self.correlated_count}")

    def sensor_scale(self, size: SensorSize) -> tuple[float, float]:
        """Sensor pixels per reference pixel along x and y."""
        if self.reference_size is None:
            return 1.0, 1.0
        ref_h, ref_w = self.reference_size
        return size.width / ref_w, size.height / ref_h


def augment_events(events: np.ndarray, size: SensorSize, rng: np.random.Generator,
                   config: EventAugmentConfig = EventAugmentConfig()) -> np.ndarray:
    """Time flip, shift, correlated events: the official ``base_augment`` for training windows."""
    sx, sy = config.sensor_scale(size)
    events = random_time_flip(events, rng, config.time_flip_p)
    events = random_shift(events, size, rng, (round(config.max_shift_px * sx), round(config.max_shift_px * sy)))
    return add_correlated_events(events, size, rng, config.correlated_count, config.correlated_min_events,
                                 (config.xy_sigma_px * sx, config.xy_sigma_px * sy), config.t_sigma_us)


@dataclass(frozen=True)
class FrameAugmentConfig:
    """``RandomResizedCrop(scale, ratio, nearest)`` + ``RandomHorizontalFlip(hflip_p)`` on frames."""

    scale: tuple[float, float] = (0.45, 1.0)  #: crop area as a fraction of the frame (official crop_min 0.45)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)  #: crop aspect range (torchvision's default)
    hflip_p: float = 0.5  #: probability of a horizontal flip

    def __post_init__(self) -> None:
        if not 0.0 < self.scale[0] <= self.scale[1] <= 1.0:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {self.scale}")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {self.ratio}")
        if not 0.0 <= self.hflip_p <= 1.0:
            raise ValueError(f"hflip_p must be in [0, 1], got {self.hflip_p}")


_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params


def random_resized_crop_boxes(batch: int, height: int, width: int, generator: "torch.Generator",
                              config: FrameAugmentConfig = FrameAugmentConfig()) -> "torch.Tensor":
    """Crop boxes (B, 4) int64 as (top, left, h, w), drawn as torchvision's ``RandomResizedCrop.get_params``.

    Up to 10 tries per sample of an area fraction in ``scale`` and a log-uniform
    aspect in ``ratio``; the first box that fits is taken, else a centre crop
    with the aspect clamped into ``ratio``. Runs on the generator's device.
    """
    dev = generator.device

    def uniform(shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, device=dev, dtype=torch.float64)

    target = height * width * uniform((batch, _CROP_ATTEMPTS), *config.scale)
    aspect = torch.exp(uniform((batch, _CROP_ATTEMPTS), math.log(config.ratio[0]), math.log(config.ratio[1])))
    w = torch.round(torch.sqrt(target * aspect)).long()
    h = torch.round(torch.sqrt(target / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(fits.long(), dim=1)  # index of the first fitting try (0 when none fits)
    any_fit = fits.any(dim=1)
    rows = torch.arange(batch, device=dev)
    w, h = w[rows, first], h[rows, first]
    # fallback: the whole frame, cropped to the nearest allowed aspect
    in_ratio = width / height
    if in_ratio < config.ratio[0]:
        fw, fh = width, int(round(width / config.ratio[0]))
    elif in_ratio > config.ratio[1]:
        fw, fh = int(round(height * config.ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(any_fit, w, torch.full_like(w, fw))
    h = torch.where(any_fit, h, torch.full_like(h, fh))
    u = uniform((batch, 2), 0.0, 1.0)
    top = torch.where(any_fit, torch.floor(u[:, 0] * (height - h + 1)).long(), (height - h) // 2)
    left = torch.where(any_fit, torch.floor(u[:, 1] * (width - w + 1)).long(), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def augment_frames(frames: "torch.Tensor", generator: "torch.Generator",
                   config: FrameAugmentConfig = FrameAugmentConfig()) -> "torch.Tensor":
    """Random resized crop (nearest, back to H x W) and horizontal flip of each frame of a (B, H, W) batch.

    Nearest-neighbour resizing takes source pixel ``top + (i * h) // H`` for
    output row ``i`` (columns alike), as ``F.interpolate(mode="nearest")``.
    The parameters are drawn on ``generator``'s device (a CPU generator gives
    the same crops whatever device the frames are on).
    """
    if frames.ndim != 3:
        raise ValueError(f"expected frames (B, H, W), got shape {tuple(frames.shape)}")
    batch, height, width = frames.shape
    dev = frames.device
    boxes = random_resized_crop_boxes(batch, height, width, generator, config).to(dev)
    top, left, h, w = boxes.unbind(dim=1)
    rows = top[:, None] + (torch.arange(height, device=dev)[None, :] * h[:, None]) // height
    cols = left[:, None] + (torch.arange(width, device=dev)[None, :] * w[:, None]) // width
    flip = (torch.rand(batch, generator=generator, device=generator.device) < config.hflip_p).to(dev)
    cols = torch.where(flip[:, None], cols.flip(dims=[1]), cols)
    b = torch.arange(batch, device=dev)[:, None, None]
    return frames[b, rows[:, :, None], cols[:, None, :]]
