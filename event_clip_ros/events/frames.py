"""Turn the events of a window into the grayscale frame the event encoder sees.

Two representations (``FrameConfig.representation``):

``"paper"`` (default)
    The paper's frame: per-pixel event counts summed over time and polarity,
    divided by ``max + 1``; values in ``[0, 1)``, the busiest pixel at
    ``max / (max + 1)``. Empty value 0.
``"official"``
    What the released training code feeds the model: per-polarity counts, each
    channel divided by its own ``max + 1``, the two averaged and mapped to
    ``[-1, 1)`` by ``(v - 0.5) * 2``. Empty value -1.

``clamp`` caps the per-pixel counts (per polarity channel in "official")
before the normalisation, as the official N-Caltech101 / N-MNIST loaders do.
An empty window gives a frame filled with the empty value, never NaN.

Resizing
    Frames are resized to the model input by rescaling event coordinates before
    histogramming, as the official code's ``reshape_event_no_sample`` does, in
    integer arithmetic: ``x' = x * out_w // width``, ``y' = y * out_h // height``
    (the official code multiplies floats and truncates; integers avoid rounding
    differences). Shrinking adds several sensor pixels into one output pixel;
    enlarging still puts each event in one output pixel (sparse
    nearest-neighbour placement, no interpolation). With ``keep_aspect`` both
    axes use the smaller ratio ``out/in`` and the content is centred
    (letterbox; an odd padding puts the extra row or column below or right).
    The padding receives no events, so it keeps the empty value.

Bit-identical paths
    Counts are integers and the normalisation is the same sequence of float32
    operations (IEEE-rounded divisions, no fused or reciprocal tricks), so the
    numpy path (:func:`build_frame`, a compiled histogram on one core) and the
    batched torch path (:func:`build_frames_torch`) give identical frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np
from numba import njit

from .native import PREFETCH_BYTES, prefetch
from .types import EVENT_DTYPE, SensorSize

if TYPE_CHECKING:  # torch is imported lazily: the numpy path must not pay for it
    import torch

Representation = Literal["paper", "official"]
_REPRESENTATIONS = ("paper", "official")


@dataclass(frozen=True)
class FrameConfig:
    """How a window's events become a frame."""

    representation: Representation = "paper"
    clamp: float | None = None  #: cap on per-pixel counts before normalisation; None = no cap
    out_size: tuple[int, int] | None = (224, 224)  #: (height, width) of the frame; None = sensor size
    keep_aspect: bool = False  #: letterbox instead of stretching to out_size

    def __post_init__(self) -> None:
        if self.representation not in _REPRESENTATIONS:
            raise ValueError(f"representation must be one of {_REPRESENTATIONS}, got {self.representation!r}")
        if self.clamp is not None and not (math.isfinite(self.clamp) and self.clamp > 0):
            raise ValueError(f"clamp must be a positive finite number or None, got {self.clamp!r}")
        if self.out_size is not None:
            pixels = (int, np.integer)
            if len(self.out_size) != 2 or not all(
                isinstance(v, pixels) and not isinstance(v, bool) and 0 < v <= 65535 for v in self.out_size
            ):
                raise ValueError(f"out_size must be (height, width) in pixels, got {self.out_size!r}")
            object.__setattr__(self, "out_size", (int(self.out_size[0]), int(self.out_size[1])))

    @property
    def channels(self) -> int:
        """Count histograms built per frame: 1 (paper) or 2 polarities (official)."""
        return 2 if self.representation == "official" else 1

    @property
    def empty_value(self) -> float:
        """The value of a pixel without events: 0 (paper) or -1 (official)."""
        return -1.0 if self.representation == "official" else 0.0


def frame_shape(size: SensorSize, config: FrameConfig) -> tuple[int, int]:
    """(height, width) of the frames built for a sensor of ``size``."""
    return config.out_size if config.out_size is not None else (size.height, size.width)


