"""Raw messages of a bag (rosbag2 or ROS 1) with their log times, read without ROS (rosbags).

The evaluator feeds the event topic's serialised messages to the
:class:`~event_clip_ros.apps.detector.Detector` exactly as the node's raw
subscription would; the replayer publishes them at their log times; the label
topic (std_msgs/String) gives ground truth. Bag opening, topic choice and the
errors for a missing, damaged or unindexed bag are the event readers'
(:func:`event_clip_ros.events.readers.bags.open_bag`), so every tool opens the
same bags and words the errors alike; ROS 1 messages arrive as CDR.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.stores.latest import std_msgs__msg__String as StringMsg

from ...events.readers.bags import open_bag
from ...events.readers.base import EventFileError
from ...events.readers.rosbag import all_topics, choose_topic, event_topics, guarded_messages
from ...events.types import log

STRING_MSGTYPE = "std_msgs/msg/String"


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int  #: when the recorder received the message (ROS time)
    raw: bytes  #: serialised CDR (ROS 1 messages converted)


@dataclass
class BagReadStats:
    """What a pass over a bag met: messages read, damaged spans stepped over, and whether damage ended it early."""

    messages: int = 0
    damaged: str | None = None  #: the storage error that ended the read, None when the bag was read to its end
    topics: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  #: damaged storage spans stepped over (the read went on)


@dataclass(frozen=True)
class BagTopics:
    """A bag's topics and, when one was chosen, its event topic (chosen as the event reader chooses it)."""

    path: Path
    topics: dict[str, str | None]  #: every topic -> its type (None: connections of mixed types)
    start_ns: int
    end_ns: int
    event_topic: str = ""  #: "" when no event topic was chosen (:func:`inspect_bag`)
    msgtype: str = ""
    message_count: int = 0  #: messages of the event topic


def inspect_bag(path: str | Path) -> BagTopics:
    """A bag's topics and time span, no event topic chosen; EventFileError when it cannot be opened."""
    path = Path(path)
    with open_bag(path) as bag:
        return BagTopics(path, all_topics(bag), int(bag.start_time), int(bag.end_time))


def open_bag_topics(path: str | Path, topic: str | None = None) -> BagTopics:
    """Inspect a bag and choose its event topic; EventFileError naming the problem (no such topic, mixed types, ...)."""
    path = Path(path)
    with open_bag(path) as bag:
        topics = all_topics(bag)
        if topic is not None and topic in topics and topics[topic] is None:
            types = sorted({c.msgtype for c in bag.connections if c.topic == topic})
            raise EventFileError(f"{path}: topic {topic!r} mixes message types ({', '.join(types)}); "
                                 "a detector input has one type")
        chosen = choose_topic(path, event_topics(bag), topics, topic)
        return BagTopics(path, topics, int(bag.start_time), int(bag.end_time), chosen.topic, chosen.msgtype,
                         chosen.message_count)


def bag_messages(bag: BagTopics, topics: Sequence[str], stats: BagReadStats | None = None) -> Iterator[BagMessage]:
    """Messages of ``topics`` in recording order; a damaged span is stepped over and damage that ends what can
    be read ends the iteration (both recorded in ``stats``, warned)."""
    stats = stats if stats is not None else BagReadStats()

    def damaged(err: Exception) -> None:
        stats.damaged = str(err) or type(err).__name__
        log.warning("%s: the bag is damaged after %d messages (%s); read stops here", bag.path, stats.messages, err)

    def skipped(reason: str) -> None:
        if not stats.skipped:
            log.warning("%s: skipped damaged storage after %d messages (%s); further skips are only counted",
                        bag.path, stats.messages, reason)
        stats.skipped.append(reason)

    with open_bag(bag.path) as reader:
        for conn, log_time_ns, raw in guarded_messages(reader, topics, damaged, skipped):
            stats.messages += 1
            stats.topics[conn.topic] = stats.topics.get(conn.topic, 0) + 1
            yield BagMessage(conn.topic, conn.msgtype, log_time_ns, bytes(raw))


def read_label_messages(bag: BagTopics, topic: str) -> list[tuple[int, str]]:
    """(log time ns, text) of a std_msgs/String label topic; EventFileError when it is missing or of another type."""
    if topic not in bag.topics:
        raise EventFileError(f"{bag.path}: no label topic {topic!r} (topics: {', '.join(sorted(bag.topics))})")
    if bag.topics[topic] != STRING_MSGTYPE:
        raise EventFileError(f"{bag.path}: label topic {topic!r} has type {bag.topics[topic]}, expected {STRING_MSGTYPE}")
    store = get_typestore(Stores.LATEST)
    return [(m.log_time_ns, cast(StringMsg, store.deserialize_cdr(m.raw, STRING_MSGTYPE)).data) for m in bag_messages(bag, [topic])]
