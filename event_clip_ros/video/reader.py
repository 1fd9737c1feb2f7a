"""Streaming video reading through OpenCV: one decoded frame in memory at a time.

Frame times come from the container's frame rate: frame ``i`` is at
``round(i * 1e6 / fps)`` microseconds, the first frame at 0. This assumes a
constant frame rate (true of surveillance and dataset videos such as
UCF-Crime); OpenCV's per-frame position (``CAP_PROP_POS_MSEC``) is not used
because many demuxers report it unreliably. A container without a usable
frame rate needs ``fps`` given explicitly.

Frames are BGR ``uint8`` arrays (H, W, 3), as OpenCV decodes them, optionally
resized (``resize``, (width, height) like OpenCV) on the way out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("event_clip_ros.video")


class VideoFileError(ValueError):
    """A video that cannot be read: missing, not a video, no frames, no frame rate, or changing frame size."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame and where it sits in the video."""

    index: int  #: 0-based frame number
    t_us: int  #: time of the frame from the start of the video, microseconds
    image: np.ndarray  #: (H, W, 3) BGR uint8


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` = (width, height): area averaging when shrinking, bilinear when enlarging.

    Area averaging is the alias-free choice for downscaling (OpenCV's bilinear
    samples only 2x2 pixels whatever the scale); when enlarging it degenerates
    to nearest neighbour, so bilinear is used there.
    """
    w, h = size
    if (image.shape[1], image.shape[0]) == (w, h):
        return image
    shrink = w <= image.shape[1] and h <= image.shape[0]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class VideoReader:
    """A video file opened for streaming (a context manager).

    Raises :class:`VideoFileError` at opening when the file is missing, is not
    a video OpenCV can decode, has no decodable first frame, or has no frame
    rate (and ``fps`` is not given); :meth:`frames` raises it when the frame
    size changes mid-stream. The first frame is decoded at opening so these
    checks happen before any output is written.
    """

    def __init__(self, path: str | Path, fps: float | None = None, resize: tuple[int, int] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoFileError(f"{self.path}: no such file")
        if resize is not None and not (len(resize) == 2 and all(int(v) == v and v > 0 for v in resize)):
            raise ValueError(f"resize must be (width, height) in pixels, got {resize!r}")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive and finite, got {fps!r}")
        self._resize = None if resize is None else (int(resize[0]), int(resize[1]))
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise VideoFileError(f"{self.path}: not a video this OpenCV build can decode")
        ok, first = self._cap.read()
        if not ok or first is None:
            self.close()
            raise VideoFileError(f"{self.path}: the video has no decodable frames")
        self._first: np.ndarray | None = first
        self.source_size = (first.shape[1], first.shape[0])  #: (width, height) as stored in the file
        container_fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        if fps is None:
            if not (math.isfinite(container_fps) and 0 < container_fps <= 1000):
                self.close()
                raise VideoFileError(f"{self.path}: the container reports no usable frame rate ({container_fps}); give fps")
            fps = container_fps
        self.fps = float(fps)  #: frames per second the timestamps use
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        #: the container's frame count (an estimate for some formats), None when unknown
        self.frame_count_hint: int | None = int(count) if math.isfinite(count) and count > 0 else None
        self.frames_read = 0  #: frames :meth:`frames` has yielded so far

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames :meth:`frames` yields."""
        return self._resize or self.source_size

    def frame_time_us(self, index: int) -> int:
        """Time of frame ``index`` in microseconds (constant frame rate)."""
        return round(index * 1e6 / self.fps)

    def frames(self, max_frames: int | None = None) -> Iterator[VideoFrame]:
        """Yield the frames in order (once per reader), at most ``max_frames``."""
        if self._first is None:
            raise RuntimeError(f"{self.path}: frames() can be iterated once per opening")
        image: np.ndarray | None = self._first
        self._first = None
        index = 0
        while image is not None and (max_frames is None or index < max_frames):
            if (image.shape[1], image.shape[0]) != self.source_size:
                raise VideoFileError(
                    f"{self.path}: frame {index} is {image.shape[1]}x{image.shape[0]}, the video started at "
                    f"{self.source_size[0]}x{self.source_size[1]}"
                )
            if image.ndim == 2:  # some decoders hand out single-channel frames
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if self._resize is not None:
                image = resize_image(image, self._resize)
            yield VideoFrame(index, self.frame_time_us(index), image)
            index += 1
            self.frames_read = index
            ok, image = self._cap.read()
            if not ok:
                image = None
        if self.frame_count_hint is not None and max_frames is None and index < self.frame_count_hint:
            log.warning("%s: decoded %d of the %d frames the container announces", self.path, index, self.frame_count_hint)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
