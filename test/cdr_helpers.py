"""A rosbags typestore that knows every event message type (for the CDR and bag tests): the one the bag writer uses."""

from __future__ import annotations

from event_clip_ros.events.readers.bag_types import bag_typestore as event_typestore

__all__ = ["event_typestore"]
