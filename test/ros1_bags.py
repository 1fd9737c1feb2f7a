"""ROS 1 bags written here with rosbags, as a ROS 1 recorder writes them (ROS 1 types, serialisation and Header)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from rosbags.rosbag1 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from event_clip_ros.events.ros_cdr import MSG_DEFINITIONS


@lru_cache(maxsize=None)
def typestore(stores: Stores):
    """rosbags' typestore of ``stores`` plus the event message types."""
    store = get_typestore(stores)
    types = {}
    for name, text in MSG_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def cdr_to_ros1(raw: bytes, msgtype: str) -> bytes:
    """A ROS 2 CDR message as ROS 1 would have serialised it (rosbags' converter; adds the Header's seq)."""
    return bytes(typestore(Stores.LATEST).cdr_to_ros1(raw, msgtype))


def write_ros1_bag(path: Path, topics: dict[str, tuple[str, Sequence[bytes]]], t0_ns: int = 1_000_000_000,
                   step_ns: int = 1_000_000) -> Path:
    """A ROS 1 bag of topic -> (ROS 2 type name, CDR messages), each converted to ROS 1; the
    connections carry ROS 1 message definitions (Header with seq), as ``rosbag record`` writes them."""
    ros1 = typestore(Stores.ROS1_NOETIC)
    with Writer(path) as writer:
        for topic, (msgtype, raws) in topics.items():
            conn = writer.add_connection(topic, msgtype, typestore=ros1)
            for i, raw in enumerate(raws):
                writer.write(conn, t0_ns + i * step_ns + len(topic), cdr_to_ros1(raw, msgtype))
    return path
