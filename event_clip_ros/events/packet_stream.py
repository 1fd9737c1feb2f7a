"""Event streams: one ROS event topic turned into event arrays, message by message.

A stream is fed the messages of one topic in arrival (or bag log-time) order
and returns the events of each. The node's input (raw subscription, through
:class:`~event_clip_ros.apps.event_input.EventInput`) and the bag readers use the
same streams, so live, replayed and offline decoding give the same events.

* :class:`EventPacketStream` (``event_camera_msgs/msg/EventPacket``): encoded
  payloads whose decoder state (time base, row, partial words) carries over
  from packet to packet, so one decoder decodes the whole stream. Sequence
  numbers reveal lost packets (counted, decoding goes on, as in
  event_camera_codecs) and restarts (seq going back: bag loop, driver restart),
  which reset the decoder; a jump ahead beyond ``max_seq_gap`` is a garbage
  seq, counted in ``seq_resets``, not as millions of lost packets. A change of
  encoding or geometry starts a new decoder.
* :class:`EventArrayStream` (dvs_msgs-style ``EventArray``): self-contained
  messages; events outside the sensor are dropped.

Time stays plausible in both (:mod:`event_clip_ros.events.time_guard`): negative
and backward times and jumps far ahead are dropped and counted; a new time that
consecutive packets agree on is a restart. Sensor sizes beyond the encoding's
address range or :class:`~event_clip_ros.events.limits.StreamLimits` are refused.

Nothing here raises on bad data: unparsable messages, unknown encodings and
invalid geometry are counted in ``stats`` (``bad_packets``), logged once per
kind, and give an empty array.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from .decoders import make_decoder
from .decoders.base import Allocator, Decoder, Payload
from .limits import DEFAULT_LIMITS, StreamLimits
from .readers.streaming import drop_out_of_bounds
from .ros_cdr import (
    EVENT_ARRAY_TYPES,
    EVENT_PACKET_TYPES,
    CdrError,
    EventArrayMsg,
    EventPacketMsg,
    parse_event_array,
    parse_event_packet,
)
from .time_guard import TimeGuard
from .types import DecodeStats, SensorSize, empty_events

#: ROS type names :func:`make_stream` accepts.
SUPPORTED_MSGTYPES = EVENT_PACKET_TYPES + EVENT_ARRAY_TYPES

# Counters a decoder keeps that the stream folds into its own stats ("packets"
# is counted by the stream, which also sees the packets it cannot decode).
_DECODER_COUNTERS = tuple(name for name in DecodeStats().as_dict() if name != "packets")


MsgT = TypeVar("MsgT", EventPacketMsg, EventArrayMsg)


@dataclass(frozen=True)
class DecodedMessage:
    """One message of a stream, decoded: its events and what maps their sensor time to ROS time."""

    events: np.ndarray  #: :data:`EVENT_DTYPE`, plausible, in time order (empty for a skipped message)
    size: SensorSize | None  #: the sensor geometry of the stream (None before a good message)
    stamp_ns: int  #: the message's header.stamp (ns; 0 for an unparsable message)
    reference_us: int  #: the sensor time (us) that header.stamp belongs to (time_base or first event)
    frame_id: str
    #: the stream restarted before these events (seq went back, a confirmed time jump, a new
    #: encoding or size): windows and the sensor-to-ROS clock offset start afresh
    restarted: bool


class EventStream(ABC, Generic[MsgT]):
    """Events of one ROS topic, decoded message by message in order."""

    def __init__(self, msgtype: str, limits: StreamLimits = DEFAULT_LIMITS) -> None:
        self.msgtype = msgtype
        self.limits = limits
        self.stats = DecodeStats()
        #: sensor geometry of the current messages (None before the first good one)
        self.size: SensorSize | None = None
        #: payload encoding of the current messages (None for per-event messages)
        self.encoding: str | None = None
        #: why the last skipped message was skipped (for diagnostics and error messages)
        self.last_error: str | None = None

    def decode_cdr(self, raw: Payload, alloc: Allocator = empty_events) -> DecodedMessage:
        """Decode one serialised message, in stream order; an unparsable one is counted and gives no events.

        ``alloc``: where an encoded payload's events are written (e.g. a windower's ``reserve``, so that they
        land in its buffer with no copy); per-event messages ignore it."""
        try:
            msg = self._parse(raw)
        except CdrError as err:
            self.stats.packets += 1
            return DecodedMessage(self._bad_packet("cdr", f"unparsable message ({err})"), self.size, 0, 0, "", False)
        resets = self.stats.time_resets
        events = self.feed(msg, alloc)
        reference_us = self._reference_us(msg, events)
        return DecodedMessage(events, self.size, msg.stamp_ns, reference_us, msg.frame_id,
                              self.stats.time_resets != resets)

    def _reference_us(self, msg: MsgT, events: np.ndarray) -> int:
        """The sensor time the header stamp of ``msg`` belongs to: its first event's (0 without events)."""
        return int(events["t"][0]) if events.shape[0] else 0

    @staticmethod
    @abstractmethod
    def _parse(raw: Payload) -> MsgT:
        """Parse one serialised message of this stream's type (raises CdrError)."""

    @abstractmethod
    def feed(self, msg: MsgT, alloc: Allocator = empty_events) -> np.ndarray:
        """Decode one parsed message, in stream order (``alloc``: see :meth:`decode_cdr`)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the stream state: the next message starts a new stream."""

    def _bad_packet(self, kind: str, message: str) -> np.ndarray:
        self.stats.bad_packets += 1
        self.last_error = message
        self.stats.warn_once(kind, f"{self.msgtype}: {message}; skipping such messages")
        return empty_events()

    def _restart(self, kind: str, message: str) -> None:
        self.stats.time_resets += 1
        self.stats.warn_once(kind, f"{self.msgtype}: {message}")


