"""ROS 1 bags (``#ROSBAG V2.0``): messages turned into the ROS 2 CDR every other part of the project reads.

rosbags reads the bag (and names its types the ROS 2 way, ``dvs_msgs/msg/EventArray``
for ROS 1's ``dvs_msgs/EventArray``). The ROS 1 serialisation differs from CDR (no
alignment, a ``seq`` in every Header), so each message is converted to the
bytes a ROS 2 recorder would have stored: the event streams, the evaluation and
the replay then treat ROS 1 and ROS 2 recordings alike.

* the per-event ``EventArray`` types (dvs_msgs, prophesee_event_msgs, dv_ros2_msgs),
  where rosbags' converter walks every event in Python, are converted with
  numpy (:func:`event_array_to_cdr`; identical bytes, about 100 times faster);
* everything else (``event_camera_msgs/EventPacket``, whose payload is one byte
  array, ``std_msgs/String`` labels) by rosbags' ``ros1_to_cdr``.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np
from rosbags.rosbag1 import Reader

from ..ros_cdr import EVENT_ARRAY_TYPES
from .bag_parts import RosbagsPart, StorageDamage
from .bag_types import bag_typestore

MAGIC = b"#ROSBAG V2.0"

#: One event as ROS 1 stores it: packed, 13 bytes.
_ROS1_EVENT = np.dtype([("x", "<u2"), ("y", "<u2"), ("sec", "<u4"), ("nsec", "<u4"), ("p", "u1")])
#: The same event in CDR after the first one: x, y, 2 pad bytes (ts aligned to 4), ts, polarity, 1 pad byte.
_CDR_EVENT = np.dtype({"names": ["x", "y", "sec", "nsec", "p"], "formats": ["<u2", "<u2", "<u4", "<u4", "u1"],
                       "offsets": [0, 2, 6, 10, 14], "itemsize": 16})
#: The first event in CDR starts 4-aligned (after the sequence length): no pad before its ts.
_CDR_FIRST = np.dtype({"names": ["x", "y", "sec", "nsec", "p"], "formats": ["<u2", "<u2", "<u4", "<u4", "u1"],
                       "offsets": [0, 2, 4, 8, 12], "itemsize": 14})
_CDR_LE = b"\x00\x01\x00\x00"


def open_ros1(path: Path) -> RosbagsPart:
    """A ROS 1 bag opened as a storage part whose messages are CDR (rosbags errors propagate)."""
    reader = Reader(path)
    try:
        reader.open()
    except Exception as err:  # rosbags' ReaderError, struct / decode errors of a damaged header
        text = " ".join(str(err).split()) or type(err).__name__
        raise StorageDamage(f"{text} (a ROS 1 bag cut short or not closed has no index: 'rosbag reindex' "
                            "rebuilds it)") from err
    try:
        part = RosbagsPart(reader, path, convert=ros1_to_cdr)
    except BaseException:
        reader.close()
        raise
    part.ros_version = 1
    return part


def ros1_to_cdr(raw: bytes, msgtype: str) -> bytes:
    """A ROS 1 message of ``msgtype`` (ROS 2 name) as ROS 2 CDR; ValueError when it does not parse."""
    if msgtype in EVENT_ARRAY_TYPES:
        return event_array_to_cdr(raw)
    try:
        return bytes(_typestore().ros1_to_cdr(raw, msgtype))
    except Exception as err:  # SerdeError, KeyError (a type the store does not know), struct.error
        raise ValueError(f"{type(err).__name__}: {err}") from None


def event_array_to_cdr(raw: bytes) -> bytes:
    """A ROS 1 ``EventArray`` (Header, height, width, Event[]) as CDR, with numpy; ValueError when damaged."""
    view = memoryview(raw)
    try:
        sec, nsec, name_len = struct.unpack_from("<III", view, 4)  # after the Header's seq
        pos = 16 + name_len
        frame_id = bytes(view[16:pos])
        height, width, n = struct.unpack_from("<III", view, pos)
    except struct.error:
        raise ValueError("EventArray shorter than its header") from None
    pos += 12
    if len(frame_id) != name_len or len(raw) - pos != n * _ROS1_EVENT.itemsize:
        raise ValueError(f"EventArray of {len(raw)} bytes does not hold its {n} events")
    events = np.frombuffer(view, dtype=_ROS1_EVENT, count=n, offset=pos)
    head = bytearray(_CDR_LE + struct.pack("<III", sec, nsec, name_len + 1) + frame_id + b"\x00")
    head += bytes(-(len(head) - 4) % 4)  # align height to 4 (offsets count from after the 4-byte encapsulation)
    head += struct.pack("<III", height, width, n)
    if n == 0:
        return bytes(head)
    body = np.zeros(_CDR_FIRST.itemsize + (n - 1) * _CDR_EVENT.itemsize, dtype=np.uint8)
    first = body[: _CDR_FIRST.itemsize].view(_CDR_FIRST)
    rest = body[_CDR_FIRST.itemsize :].view(_CDR_EVENT)
    for name in _ROS1_EVENT.names or ():
        first[name] = events[name][:1]
        rest[name] = events[name][1:]
    return bytes(head) + body[:-1].tobytes()  # no padding after the last event


@lru_cache(maxsize=1)
def _typestore():
    """The ROS 2 typestore with the event message types (the bag writer's one)."""
    return bag_typestore()
