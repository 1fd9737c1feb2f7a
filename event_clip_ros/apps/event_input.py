"""One event topic turned into windows stamped in ROS time: the detector's input side.

:class:`EventInput` is fed the serialised messages of one topic in arrival order
(``feed_cdr``, called from the subscription callback for *every* message, since
the decoders are stateful) or already decoded events (``feed_events``, for
recordings). It decodes them with the event layer's stream
(:func:`~event_clip_ros.events.packet_stream.make_stream`), cuts windows on
decoded sensor time with a :class:`~event_clip_ros.events.windows.Windower` and
returns the windows each message completes as :class:`PendingWindow`.

Sensor time to ROS time
    One offset per stream: ``offset_ns = header.stamp - sensor time of that
    stamp`` of the first message with events, and a window's stamp is
    ``offset_ns + t_end_us * 1000``. For the EventPacket encodings timed from
    ``time_base`` (mono, libcaer, libcaer_cmp) the header stamp belongs to
    ``time_base``; for evt3 (``time_base`` unused, 0) and the EventArray types it
    belongs to the first event of the message. Clock drift between sensor and
    host is not corrected; the offset is learned again whenever the stream
    restarts.

Stream restarts
    A restart seen by the stream (sequence number going back, a new encoding or
    sensor size, EventArray time going back) or time going back more than the
    windower's ``reset_tolerance_us`` at the start of a message closes the open
    windows (emitted with the old size and offset, as ``flush`` would) and
    starts windowing and the clock offset afresh. Bad messages are counted by
    the stream and give no events; nothing here raises on bad input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..events.decoders import DECODERS
from ..events.decoders.base import Payload, TimeBaseDecoder
from ..events.packet_stream import EventPacketStream, make_stream
from ..events.ros_cdr import CdrError, parse_event_array, parse_event_packet
from ..events.types import EVENT_DTYPE, SensorSize
from ..events.windows import Window, WindowConfig, Windower

_NS_PER_US = 1_000


@dataclass(frozen=True)
class PendingWindow:
    """A completed window waiting for inference, with what its result needs."""

    window: Window
    size: SensorSize  #: sensor geometry of the window's events
    stamp_ns: int  #: the window's end (t_end_us) mapped to ROS time, ns
    frame_id: str  #: header.frame_id of the messages the events came in
    ready_ns: int  #: time.monotonic_ns() when the window completed (latency origin)

    @property
    def n_events(self) -> int:
        return int(self.window.events.shape[0])


def _timed_from_time_base(encoding: str | None) -> bool:
    """Whether an EventPacket encoding's event times count from ``time_base`` (header stamp = time_base)."""
    cls = DECODERS.get(encoding or "")
    return cls is not None and issubclass(cls, TimeBaseDecoder)


class EventInput:
    """Decode one topic's messages in order and cut windows on sensor time (see module doc)."""

    def __init__(self, msgtype: str, window: WindowConfig) -> None:
        self.msgtype = msgtype
        self.stream = make_stream(msgtype)  # ValueError for an unsupported type
        self._is_packet = isinstance(self.stream, EventPacketStream)
        self._parse = parse_event_packet if self._is_packet else parse_event_array
        self.windower = Windower(window)
        self._size: SensorSize | None = None
        self._frame_id = ""
        self._offset_ns: int | None = None
        self._last_t_us: int | None = None
        self.restarts = 0  #: stream restarts that closed the open windows and relearned the clock offset

    @property
    def window_config(self) -> WindowConfig:
        return self.windower.config

    def feed_cdr(self, raw: Payload) -> list[PendingWindow]:
        """Decode one serialised message (in stream order); return the windows it completes."""
        try:
            msg = self._parse(raw)
        except CdrError:
            self.stream.feed_cdr(raw)  # the stream counts and logs the unparsable message
            return []
        resets_before = self.stream.stats.time_resets
        events = self.stream.feed(msg)
        out = self._restart() if self.stream.stats.time_resets != resets_before else []
        if events.shape[0] == 0:
            return out
        if self._is_packet and _timed_from_time_base(msg.encoding):
            reference_us = msg.time_base_ns // _NS_PER_US
        else:
            reference_us = int(events["t"][0])
        out += self._push(events, self.stream.size, msg.stamp_ns - reference_us * _NS_PER_US, msg.frame_id)
        return out

    def feed_events(
        self, events: np.ndarray, size: SensorSize, stamp_ns: int | None = None, frame_id: str = ""
    ) -> list[PendingWindow]:
        """Push decoded events (EVENT_DTYPE, time-ordered); return the windows they complete.

        ``stamp_ns``: ROS time of the first event, which fixes the clock offset
        when none is known yet; without it window stamps are sensor time in ns.
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise ValueError("feed_events expects a 1-D EVENT_DTYPE array")
        out = self._restart() if self._size is not None and size != self._size else []
        if events.shape[0] == 0:
            return out
        first_us = int(events["t"][0])
        offset = 0 if stamp_ns is None else stamp_ns - first_us * _NS_PER_US
        return out + self._push(events, size, offset, frame_id)

    def flush(self) -> list[PendingWindow]:
        """End of the stream: emit the open windows that hold enough events, then start afresh."""
        return self._restart(count=False)

    def _push(self, events: np.ndarray, size: SensorSize, offset_ns: int, frame_id: str) -> list[PendingWindow]:
        out: list[PendingWindow] = []
        first_us = int(events["t"][0])
        tolerance = self.windower.config.reset_tolerance_us
        if self._last_t_us is not None and first_us < self._last_t_us - tolerance:
            out += self._restart()  # time went back: camera restart or a bag loop the stream did not see
        self._size = size
        self._frame_id = frame_id
        if self._offset_ns is None:
            self._offset_ns = offset_ns
        self._last_t_us = max(int(events["t"][-1]), self._last_t_us or first_us)
        out += self._pending(self.windower.push(events))
        return out

    def _restart(self, count: bool = True) -> list[PendingWindow]:
        """Close the open windows with the old size and offset; forget the stream's clock."""
        out = self._pending(self.windower.flush())
        self._offset_ns = None
        self._last_t_us = None
        if count:
            self.restarts += 1
        return out

    def _pending(self, windows: list[Window]) -> list[PendingWindow]:
        if not windows:
            return []
        assert self._size is not None and self._offset_ns is not None
        ready = time.monotonic_ns()
        return [
            PendingWindow(w, self._size, self._offset_ns + w.t_end_us * _NS_PER_US, self._frame_id, ready)
            for w in windows
        ]

    def counters(self) -> dict[str, int]:
        """Decode and window counters (cumulative), with names that say where they come from."""
        decode = self.stream.stats.as_dict()
        window = self.windower.stats.as_dict()
        return {
            "packets": decode["packets"],
            "events": decode["events"],
            "bad_packets": decode["bad_packets"],
            "lost_packets": decode["lost_packets"],
            "decode_errors": decode["bad_packets"] + decode["unknown_words"] + decode["time_errors"],
            "truncated_bytes": decode["truncated_bytes"],
            "out_of_bounds_events": decode["out_of_bounds"],
            "stream_restarts": self.restarts,
            "windows": window["windows"],
            "skipped_windows": window["skipped_windows"],
            "capped_windows": window["capped_windows"],
        }
