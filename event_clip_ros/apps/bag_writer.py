"""Any recording as a replayable rosbag2 bag of EventPackets (``event-clip to-bag``), without ROS.

The recording (every format :func:`~event_clip_ros.events.readers.open_events`
reads, bags included) is streamed chunk by chunk and cut into packets of
``packet_ms`` of sensor time on a grid starting at the first event, as a
camera driver publishes them. Each packet is encoded (``evt3`` continuing one
stream across packets, or ``mono`` timed from its first event) into an
``event_camera_msgs/msg/EventPacket``:

* header stamp: ``stamp_origin_ns`` + sensor time of the packet's first event
  (the time ``time_base`` / the first event stands for, see
  :mod:`event_clip_ros.apps.event_input`); ``seq`` counts packets from 0;
* log time: ``stamp_origin_ns`` + the packet's end on the grid (when a driver
  would have sent it), so ``event-clip replay`` plays it at recorded timing.

Optional ground truth (a sensor-clock ranges CSV, see
:mod:`event_clip_ros.apps.evaluation.truth`) becomes a std_msgs/String label
topic: each range's label at its start, an empty string where a gap follows.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from ..events.encoders import encode_evt3, encode_mono
from ..events.readers import open_events
from ..events.readers.bag_types import bag_typestore
from ..events.readers.base import EventFileError
from ..events.ros_cdr import EVENT_PACKET_TYPES, encode_event_packet
from ..events.types import SensorSize, concat_events
from .evaluation.bag_input import STRING_MSGTYPE
from .evaluation.truth import TimeRanges

ENCODINGS: tuple[str, ...] = ("evt3", "mono")
STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: mono packets time events as uint32 ns after time_base: at most 4.29 s per packet.
_MONO_MAX_PACKET_MS = 4_000.0


@dataclass(frozen=True)
class BagWriteConfig:
    encoding: str = "evt3"  #: EventPacket payload encoding: evt3 or mono
    packet_ms: float = 1.0  #: sensor time per packet
    storage: str = "mcap"  #: mcap or sqlite3
    topic: str = "/event_camera/events"
    label_topic: str = "/labels"
    frame_id: str = "camera"
    stamp_origin_ns: int = 0  #: ROS time of sensor time 0 (header stamps and log times)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {self.storage!r}")
        if not self.packet_ms * 1000 >= 1:
            raise ValueError(f"packet_ms must be at least 0.001, got {self.packet_ms}")
        if self.encoding == "mono" and self.packet_ms > _MONO_MAX_PACKET_MS:
            raise ValueError(f"mono packets hold at most {_MONO_MAX_PACKET_MS:g} ms, got {self.packet_ms}")
        if not self.topic.startswith("/") or not self.label_topic.startswith("/"):
            raise ValueError("topic names must be absolute (start with '/')")

    @property
    def packet_us(self) -> int:
        return round(self.packet_ms * 1000)


@dataclass(frozen=True)
class Packet:
    """``packet_ms`` of events; ``end_us`` is the end of its slot on the grid (sensor time)."""

    end_us: int
    size: SensorSize
    events: np.ndarray


def cut_packets(chunks: Iterable[np.ndarray], size: SensorSize, packet_us: int) -> Iterator[Packet]:
    """Time-ordered chunks cut into slots of ``packet_us`` starting at the first event (empty slots skipped)."""
    t0: int | None = None
    carry: list[np.ndarray] = []
    carry_slot = 0
    for chunk in chunks:
        if chunk.size == 0:
            continue
        if t0 is None:
            t0 = int(chunk["t"][0])
        slots = (chunk["t"] - t0) // packet_us
        cuts = np.flatnonzero(np.diff(slots)) + 1
        for piece, slot in zip(np.split(chunk, cuts), slots[np.r_[0, cuts]]):
            if carry and slot != carry_slot:
                yield Packet(t0 + (carry_slot + 1) * packet_us, size, concat_events(carry))
                carry = []
            carry.append(piece)
            carry_slot = int(slot)
    if carry:
        assert t0 is not None
        yield Packet(t0 + (carry_slot + 1) * packet_us, size, concat_events(carry))


def recording_packets(path: str | Path, packet_ms: float, topic: str | None = None) -> Iterator[Packet]:
    """A recording cut into packets of ``packet_ms`` (streamed); EventFileError when it holds no events."""
    with open_events(path, topic=topic) as reader:
        empty = True
        for packet in cut_packets(reader.chunks(), reader.size, round(packet_ms * 1000)):
            empty = False
            yield packet
    if empty:
        raise EventFileError(f"{path}: no events")


class PacketEncoder:
    """Packets as serialised EventPackets of one stream (evt3 carries its time state across packets)."""

    def __init__(self, encoding: str, frame_id: str, stamp_origin_ns: int = 0) -> None:
        self.encoding, self.frame_id, self.stamp_origin_ns = encoding, frame_id, stamp_origin_ns
        self.seq = 0
        self._prev_t_us: int | None = None

    def encode(self, packet: Packet, stamp_ns: int | None = None) -> bytes:
        """The next message; ``stamp_ns`` overrides the header stamp (default: origin + first event time)."""
        first_us = int(packet.events["t"][0])
        if self.encoding == "evt3":
            payload, time_base_ns = encode_evt3(packet.events, self._prev_t_us), 0
        else:
            time_base_ns = first_us * 1000
            payload = encode_mono(packet.events, time_base_ns)
        raw = encode_event_packet(
            payload, encoding=self.encoding, width=packet.size.width, height=packet.size.height, seq=self.seq,
            time_base_ns=time_base_ns, frame_id=self.frame_id,
            stamp_ns=self.stamp_origin_ns + first_us * 1000 if stamp_ns is None else stamp_ns)
        self.seq += 1
        self._prev_t_us = int(packet.events["t"][-1])
        return raw


def label_messages(truth: TimeRanges, origin_ns: int) -> list[tuple[int, str]]:
    """(log time ns, text) of the label topic: each range's label at its start, '' where a gap follows."""
    shift = origin_ns if truth.clock == "sensor" else 0
    out: list[tuple[int, str]] = []
    for i, r in enumerate(truth.ranges):
        out.append((shift + r.start_ns, r.label))
        nxt = truth.ranges[i + 1].start_ns if i + 1 < len(truth.ranges) else None
        if nxt is None or nxt > r.end_ns:
            out.append((shift + r.end_ns, ""))
    return out


