"""CDR parsing and building of the ROS 2 messages the detector takes (event cameras, images), without ROS.

ROS 2 serialises messages as XCDR1 (plain CDR): a 4-byte encapsulation header
(``00 01 00 00`` = little-endian CDR), then the fields in declaration order,
each primitive aligned to its own size *relative to the first byte after that
header*; strings are a uint32 length that counts a terminating NUL, then the
bytes and the NUL; sequences are a uint32 element count, then the elements.
Serialisers may pad the end of a message (Fast DDS pads to 4 bytes), so
trailing bytes are ignored.

Two message layouts are handled, each under several type names:

* ``event_camera_msgs/msg/EventPacket`` (and its legacy name
  ``event_array_msgs/msg/EventArray``): an encoded payload (``uint8[] events``)
  plus the metadata needed to decode it -> :class:`EventPacketMsg`, whose
  ``events`` is a zero-copy view of the serialised buffer.
* ``dvs_msgs``, ``prophesee_event_msgs`` and ``dv_ros2_msgs`` ``EventArray``:
  one ``Event{uint16 x, uint16 y, builtin_interfaces/Time ts, bool polarity}``
  per event -> :class:`EventArrayMsg` with an :data:`EVENT_DTYPE` array.

Layout of ``Event[]`` (derived from the alignment rules, checked byte for byte
against rosbags' serialiser in test/test_ros_cdr.py): the element count leaves
element 0 on a 4-byte boundary, so it is ``x@0 y@2 sec@4 nanosec@8
polarity@12`` (13 bytes, then 1 pad byte); every later element then starts at
2 mod 4 and is ``x@0 y@2 pad@4 sec@6 nanosec@10 polarity@14`` with a 16-byte
stride (the pad byte after the last element's polarity is not written). The
layout does not depend on the header's frame_id length because the count is
itself 4-aligned. n events therefore take ``16 n - 3`` bytes, and all of them
are read or written by a few vectorised numpy operations on two strided views
(element 0 and elements 1..n-1), never by a per-event Python loop.

``sensor_msgs/msg/Image`` (the detector's image input) -> :class:`ImageMsg`,
whose ``data`` is a zero-copy view of the serialised buffer, like an
EventPacket's payload.

Malformed input raises :class:`CdrError` (a ValueError) that says what was
wrong and where; stream decoders count such messages and skip them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .decoders.base import Payload, as_uint8
from .types import EVENT_DTYPE, empty_events

#: Encapsulation header of little-endian XCDR1, the only one ROS 2 writes on
#: little-endian machines (two representation bytes, two option bytes).
CDR_LE_HEADER = b"\x00\x01\x00\x00"
_HEADER_SIZE = len(CDR_LE_HEADER)

#: ROS type names of the compact packet message (the second is its legacy name).
EVENT_PACKET_TYPES = ("event_camera_msgs/msg/EventPacket", "event_array_msgs/msg/EventArray")
#: ROS type names of the one-struct-per-event messages (identical layouts).
EVENT_ARRAY_TYPES = (
    "dvs_msgs/msg/EventArray",
    "prophesee_event_msgs/msg/EventArray",
    "dv_ros2_msgs/msg/EventArray",
)

#: ROS type name of camera images.
IMAGE_MSGTYPE = "sensor_msgs/msg/Image"

EVENT_PACKET_MSG = """\
std_msgs/Header header
uint32 height
uint32 width
uint64 seq
uint64 time_base
string encoding
bool is_bigendian
uint8[] events
"""

EVENT_MSG = """\
uint16 x
uint16 y
builtin_interfaces/Time ts
bool polarity
"""

EVENT_ARRAY_MSG = """\
std_msgs/Header header
uint32 height
uint32 width
Event[] events
"""


def _msg_definitions() -> dict[str, str]:
    defs = {name: EVENT_PACKET_MSG for name in EVENT_PACKET_TYPES}
    for name in EVENT_ARRAY_TYPES:
        defs[name] = EVENT_ARRAY_MSG
        defs[name.replace("/EventArray", "/Event")] = EVENT_MSG
    return defs


#: ``.msg`` text of every supported type and of the nested ``Event`` types, keyed
#: by ROS type name: what a bag writer or rosbags' typestore needs to register them.
MSG_DEFINITIONS: dict[str, str] = _msg_definitions()

_NS_PER_S = 1_000_000_000
_US_PER_S = 1_000_000
_NS_PER_US = 1_000
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

# Event[] element 0 (4-aligned) and elements 1..n-1 (2 mod 4, 16-byte stride).
_EVENT0_DTYPE = np.dtype(
    {"names": ["x", "y", "sec", "nanosec", "polarity"],
     "formats": ["<u2", "<u2", "<i4", "<u4", "u1"],
     "offsets": [0, 2, 4, 8, 12], "itemsize": 13}
)
_EVENTN_DTYPE = np.dtype(
    {"names": ["x", "y", "sec", "nanosec", "polarity"],
     "formats": ["<u2", "<u2", "<i4", "<u4", "u1"],
     "offsets": [0, 2, 6, 10, 14], "itemsize": 15}
)
_EVENT0_SIZE = 14  # element 0 plus its pad byte
_EVENT_STRIDE = 16


class CdrError(ValueError):
    """A serialised message that cannot be parsed (truncated, garbled, wrong type)."""


@dataclass
class EventPacketMsg:
    """An ``event_camera_msgs/msg/EventPacket`` (encoded events plus metadata)."""

    stamp_ns: int  #: header.stamp in ns (host time of the first event, driver-defined)
    frame_id: str
    height: int
    width: int
    seq: int  #: sequence number, +1 per message; gaps mean lost messages
    time_base_ns: int  #: encoding-specific time offset in ns (0 for evt3)
    encoding: str  #: payload encoding, e.g. "evt3", "mono"
    is_bigendian: bool
    events: np.ndarray  #: encoded payload, uint8 (a view of the serialised buffer)


@dataclass
class EventArrayMsg:
    """A dvs_msgs / prophesee_event_msgs / dv_ros2_msgs ``EventArray``."""

    stamp_ns: int  #: header.stamp in ns
    frame_id: str
    height: int
    width: int
    events: np.ndarray  #: EVENT_DTYPE, t = ts.sec * 1e6 + ts.nanosec // 1000 (us)


@dataclass
class ImageMsg:
    """A ``sensor_msgs/msg/Image``: pixel rows of ``step`` bytes in ``encoding``."""

    stamp_ns: int  #: header.stamp in ns (capture time)
    frame_id: str
    height: int
    width: int
    encoding: str  #: pixel encoding, e.g. "bgr8", "rgb8", "mono8"
    is_bigendian: bool
    step: int  #: bytes per row (row padding included)
    data: np.ndarray  #: the pixels, uint8 (a view of the serialised buffer)


class _CdrReader:
    """Cursor over one serialised message that checks every read against its length."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, raw: Payload, what: str) -> None:
        self._what = what
        self._buf = as_uint8(raw)
        if self._buf.size < _HEADER_SIZE:
            raise CdrError(f"{what}: {self._buf.size} bytes is too short for a CDR message")
        if bytes(self._buf[:2]) != CDR_LE_HEADER[:2]:
            raise CdrError(
                f"{what}: unsupported CDR encapsulation 0x{bytes(self._buf[:2]).hex()} "
                "(expected 0x0001, little-endian XCDR1)"
            )
        self._pos = _HEADER_SIZE

    def take(self, size: int, align: int, field: str) -> int:
        """Reserve ``size`` bytes aligned to ``align``; return their buffer offset."""
        start = self._pos + (-(self._pos - _HEADER_SIZE)) % align
        end = start + size
        if end > self._buf.size:
            raise CdrError(
                f"{self._what}: truncated in '{field}' (needs {end - _HEADER_SIZE} payload bytes, "
                f"has {self._buf.size - _HEADER_SIZE})"
            )
        self._pos = end
        return start

    # The ignores below: numpy's stubs declare ndarray.__buffer__ (the Buffer protocol) for Python >= 3.12 only.
    def i32(self, field: str) -> int:
        return _I32.unpack_from(self._buf, self.take(4, 4, field))[0]  # type: ignore[arg-type]  # numpy stubs (above)

    def u32(self, field: str) -> int:
        return _U32.unpack_from(self._buf, self.take(4, 4, field))[0]  # type: ignore[arg-type]  # numpy stubs (above)

    def u64(self, field: str) -> int:
        return _U64.unpack_from(self._buf, self.take(8, 8, field))[0]  # type: ignore[arg-type]  # numpy stubs (above)

    def boolean(self, field: str) -> bool:
        return bool(self._buf[self.take(1, 1, field)])

    def string(self, field: str) -> str:
        n = self.u32(field)
        if n == 0:  # some serialisers write an empty string without its NUL
            return ""
        start = self.take(n, 1, field)
        if self._buf[start + n - 1] != 0:
            raise CdrError(f"{self._what}: string '{field}' is not NUL-terminated")
        try:
            return bytes(self._buf[start : start + n - 1]).decode("utf-8")
        except UnicodeDecodeError as err:
            raise CdrError(f"{self._what}: string '{field}' is not UTF-8 ({err.reason})") from None

    def stamp_ns(self) -> int:
        sec = self.i32("header.stamp.sec")
        nanosec = self.u32("header.stamp.nanosec")
        return sec * _NS_PER_S + nanosec

    def head(self) -> tuple[int, str, int, int]:
        """(header.stamp in ns, header.frame_id, height, width): the fields both layouts start with."""
        return self.stamp_ns(), self.string("header.frame_id"), self.u32("height"), self.u32("width")

    def view(self, count: int, field: str) -> np.ndarray:
        """Zero-copy uint8 view of the next ``count`` bytes."""
        start = self.take(count, 1, field)
        return self._buf[start : start + count]

    @property
    def buffer(self) -> np.ndarray:
        return self._buf


