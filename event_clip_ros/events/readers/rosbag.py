"""Event topics of recorded bags (rosbag2 or ROS 1), read without ROS.

Bags are opened by :func:`~.bags.open_bag` (every layout: rosbag2 directories,
with or without a usable metadata.yaml, single .mcap / .db3 files, ROS 1 bags),
the one opener of every tool. The messages of one event topic are read in
recording order and decoded by the same
:mod:`~event_clip_ros.events.packet_stream` stream a ROS node uses, so offline
results equal live ones. Supported types: see
:data:`~event_clip_ros.events.packet_stream.SUPPORTED_MSGTYPES`.

Damaged recordings: a span of storage the bag could step over (a damaged MCAP
chunk, an unconvertible ROS 1 message, a damaged storage file of several) is
skipped and the read goes on; damage that ends what can be read (a file cut
short, a damaged SQLite page) ends the read there. Both are counted in
``stats.bad_packets`` and warned; the events read before stay valid. Events
whose time goes back are dropped (counted), so a reader's events are in time
order (:class:`~.streaming.FileTimeGuard`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..packet_stream import SUPPORTED_MSGTYPES, EventStream, make_stream
from ..types import DecodeStats, SensorSize, concat_events
from .bag_parts import SKIP
from .bags import Bag, open_bag
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import FileTimeGuard, drop_out_of_bounds, split_chunks


@dataclass(frozen=True)
class EventTopic:
    """A topic of a bag whose message type is a supported event message."""

    topic: str
    msgtype: str
    message_count: int


def list_event_topics(path: str | Path) -> list[EventTopic]:
    """The event topics of a bag, sorted by name."""
    with open_bag(path) as bag:
        return event_topics(bag)


class RosbagReader(EventReader):
    """Events of one topic of a bag (rosbag2, or ROS 1: ``format`` "rosbag1").

    ``topic=None`` picks the bag's only event topic. ``size`` and ``encoding``
    come from the first decodable message; events outside ``size`` (the sensor
    size changed mid-bag) are dropped and counted, and so are events earlier
    than the latest time already yielded (a restart the stream followed: a bag
    loop, a repeated span). ``stats`` holds the decoding counters of the last
    ``chunks()`` run.
    """

    format = "rosbag2"

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        super().__init__(path)
        with open_bag(self.path) as bag:
            self.format = "rosbag1" if bag.ros_version == 1 else "rosbag2"
            chosen = choose_topic(self.path, event_topics(bag), all_topics(bag), topic)
            self.topic = chosen.topic
            self.msgtype = chosen.msgtype
            probe = make_stream(self.msgtype)
            damage: list[str] = []
            for raw in _topic_messages(bag, self.topic, probe.stats, damage):
                probe.decode_cdr(raw)
                if probe.size is not None:
                    break
        if probe.size is None:
            problem = probe.last_error or (f"the bag is damaged ({damage[-1]})" if damage else "the topic is empty")
            raise EventFileError(f"{self.path}: no decodable message on {self.topic} ({self.msgtype}); "
                                 f"last problem: {problem}")
        self.size: SensorSize = probe.size
        #: payload encoding of the first message (None for per-event message types)
        self.encoding: str | None = probe.encoding

    def chunks(self) -> Iterator[np.ndarray]:
        stream = make_stream(self.msgtype)
        self.stats = stream.stats
        guard = FileTimeGuard(stream.stats, f"{self.format} {self.topic}")
        pending: list[np.ndarray] = []
        n_pending = 0
        with open_bag(self.path) as bag:
            for raw in _topic_messages(bag, self.topic, stream.stats):
                decoded = stream.decode_cdr(raw).events  # counted in stream.stats.events
                events = guard(self._fit(stream, decoded))
                stream.stats.events -= decoded.shape[0] - events.shape[0]  # count what is yielded
                if not events.size:
                    continue
                pending.append(events)
                n_pending += events.size
                if n_pending >= CHUNK_EVENTS:
                    joined = concat_events(pending)
                    full = n_pending - n_pending % CHUNK_EVENTS
                    yield from split_chunks(joined[:full], CHUNK_EVENTS)
                    pending = [joined[full:]] if full < n_pending else []
                    n_pending -= full
        if pending:
            yield concat_events(pending)

    def _fit(self, stream: EventStream, events: np.ndarray) -> np.ndarray:
        """Keep the events inside ``self.size`` when the stream's geometry differs from it."""
        if stream.size is None or stream.size == self.size:
            return events
        return drop_out_of_bounds(events, self.size, stream.stats, f"{self.format} {self.topic}")


