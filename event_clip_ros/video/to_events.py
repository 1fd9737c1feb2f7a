"""Event streams from video (mode b): the project's DVS simulator on the video's luma, written as RAW EVT3.

Each frame becomes a grayscale intensity in [0, 1] (BT.601 luma / 255) at the
frame's time; :class:`~event_clip_ros.events.simulate.EventSimulator` keeps the
per-pixel log-intensity reference, fires events at contrast-threshold
crossings with times interpolated between frames, and adds optional noise.
The first frame sets the reference and fires nothing. The luma is not
linearised (video is gamma-encoded); the contrast threshold is therefore in
log-luma units, which v2e-style simulators also use for video.

The RAW file replays through every tool that reads recordings (``event-clip
inspect / anomaly / to-bag``), so a video reaches the ROS node as events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from ..events.simulate import SimulatorConfig, frames_to_events
from ..events.types import SensorSize
from ..events.writers import write_raw_evt3
from .reader import VideoFrame

#: EVT 3.0 stores x and y in 11 bits.
EVT3_MAX_SIDE = 2048


def unit_luma(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 intensity in [0, 1] of a BGR or gray uint8 frame."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return gray.astype(np.float32) * np.float32(1.0 / 255.0)


def video_events(frames: Iterable[VideoFrame], size: SensorSize, config: SimulatorConfig = SimulatorConfig()) -> Iterator[np.ndarray]:
    """Yield the time-ordered events fired between consecutive frames (one non-empty chunk per frame interval)."""
    return frames_to_events(((f.t_us, unit_luma(f.image)) for f in frames), size, config)


def write_video_evt3(
    frames: Iterable[VideoFrame], size: SensorSize, out: str | Path, config: SimulatorConfig = SimulatorConfig()
) -> int:
    """Simulate the events of ``frames`` (of ``size``) into a RAW EVT3 file; return the event count.

    Raises ValueError before writing anything when the frames do not fit EVT3's 11-bit coordinates.
    """
    if size.width > EVT3_MAX_SIDE or size.height > EVT3_MAX_SIDE:
        raise ValueError(f"EVT3 holds at most {EVT3_MAX_SIDE}x{EVT3_MAX_SIDE} pixels, the video is {size.width}x{size.height}; resize it")
    return write_raw_evt3(out, video_events(frames, size, config), size)