class _CdrWriter:
    """Append-only CDR builder with the same alignment rules as the reader."""

    __slots__ = ("_out",)

    def __init__(self) -> None:
        self._out = bytearray(CDR_LE_HEADER)

    def _align(self, align: int) -> None:
        self._out += bytes((-(len(self._out) - _HEADER_SIZE)) % align)

    def i32(self, value: int) -> None:
        self._align(4)
        self._out += _I32.pack(value)

    def u32(self, value: int) -> None:
        self._align(4)
        self._out += _U32.pack(value)

    def u64(self, value: int) -> None:
        self._align(8)
        self._out += _U64.pack(value)

    def boolean(self, value: bool) -> None:
        self._out.append(1 if value else 0)

    def string(self, value: str) -> None:
        data = value.encode("utf-8")
        self.u32(len(data) + 1)
        self._out += data
        self._out.append(0)

    def stamp(self, stamp_ns: int) -> None:
        sec, nanosec = divmod(int(stamp_ns), _NS_PER_S)
        if not _INT32_MIN <= sec <= _INT32_MAX:
            raise ValueError(f"stamp {stamp_ns} ns does not fit builtin_interfaces/Time (int32 seconds)")
        self.i32(sec)
        self.u32(nanosec)

    def head(self, stamp_ns: int, frame_id: str, height: int, width: int) -> None:
        """Write the fields both layouts start with (see :meth:`_CdrReader.head`)."""
        self.stamp(stamp_ns)
        self.string(frame_id)
        self.u32(height)
        self.u32(width)

    def raw(self, data: Payload) -> None:
        self._out += as_uint8(data).tobytes()

    def u8_sequence(self, data: Payload) -> None:
        """A ``uint8[]`` field: its length, then its bytes (what :meth:`_CdrReader.view` reads back)."""
        data = as_uint8(data)
        self.u32(data.size)
        self.raw(data)

    def getvalue(self) -> bytes:
        return bytes(self._out)


