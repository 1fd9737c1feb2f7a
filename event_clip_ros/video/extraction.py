"""The paper's event frames from video: thresholded frame differences summed over a stack.

For each stack of ``stack`` consecutive frames (official README snippet of
Jeong et al., also IEF-VAD's ``ucf_gen_event.py``):

1. ``d_i = gray(|F_i - F_{i-1}|)`` for the ``stack - 1`` consecutive pairs of
   the stack: absolute difference of the colour frames, then grayscale
   (OpenCV's BT.601 luma, ``COLOR_BGR2GRAY``, as frames are decoded BGR);
2. ``b_i = on_value if d_i > threshold else 0`` (``cv2.threshold``, binary);
3. ``S = sum_i b_i``; ``S = min(S, clamp)``;
4. ``E = S / max(S)`` in [0, 1] (all zeros when nothing changed, where the
   official code would divide by zero).

Stacks do not overlap and no difference is taken across a stack boundary, as
in the official code (a 16-frame stack gives 15 differences). A final partial
stack of at least 2 frames is emitted too (``EventFrame.n_frames`` tells), so
every frame of a video is covered; the official feature extractor drops it.

``on_value``: 1 (default) makes ``S`` the number of changed frame pairs per
pixel, as IEF-VAD computes it and as the clamp of 10 presumes. The README
snippet keeps cv2's ``maxval`` 255, with which any clamp below 255 turns
``S`` into a binary "changed at least once" mask; ``on_value=255`` reproduces
that exactly.

The frame then goes through f_E like an event frame (replicated to 3
channels, no shift to [-1, 1)), resized to the model input by ``out_size``.
Memory: one accumulator and the previous frame, whatever the video length.

``ten_crop`` (crop height, width) replaces the single frame by the 10 views of
:mod:`.crops`, cut from the sums before steps 3-4 (UCF-Crime's 10-crop protocol).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .crops import crop_origins, ten_crop
from .reader import VideoFrame, resize_image


@dataclass(frozen=True)
class ExtractionConfig:
    threshold: int = 10  #: gray-level difference (0..255) a pixel must exceed to count as changed
    stack: int = 16  #: frames per event frame (stack - 1 differences)
    clamp: float | None = 10.0  #: cap on the per-pixel sum before normalising; None = no cap
    on_value: int = 1  #: value of a changed pixel in the binary map (see module doc)
    out_size: tuple[int, int] | None = None  #: (height, width) of the event frames; None = the video's (or the crop's)
    ten_crop: tuple[int, int] | None = None  #: (height, width) of the 10 crops per stack (see :mod:`.crops`); None = whole frame

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 255:
            raise ValueError(f"threshold must be in 0..255, got {self.threshold}")
        if self.stack < 2:
            raise ValueError(f"stack must be >= 2 frames, got {self.stack}")
        if not 1 <= self.on_value <= 255:
            raise ValueError(f"on_value must be in 1..255, got {self.on_value}")
        if self.on_value * (self.stack - 1) > np.iinfo(np.uint16).max:
            raise ValueError(f"stack {self.stack} with on_value {self.on_value} overflows the 16-bit accumulator")
        if self.clamp is not None and not (math.isfinite(self.clamp) and self.clamp > 0):
            raise ValueError(f"clamp must be a positive finite number or None, got {self.clamp!r}")
        for name in ("out_size", "ten_crop"):
            value = getattr(self, name)
            if value is not None:
                if len(value) != 2 or not all(int(v) == v and v > 0 for v in value):
                    raise ValueError(f"{name} must be (height, width) in pixels, got {value!r}")
                object.__setattr__(self, name, (int(value[0]), int(value[1])))


@dataclass(frozen=True)
class EventFrame:
    """The event frame of one stack and the video frames it covers."""

    index: int  #: 0-based stack number
    first_frame: int  #: video frame index of the stack's first frame
    n_frames: int  #: frames in the stack (``stack``, fewer for the last one)
    t_start_us: int  #: time of the stack's first frame
    t_end_us: int  #: time of the stack's last frame
    frame: np.ndarray  #: (H, W) float32 in [0, 1]; (10, H, W) views with ``ten_crop``


def normalise_counts(counts: np.ndarray, config: ExtractionConfig) -> np.ndarray:
    """Steps 3-4 and the resize: summed binary maps (H, W) -> float32 event frame in [0, 1]."""
    s = counts.astype(np.float32)
    if config.clamp is not None:
        np.minimum(s, np.float32(config.clamp), out=s)
    peak = s.max()
    if peak > 0:
        s /= peak
    if config.out_size is not None:
        s = resize_image(s, (config.out_size[1], config.out_size[0]))
    return s


class FrameDiffExtractor:
    """Streaming extraction: :meth:`push` frames in order, take an :class:`EventFrame` per full stack."""

    def __init__(self, config: ExtractionConfig = ExtractionConfig()) -> None:
        self.config = config
        self._prev: np.ndarray | None = None
        self._counts: np.ndarray | None = None
        self._first: VideoFrame | None = None
        self._last: VideoFrame | None = None
        self._n = 0
        self._stacks = 0

    def push(self, frame: VideoFrame) -> EventFrame | None:
        """Add the next frame (BGR (H, W, 3) or gray (H, W), uint8); return the event frame when a stack is full."""
        image = frame.image
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"frame {frame.index}: expected (H, W) or (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if self._prev is None:
            self._prev, self._first, self._last, self._n = image, frame, frame, 1
            if self._counts is None or self._counts.shape != image.shape[:2]:
                if self.config.ten_crop is not None:
                    crop_origins(image.shape[:2], self.config.ten_crop)  # the crop fits: fail at the first frame
                self._counts = np.zeros(image.shape[:2], np.uint16)
            return None
        if image.shape != self._prev.shape:
            raise ValueError(f"frame {frame.index} is {image.shape}, the stack started with {self._prev.shape}")
        assert self._counts is not None  # allocated at the first frame
        diff = cv2.absdiff(image, self._prev)
        if diff.ndim == 3:
            diff = cv2.cvtColor(diff, cv2.COLOR_BGR2GRAY)
        _, changed = cv2.threshold(diff, self.config.threshold, self.config.on_value, cv2.THRESH_BINARY)
        self._counts += changed
        self._prev, self._last = image, frame
        self._n += 1
        return self._emit() if self._n == self.config.stack else None

    def flush(self) -> EventFrame | None:
        """The event frame of the last, partial stack (at least 2 frames), or None."""
        return self._emit() if self._n >= 2 else None

    def _render(self, counts: np.ndarray) -> np.ndarray:
        if self.config.ten_crop is None:
            return normalise_counts(counts, self.config)
        return ten_crop(counts, self.config.ten_crop, lambda crop: normalise_counts(crop, self.config))

    def _emit(self) -> EventFrame:
        assert self._first is not None and self._last is not None and self._counts is not None  # a stack of >= 2 frames
        out = EventFrame(
            index=self._stacks,
            first_frame=self._first.index,
            n_frames=self._n,
            t_start_us=self._first.t_us,
            t_end_us=self._last.t_us,
            frame=self._render(self._counts),
        )
        self._counts[:] = 0
        self._prev = self._first = self._last = None
        self._n = 0
        self._stacks += 1
        return out


def extract_event_frames(frames: Iterable[VideoFrame], config: ExtractionConfig = ExtractionConfig()) -> Iterator[EventFrame]:
    """Yield the event frame of each stack of ``frames`` (the last one possibly partial)."""
    extractor = FrameDiffExtractor(config)
    for frame in frames:
        out = extractor.push(frame)
        if out is not None:
            yield out
    last = extractor.flush()
    if last is not None:
        yield last