def all_topics(bag: Bag) -> dict[str, str | None]:
    return {name: info.msgtype for name, info in bag.topics.items()}


def event_topics(bag: Bag) -> list[EventTopic]:
    return [
        EventTopic(name, info.msgtype, info.msgcount)
        for name, info in sorted(bag.topics.items())
        if info.msgtype in SUPPORTED_MSGTYPES
    ]


def choose_topic(path: Path, candidates: list[EventTopic], topics: dict[str, str | None],
                  topic: str | None) -> EventTopic:
    """The event topic to read: ``topic``, or the only event topic when None (EventFileError otherwise)."""
    listing = ", ".join(f"{t.topic} ({t.msgtype}, {t.message_count} messages)" for t in candidates) or "none"
    if topic is None:
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise EventFileError(
                f"{path}: no event topic in the bag (topics: {', '.join(sorted(topics)) or 'none'}; "
                f"supported types: {', '.join(SUPPORTED_MSGTYPES)})"
            )
        raise EventFileError(f"{path}: several event topics, choose one with topic=: {listing}")
    if topic not in topics:
        raise EventFileError(f"{path}: no topic {topic!r} in the bag; event topics: {listing}")
    for found in candidates:
        if found.topic == topic:
            return found
    raise EventFileError(
        f"{path}: topic {topic!r} has type {topics[topic]}, which is not a supported event message "
        f"({', '.join(SUPPORTED_MSGTYPES)})"
    )


def guarded_messages(bag: Bag, topics: Iterable[str], on_damage: Callable[[Exception], None],
                     on_skip: Callable[[str], None]) -> Iterator[tuple[Any, int, bytes]]:
    """(connection, log time ns, raw CDR) of ``topics`` in recording order.

    A damaged span the bag stepped over calls ``on_skip(reason)`` and the read
    goes on; damage that ends what can be read (StorageDamage, or anything else
    the storage raises) ends the iteration after calling ``on_damage(error)``.
    """
    wanted = set(topics)
    messages = bag.messages(connections=[c for c in bag.connections if c.topic in wanted])
    while True:
        try:
            conn, log_time_ns, raw = next(messages)
        except StopIteration:
            return
        except Exception as err:  # StorageDamage, or any storage failure: the messages read so far stay valid
            on_damage(err)
            return
        if conn is SKIP:
            on_skip(raw)
            continue
        yield conn, int(log_time_ns), raw


def _topic_messages(bag: Bag, topic: str, stats: DecodeStats, damage: list[str] | None = None) -> Iterator[bytes]:
    """Raw CDR messages of ``topic`` in recording order; storage damage is skipped or ends the read (counted
    in ``stats.bad_packets``, warned, and its description appended to ``damage``)."""

    def damaged(err: Exception) -> None:
        stats.bad_packets += 1
        stats.warn_once("storage", f"bag {topic}: the bag is damaged ({err}); read stops here")
        if damage is not None:
            damage.append(" ".join(str(err).split()) or type(err).__name__)

    def skipped(reason: str) -> None:
        stats.bad_packets += 1
        stats.warn_once("storage_skip", f"bag {topic}: skipped damaged storage ({reason})")
        if damage is not None:
            damage.append(reason)

    for _, _, raw in guarded_messages(bag, [topic], damaged, skipped):
        yield raw
