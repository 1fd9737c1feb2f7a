"""rosbag2 recordings of event topics, read without ROS (rosbags library).

A bag is a directory with ``metadata.yaml`` and its ``.mcap`` / ``.db3``
files, or a single ``.mcap`` / ``.db3`` file. The raw CDR messages of one
event topic are read in log-time order and decoded by the same
:mod:`~event_clip_ros.events.packet_stream` stream a ROS node uses, so offline
results equal live ones. Supported types: see
:data:`~event_clip_ros.events.packet_stream.SUPPORTED_MSGTYPES`.

Damaged recordings: a directory whose ``metadata.yaml`` is missing (recorder
killed) but which holds a single storage file is read from that file, with a
warning; an MCAP file without its footer cannot be opened (EventFileError
suggesting ``mcap recover``); storage damage met in the middle of a read ends
the read there, counted in ``stats.bad_packets`` and warned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader

from ..packet_stream import SUPPORTED_MSGTYPES, EventStream, make_stream
from ..types import DecodeStats, SensorSize, concat_events, log
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import drop_out_of_bounds, split_chunks

_STORAGE_SUFFIXES = (".mcap", ".db3")


@dataclass(frozen=True)
class EventTopic:
    """A topic of a bag whose message type is a supported event message."""

    topic: str
    msgtype: str
    message_count: int


def list_event_topics(path: str | Path) -> list[EventTopic]:
    """The event topics of a bag, sorted by name."""
    path = Path(path)
    with open_bag(path, storage_path(path)) as bag:
        return event_topics(bag)


class RosbagReader(EventReader):
    """Events of one topic of a rosbag2 recording.

    ``topic=None`` picks the bag's only event topic. ``size`` and ``encoding``
    come from the first decodable message; events outside ``size`` (the sensor
    size changed mid-bag) are dropped and counted. ``stats`` holds the
    decoding counters of the last ``chunks()`` run.
    """

    format = "rosbag2"

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        super().__init__(path)
        self._storage = storage_path(self.path)
        with open_bag(self.path, self._storage) as bag:
            chosen = choose_topic(self.path, event_topics(bag), all_topics(bag), topic)
            self.topic = chosen.topic
            self.msgtype = chosen.msgtype
            probe = make_stream(self.msgtype)
            for raw in _topic_messages(bag, self.topic, probe.stats):
                probe.feed_cdr(raw)
                if probe.size is not None:
                    break
        if probe.size is None:
            raise EventFileError(
                f"{self.path}: no decodable message on {self.topic} ({self.msgtype}); "
                f"last problem: {probe.last_error or 'the topic is empty'}"
            )
        self.size: SensorSize = probe.size
        #: payload encoding of the first message (None for per-event message types)
        self.encoding: str | None = probe.encoding

    def chunks(self) -> Iterator[np.ndarray]:
        stream = make_stream(self.msgtype)
        self.stats = stream.stats
        pending: list[np.ndarray] = []
        n_pending = 0
        with open_bag(self.path, self._storage) as bag:
            for raw in _topic_messages(bag, self.topic, stream.stats):
                events = self._fit(stream, stream.feed_cdr(raw))
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


def storage_path(path: Path) -> Path:
    """What to hand to rosbags: the bag directory, or a lone storage file of a bag without metadata."""
    if not path.exists():
        raise EventFileError(f"{path}: no such bag (a rosbag2 directory or a .mcap / .db3 file)")
    if not path.is_dir() or (path / "metadata.yaml").exists():
        return path
    files = sorted(p for p in path.iterdir() if p.suffix in _STORAGE_SUFFIXES)
    if not files:
        raise EventFileError(f"{path}: not a rosbag2 directory (no metadata.yaml, no .mcap or .db3 file)")
    if len(files) > 1:
        raise EventFileError(
            f"{path}: rosbag2 directory without metadata.yaml and with {len(files)} storage files; "
            f"run 'ros2 bag reindex {path}' first"
        )
    log.warning("%s: no metadata.yaml (recording not closed cleanly?); reading %s directly", path, files[0].name)
    return files[0]


@contextmanager
def open_bag(path: Path, storage: Path) -> Iterator[Reader]:
    """Open a bag with rosbags, turning anything it refuses into an EventFileError."""
    try:
        bag = Reader(storage)
        bag.open()
    except Exception as err:  # rosbags reports damage as ReaderError, apsw errors, OSError, ...
        hint = " (an MCAP file cut short has no footer: 'mcap recover' can rebuild it)" if (
            storage.suffix == ".mcap" and "magic" in str(err)) else ""
        raise EventFileError(f"{path}: cannot open rosbag2 recording: {err}{hint}") from err
    try:
        yield bag
    finally:
        bag.close()


def all_topics(bag: Reader) -> dict[str, str | None]:
    return {name: info.msgtype for name, info in bag.topics.items()}


def event_topics(bag: Reader) -> list[EventTopic]:
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


def guarded_messages(bag: Reader, topics: Iterable[str],
                     on_damage: Callable[[Exception], None]) -> Iterator[tuple[Any, int, bytes]]:
    """(connection, log time ns, raw CDR) of ``topics`` in log-time order; damaged storage (ReaderError,
    apsw.Error, decompression errors, ...) ends the iteration after calling ``on_damage(error)``."""
    wanted = set(topics)
    messages = bag.messages(connections=[c for c in bag.connections if c.topic in wanted])
    while True:
        try:
            conn, log_time_ns, raw = next(messages)
        except StopIteration:
            return
        except Exception as err:  # any storage failure: the messages read so far stay valid
            on_damage(err)
            return
        yield conn, int(log_time_ns), raw


def _topic_messages(bag: Reader, topic: str, stats: DecodeStats) -> Iterator[bytes]:
    """Raw CDR messages of ``topic`` in log-time order; storage damage ends the read (counted)."""

    def damaged(err: Exception) -> None:
        stats.bad_packets += 1
        stats.warn_once("storage", f"rosbag2 {topic}: the bag is damaged ({err}); read stops here")

    for _, _, raw in guarded_messages(bag, [topic], damaged):
        yield raw