def parse_event_packet(raw: Payload) -> EventPacketMsg:
    """Parse a serialised EventPacket (or legacy event_array_msgs/EventArray).

    ``events`` of the result views ``raw`` (read-only when ``raw`` is bytes);
    keep ``raw`` alive while it is used. Raises :class:`CdrError`.
    """
    r = _CdrReader(raw, "EventPacket")
    stamp_ns, frame_id, height, width = r.head()
    seq = r.u64("seq")
    time_base_ns = r.u64("time_base")
    encoding = r.string("encoding")
    is_bigendian = r.boolean("is_bigendian")
    events = r.view(r.u32("events"), "events")
    return EventPacketMsg(stamp_ns, frame_id, height, width, seq, time_base_ns, encoding, is_bigendian, events)


def encode_event_packet(
    payload: Payload,
    *,
    encoding: str,
    width: int,
    height: int,
    seq: int = 0,
    time_base_ns: int = 0,
    stamp_ns: int = 0,
    frame_id: str = "",
    is_bigendian: bool = False,
) -> bytes:
    """Serialise an EventPacket (bytes identical to rosbags' / rclpy's serialiser)."""
    w = _CdrWriter()
    w.head(stamp_ns, frame_id, height, width)
    w.u64(seq)
    w.u64(time_base_ns)
    w.string(encoding)
    w.boolean(is_bigendian)
    w.u8_sequence(payload)
    return w.getvalue()