@dataclass(frozen=True)
class BagSummary:
    path: Path
    size: SensorSize
    packets: int
    events: int
    labels: int  #: label messages written
    start_us: int  #: sensor time of the first event
    end_us: int  #: sensor time just after the last packet


def write_event_bag(
    source: str | Path,
    out: str | Path,
    config: BagWriteConfig = BagWriteConfig(),
    truth: TimeRanges | None = None,
    source_topic: str | None = None,
    on_packet: Callable[[Packet], object] | None = None,
) -> BagSummary:
    """Convert a recording into a bag at ``out`` (a new directory); ``on_packet(packet)`` after each packet.

    On any error (unreadable input, events an encoding cannot hold, Ctrl-C) the partial bag is removed.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new bag path")
    try:
        return _write(source, out, config, truth, source_topic, on_packet)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _write(source: str | Path, out: Path, config: BagWriteConfig, truth: TimeRanges | None,
           source_topic: str | None, on_packet: Callable[[Packet], object] | None) -> BagSummary:
    store = bag_typestore()
    labels = label_messages(truth, config.stamp_origin_ns) if truth is not None else []
    encoder = PacketEncoder(config.encoding, config.frame_id, config.stamp_origin_ns)
    n_events = n_labels = 0
    first: Packet | None = None
    last_us = 0
    with Writer(out, version=9, storage_plugin=STORAGES[config.storage]) as writer:
        events_conn = writer.add_connection(config.topic, EVENT_PACKET_TYPES[0], typestore=store)
        label_conn = writer.add_connection(config.label_topic, STRING_MSGTYPE, typestore=store) if labels else None

        def write_labels(until_ns: int | None) -> None:
            nonlocal n_labels
            while n_labels < len(labels) and (until_ns is None or labels[n_labels][0] <= until_ns):
                assert label_conn is not None  # made when there are labels
                t_ns, text = labels[n_labels]
                msg = store.types[STRING_MSGTYPE](data=text)
                writer.write(label_conn, max(t_ns, 0), bytes(store.serialize_cdr(msg, STRING_MSGTYPE)))
                n_labels += 1

        for packet in recording_packets(source, config.packet_ms, source_topic):
            log_ns = config.stamp_origin_ns + packet.end_us * 1000
            write_labels(log_ns)
            writer.write(events_conn, log_ns, encoder.encode(packet))
            first = first or packet
            n_events += int(packet.events.size)
            last_us = packet.end_us
            if on_packet is not None:
                on_packet(packet)
        write_labels(None)
    assert first is not None  # recording_packets raises for a recording without events
    return BagSummary(out, first.size, encoder.seq, n_events, n_labels, int(first.events["t"][0]), last_us)