class EventPacketStream(EventStream[EventPacketMsg]):
    """Stateful decoding of an EventPacket stream with one decoder per stream."""

    _parse = staticmethod(parse_event_packet)

    def __init__(self, msgtype: str = EVENT_PACKET_TYPES[0], limits: StreamLimits = DEFAULT_LIMITS) -> None:
        super().__init__(msgtype, limits)
        self._decoder: Decoder | None = None
        self._format: tuple[str, int, int] | None = None  # (encoding, width, height) last seen
        self._format_error = ""  # why there is no decoder for _format
        self._last_seq: int | None = None
        self._folded = dict.fromkeys(_DECODER_COUNTERS, 0)

    def feed(self, msg: EventPacketMsg, alloc: Allocator = empty_events) -> np.ndarray:
        """Decode one parsed packet in stream order, into ``alloc``'s array."""
        self.stats.packets += 1
        fmt = (msg.encoding, msg.width, msg.height)
        if fmt != self._format:
            self._open(fmt)
            self._last_seq = msg.seq
        else:
            self._last_seq = self._checked_seq(msg.seq)
        if self._decoder is None:
            return self._bad_packet(f"format:{fmt}", self._format_error)
        events = self._decoder.decode(msg.events, msg.time_base_ns, alloc)
        self._fold_decoder_stats()
        return events

    def reset(self) -> None:
        if self._decoder is not None:
            self._decoder.reset()
        self._last_seq = None

    def _reference_us(self, msg: EventPacketMsg, events: np.ndarray) -> int:
        """Encodings timed from ``time_base`` (mono, libcaer, libcaer_cmp) stamp the time base; evt3
        (time_base unused) stamps its first event."""
        if self._decoder is not None and self._decoder.stamps_time_base:
            return msg.time_base_ns // 1000
        return super()._reference_us(msg, events)

    def _open(self, fmt: tuple[str, int, int]) -> None:
        """Start a new decoder for a new (encoding, width, height), or note why there is none."""
        encoding, width, height = fmt
        if self._format is not None:
            self._restart("format", f"stream changed from {self._format} to {fmt} (encoding, width, height); "
                                    "starting a new decoder")
        self._format = fmt
        self._folded = dict.fromkeys(_DECODER_COUNTERS, 0)
        self.encoding = encoding
        self.size = None
        self._decoder = None
        try:
            size = SensorSize(width, height)
            self._decoder = make_decoder(encoding, size, self.limits)
        except ValueError as err:  # UnknownEncodingError or an invalid geometry
            self._format_error = str(err)
            return
        self.size = size

    def _checked_seq(self, seq: int) -> int:
        """Count what ``seq`` says about lost packets and restarts; return the seq to compare the next one with."""
        last = self._last_seq
        if last is None or self._decoder is None or seq == last + 1:
            return seq
        if seq == last:
            # Drivers that do not fill seq repeat one value: nothing to check.
            return seq
        if seq - last - 1 > self.limits.max_seq_gap:
            # garbage, not millions of lost packets: take it for the next packet's seq
            self.stats.seq_resets += 1
            self.stats.warn_once("seq_jump", f"{self.msgtype}: sequence number jumped from {last} to {seq}, beyond "
                                             f"max_seq_gap {self.limits.max_seq_gap}; not counted as lost packets")
            return last + 1
        if seq > last:
            self.stats.lost_packets += seq - last - 1
            self.stats.warn_once("lost", f"{self.msgtype}: sequence numbers skipped (packets lost before "
                                         f"seq {seq}); decoding continues")
            return seq
        self._restart("seq_reset", f"sequence number went back from {last} to {seq} (bag loop or driver "
                                   "restart); decoder reset")
        assert self._decoder is not None
        self._decoder.reset()
        return seq

    def _fold_decoder_stats(self) -> None:
        """Add what the decoder counted since the last call into the stream's stats."""
        assert self._decoder is not None
        current = self._decoder.stats
        for name in _DECODER_COUNTERS:
            value = getattr(current, name)
            delta = value - self._folded[name]
            if delta:
                setattr(self.stats, name, getattr(self.stats, name) + delta)
                self._folded[name] = value