def _event_views(buf: np.ndarray, offset: int, n: int) -> list[tuple[slice, np.ndarray]]:
    """(event index range, strided view) pairs covering an ``Event[]`` of n events at ``offset``."""
    if n == 0:
        return []
    views = [(slice(0, 1), np.ndarray((1,), _EVENT0_DTYPE, buffer=buf, offset=offset))]
    if n > 1:
        tail = np.ndarray((n - 1,), _EVENTN_DTYPE, buffer=buf, offset=offset + _EVENT0_SIZE, strides=(_EVENT_STRIDE,))
        views.append((slice(1, n), tail))
    return views


def _event_array_bytes(n: int) -> int:
    return _EVENT_STRIDE * n - 3 if n else 0


def parse_event_array(raw: Payload) -> EventArrayMsg:
    """Parse a serialised dvs_msgs / prophesee_event_msgs / dv_ros2_msgs EventArray.

    Event times become microseconds (``sec * 1e6 + nanosec // 1000``), polarity
    1 = ON. Raises :class:`CdrError`.
    """
    r = _CdrReader(raw, "EventArray")
    stamp_ns, frame_id, height, width = r.head()
    n = r.u32("events")
    offset = r.take(_event_array_bytes(n), 4, "events")
    out = empty_events(n)
    for sl, src in _event_views(r.buffer, offset, n):
        part = out[sl]
        part["t"] = src["sec"].astype(np.int64) * _US_PER_S + src["nanosec"] // _NS_PER_US
        part["x"] = src["x"]
        part["y"] = src["y"]
        part["p"] = src["polarity"] != 0
    return EventArrayMsg(stamp_ns, frame_id, height, width, out)


def encode_event_array(
    events: np.ndarray,
    width: int,
    height: int,
    stamp_ns: int = 0,
    frame_id: str = "",
) -> bytes:
    """Serialise events (:data:`EVENT_DTYPE`, t in us) as a dvs_msgs-style EventArray.

    The bytes are the same for all three EventArray type names and identical to
    rosbags' serialiser. Times must fit ``builtin_interfaces/Time`` (int32 s).
    """
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have EVENT_DTYPE, got {events.dtype}")
    w = _CdrWriter()
    w.head(stamp_ns, frame_id, height, width)
    n = events.size
    w.u32(n)
    body = np.zeros(_event_array_bytes(n), dtype=np.uint8)
    if n:
        sec, rem_us = np.divmod(events["t"], _US_PER_S)
        if sec.min() < _INT32_MIN or sec.max() > _INT32_MAX:
            raise ValueError("event times do not fit builtin_interfaces/Time (int32 seconds)")
        nanosec = rem_us * _NS_PER_US
        for sl, dst in _event_views(body, 0, n):
            dst["x"] = events["x"][sl]
            dst["y"] = events["y"][sl]
            dst["sec"] = sec[sl]
            dst["nanosec"] = nanosec[sl]
            dst["polarity"] = events["p"][sl] != 0
    w.raw(body)
    return w.getvalue()


def parse_image(raw: Payload) -> ImageMsg:
    """Parse a serialised sensor_msgs/Image.

    ``data`` of the result views ``raw`` (read-only when ``raw`` is bytes); keep
    ``raw`` alive while it is used. Whether the pixels fit the geometry is left
    to the image's decoder. Raises :class:`CdrError`.
    """
    r = _CdrReader(raw, "Image")
    stamp_ns, frame_id, height, width = r.head()
    encoding = r.string("encoding")
    is_bigendian = r.boolean("is_bigendian")
    step = r.u32("step")
    data = r.view(r.u32("data"), "data")
    return ImageMsg(stamp_ns, frame_id, height, width, encoding, is_bigendian, step, data)


def encode_image(
    data: Payload,
    *,
    encoding: str,
    width: int,
    height: int,
    step: int,
    stamp_ns: int = 0,
    frame_id: str = "",
    is_bigendian: bool = False,
) -> bytes:
    """Serialise a sensor_msgs/Image (bytes identical to rosbags' / rclpy's serialiser)."""
    w = _CdrWriter()
    w.head(stamp_ns, frame_id, height, width)
    w.string(encoding)
    w.boolean(is_bigendian)
    w.u32(step)
    w.u8_sequence(data)
    return w.getvalue()