@lru_cache(maxsize=64)
def _lookup_tables(size: SensorSize, out_size: tuple[int, int] | None, keep_aspect: bool):
    """Per-column and per-row offsets into the flattened (H, W) frame (read-only int64).

    ``x_lut[x] + y_lut[y]`` is the flat output pixel of sensor pixel (x, y).
    """
    out_h, out_w = out_size if out_size is not None else (size.height, size.width)
    if not keep_aspect:
        x_lut = np.arange(size.width, dtype=np.int64) * out_w // size.width
        y_lut = np.arange(size.height, dtype=np.int64) * out_h // size.height
    else:
        # common scale num/den = min(out_w/width, out_h/height), exact in integers
        if out_w * size.height <= out_h * size.width:
            num, den = out_w, size.width
        else:
            num, den = out_h, size.height
        content_w = -(-size.width * num // den)  # ceil: every x * num // den is below it
        content_h = -(-size.height * num // den)
        x_lut = np.arange(size.width, dtype=np.int64) * num // den + (out_w - content_w) // 2
        y_lut = np.arange(size.height, dtype=np.int64) * num // den + (out_h - content_h) // 2
    y_lut *= out_w
    x_lut.flags.writeable = False
    y_lut.flags.writeable = False
    return x_lut, y_lut


@njit(cache=True, nogil=True)
def _bin(x, y, p, x_lut, y_lut, off_plane):
    """Flat output bin of one event (OFF events ``off_plane`` further), or -1 outside the sensor."""
    if x >= x_lut.shape[0] or y >= y_lut.shape[0]:
        return -1
    k = x_lut[x] + y_lut[y]
    if p == 0:
        k += off_plane
    return k


#: Records between the one a kernel reads and the one it prefetches (:data:`PREFETCH_BYTES` ahead).
_AHEAD = PREFETCH_BYTES // EVENT_DTYPE.itemsize


@njit(cache=True, nogil=True)
def _histogram(events, x_lut, y_lut, off_plane, counts):
    """Count the events in their bins; return the number outside the sensor (not counted)."""
    outside = 0
    n = events.shape[0]
    for i in range(n):
        if (i & 3) == 0:  # one prefetch per 64-byte line of records
            prefetch(events, min(i + _AHEAD, n - 1))
        k = _bin(events[i].x, events[i].y, events[i].p, x_lut, y_lut, off_plane)
        if k < 0:
            outside += 1
        else:
            counts[k] += 1
    return outside


@njit(cache=True, nogil=True)
def _flat_index(events, x_lut, y_lut, off_plane, base, out):
    """Write each event's bin plus ``base`` into ``out``; return the number outside the sensor."""
    outside = 0
    n = events.shape[0]
    for i in range(n):
        if (i & 3) == 0:
            prefetch(events, min(i + _AHEAD, n - 1))
        k = _bin(events[i].x, events[i].y, events[i].p, x_lut, y_lut, off_plane)
        if k < 0:
            outside += 1
            k = 0
        out[i] = base + k
    return outside


def _check_events(events: np.ndarray) -> None:
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise ValueError("expected a 1-D EVENT_DTYPE array")


def _outside_error(n: int, size: SensorSize) -> ValueError:
    return ValueError(f"{n} events lie outside the {size.width}x{size.height} sensor (wrong SensorSize?)")


def _normalise_numpy(counts: np.ndarray, config: FrameConfig) -> np.ndarray:
    """(C, H, W) integer counts -> (H, W) float32 frame. Mirrors :func:`_normalise_torch`."""
    c = counts.astype(np.float32)
    if config.clamp is not None:
        np.minimum(c, np.float32(config.clamp), out=c)
    denom = c.max(axis=(1, 2), keepdims=True) + np.float32(1)
    c /= denom
    if config.representation == "paper":
        return c[0]
    return ((c[0] + c[1]) * np.float32(0.5) - np.float32(0.5)) * np.float32(2)


def _normalise_torch(counts: "torch.Tensor", config: FrameConfig) -> "torch.Tensor":
    """(B, C, H, W) integer counts -> (B, H, W) float32 frames. Mirrors :func:`_normalise_numpy`."""
    # lazy: the event layer runs without torch; only the torch frame path needs it
    import torch

    c = counts.to(torch.float32)
    if config.clamp is not None:
        c = c.clamp_max(config.clamp)  # the bound is cast to float32, as np.float32(clamp)
    denom = c.amax(dim=(2, 3), keepdim=True) + 1
    c = c / denom  # tensor / tensor: an IEEE division on every device, as numpy's
    if config.representation == "paper":
        return c[:, 0]
    return ((c[:, 0] + c[:, 1]) * 0.5 - 0.5) * 2


def build_frame(events: np.ndarray, size: SensorSize, config: FrameConfig = FrameConfig()) -> np.ndarray:
    """Frame (H, W) float32 of one window's events; see the module docstring for the formulas.

    Raises ValueError for events outside ``size`` (decoders and readers drop
    those, so they mean the wrong sensor size was given).
    """
    _check_events(events)
    out_h, out_w = frame_shape(size, config)
    x_lut, y_lut = _lookup_tables(size, config.out_size, config.keep_aspect)
    plane = out_h * out_w
    counts = np.zeros(config.channels * plane, dtype=np.int64)
    # paper: both polarities in plane 0; official: ON in plane 0, OFF in plane 1
    outside = _histogram(events, x_lut, y_lut, plane if config.channels == 2 else 0, counts)
    if outside:
        raise _outside_error(int(outside), size)
    return _normalise_numpy(counts.reshape(config.channels, out_h, out_w), config)


def build_frames_torch(
    windows_events: Sequence[np.ndarray],
    size: SensorSize,
    config: FrameConfig = FrameConfig(),
    device: "str | torch.device" = "cpu",
    by_index: bool | None = None,
) -> "torch.Tensor":
    """Frames (B, H, W) float32 on ``device`` of B windows, bit-identical to :func:`build_frame`.

    On the CPU a compiled kernel counts each window's events in place (the
    histogram of :func:`build_frame`: 2.2 ms for 2 M events where computing
    bins and a ``torch.bincount`` of them took 5.2). For another device
    (``by_index``, the default off the CPU) the flat bin of every event (window
    ``b`` offset by ``b * C * H * W``) is computed on the CPU by a compiled
    kernel, which also checks the events and reads them where they already are;
    only these indices (4 bytes per event) travel to the device, where one
    ``bincount`` counts all windows at once. Raises ValueError for events
    outside ``size``.
    """
    # lazy: the event layer runs without torch; only the torch frame path needs it
    import torch

    device = torch.device(device)
    out_h, out_w = frame_shape(size, config)
    channels, plane = config.channels, out_h * out_w
    x_lut, y_lut = _lookup_tables(size, config.out_size, config.keep_aspect)
    for events in windows_events:
        _check_events(events)
    off_plane = plane if channels == 2 else 0
    n_bins = len(windows_events) * channels * plane
    outside = 0
    if by_index is None:
        by_index = device.type != "cpu"
    if not by_index:
        per_window = np.zeros((len(windows_events), channels * plane), dtype=np.int64)
        for events, counts_b in zip(windows_events, per_window):
            outside += _histogram(events, x_lut, y_lut, off_plane, counts_b)
        counts = torch.from_numpy(per_window)
    else:
        index = np.empty(sum(e.shape[0] for e in windows_events), dtype=np.int32 if n_bins < 2**31 else np.int64)
        start = 0
        for b, events in enumerate(windows_events):
            end = start + events.shape[0]
            outside += _flat_index(events, x_lut, y_lut, off_plane, b * channels * plane, index[start:end])
            start = end
        counts = torch.bincount(torch.from_numpy(index).to(device), minlength=n_bins)
    if outside:
        raise _outside_error(int(outside), size)
    return _normalise_torch(counts.view(len(windows_events), channels, out_h, out_w), config)


def frame_to_uint8(frame: np.ndarray, config: FrameConfig) -> np.ndarray:
    """Map a frame from its representation's range to 0..255 (rounded) for PNG writing."""
    unit = frame if config.representation == "paper" else (frame + np.float32(1)) * np.float32(0.5)
    return np.clip(np.rint(unit * np.float32(255)), 0, 255).astype(np.uint8)
