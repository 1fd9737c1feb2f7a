"""Detector results as ROS messages: vision_msgs Classification / LabelInfo / VisionInfo, sensor_msgs Image.

Conventions (vision_msgs README): ``ObjectHypothesis.class_id`` is the label
text and ``score`` its probability; LabelInfo maps ids 0..C-1 to the labels in
the detector's order and carries the score threshold; VisionInfo names the
method and bumps ``database_version`` whenever the labels change. In anomaly
mode the Classification holds "anomaly" and "normal" (scores summing to 1),
the decided one first.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass, VisionInfo

from ..apps.detector import DetectionResult

_NS_PER_S = 1_000_000_000
#: VisionInfo.method per detector mode.
METHODS = {"zero_shot": "event_clip/zero_shot", "anomaly": "event_clip/anomaly"}


def ros_time(stamp_ns: int) -> Time:
    """builtin_interfaces/Time of a ROS time in ns (negative times clamp to 0)."""
    sec, nanosec = divmod(max(int(stamp_ns), 0), _NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=ros_time(stamp_ns), frame_id=frame_id)


def classification_msg(result: DetectionResult) -> Classification:
    """The result's hypotheses in its order (best first / decided first), stamped with the window's end."""
    return Classification(
        header=header(result.stamp_ns, result.frame_id),
        results=[ObjectHypothesis(class_id=s.label, score=float(s.score)) for s in result.labels],
    )


def label_info_msg(labels: Sequence[str], threshold: float, stamp_ns: int) -> LabelInfo:
    """Class map id -> label in the detector's order (ids fit uint16) and the threshold."""
    if len(labels) > 65535:
        raise ValueError(f"LabelInfo holds at most 65535 classes, got {len(labels)}")
    return LabelInfo(
        header=header(stamp_ns, ""),
        class_map=[VisionClass(class_id=i, class_name=label) for i, label in enumerate(labels)],
        threshold=float(threshold),
    )


def vision_info_msg(mode: str, version: int, location: str, stamp_ns: int) -> VisionInfo:
    return VisionInfo(header=header(stamp_ns, ""), method=METHODS[mode], database_location=location,
                      database_version=int(version))


def image_msg(frame: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """A uint8 frame as an Image: (H, W) mono8 (the model's frame) or (H, W, 3) rgb8 (the view for people);
    data set through array.array, the fast path."""
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ValueError(f"expected a (H, W) or (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
    height, width = frame.shape[:2]
    channels = 1 if frame.ndim == 2 else 3
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(frame).tobytes())
    return Image(header=header(stamp_ns, frame_id), height=height, width=width,
                 encoding="mono8" if channels == 1 else "rgb8", is_bigendian=False, step=width * channels, data=data)
