"""ROS-free event layer: the event array type, decoders, file readers, windows and frames."""

from .types import EVENT_DTYPE, DecodeStats, SensorSize, concat_events, empty_events, make_events

__all__ = ["EVENT_DTYPE", "DecodeStats", "SensorSize", "concat_events", "empty_events", "make_events"]