class EventArrayStream(EventStream[EventArrayMsg]):
    """dvs_msgs / prophesee_event_msgs / dv_ros2_msgs EventArray messages."""

    _parse = staticmethod(parse_event_array)

    def __init__(self, msgtype: str = EVENT_ARRAY_TYPES[0], limits: StreamLimits = DEFAULT_LIMITS) -> None:
        super().__init__(msgtype, limits)
        self._guard = TimeGuard(self.stats, msgtype, limits)

    def feed(self, msg: EventArrayMsg, alloc: Allocator = empty_events) -> np.ndarray:
        """Check and return the events of one parsed message (already an array: ``alloc`` is not used)."""
        self.stats.packets += 1
        try:
            size = SensorSize(msg.width, msg.height)
            self.limits.check_size(size, self.msgtype)
        except ValueError as err:
            return self._bad_packet(f"size:{msg.width}x{msg.height}", str(err))
        if self.size is not None and size != self.size:
            self._restart("format", f"sensor size changed from {self.size} to {size}")
            self._guard.reset()
        self.size = size
        events = self._guard(drop_out_of_bounds(msg.events, size, self.stats, self.msgtype))
        self.stats.events += events.size
        return events

    def reset(self) -> None:
        self._guard.reset()


def make_stream(msgtype: str, limits: StreamLimits = DEFAULT_LIMITS) -> EventStream:
    """The stream for a ROS message type name, e.g. 'event_camera_msgs/msg/EventPacket'."""
    if msgtype in EVENT_PACKET_TYPES:
        return EventPacketStream(msgtype, limits)
    if msgtype in EVENT_ARRAY_TYPES:
        return EventArrayStream(msgtype, limits)
    raise ValueError(f"unsupported event message type {msgtype!r}; supported: {', '.join(SUPPORTED_MSGTYPES)}")
