"""``event-clip replay``: a bag's messages played into ROS at their recorded timing (rclpy), for installs
without ``ros2 bag play``; :func:`play` is also the player of ``event-clip evaluate --live``.

Delivery: a message published before the subscriber's reader has matched the
writer is lost. :func:`replay_bag` therefore waits until the subscriptions on
its topics have matched (:func:`wait_for_subscribers`), publishes with a QoS that
matches theirs (reliable when one of them is: a reliable writer also serves
best-effort readers, and resends to reliable ones what they missed) and, at the
end, waits until reliable readers have acknowledged everything. A best-effort
reader may still match the writer a moment after the writer matched it (the
discovery of each side runs on its own); :data:`MATCH_SETTLE_S` covers that on one
host. Playing into a detector node it starts itself: :mod:`.node_process`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rclpy.duration import Duration
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..apps.evaluation.bag_input import BagTopics, bag_messages, inspect_bag
from ..events.packet_stream import SUPPORTED_MSGTYPES
from .interfaces import EVENT_QOS, message_class
from .session import NS_PER_S, ReplayError, RosSession

#: Non-event topics are played reliable with a short history (labels, strings, ...).
OTHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
#: After the writer has matched every subscription: time for the readers to match the writer, s.
MATCH_SETTLE_S = 0.3
#: At the end: how long reliable readers get to acknowledge the last messages, s.
ACK_TIMEOUT_S = 5.0
#: At the end: how long best-effort writers stay after their last message, s. No acknowledgement says when a
#: best-effort reader has the last messages, and a reader drops data that its receive thread gets to only after
#: discovery has removed the writer: on a loaded machine a replay that exits at once lost its last packet.
LINGER_S = 1.0


def replay_qos(default: QoSProfile, subscriptions: Sequence[Any]) -> QoSProfile:
    """``default`` made to match every subscription (TopicEndpointInfo) seen on the topic.

    Reliable when a subscription is reliable (a reliable writer serves best-effort readers too),
    transient local when one asks for it; history and depth stay ``default``'s.
    """
    qos = QoSProfile(history=default.history, depth=default.depth, reliability=default.reliability,
                     durability=default.durability)
    for info in subscriptions:
        if info.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
            qos.reliability = ReliabilityPolicy.RELIABLE
        if info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL:
            qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
    return qos


def discover_subscriptions(session: RosSession, topics: Sequence[str], timeout_s: float) -> dict[str, list]:
    """topic -> its subscriptions in the graph, once at least one topic has one; ReplayError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {t: list(session.node.get_subscriptions_info_by_topic(t)) for t in topics}
        if any(found.values()):
            return found
        if time.monotonic() > deadline:
            raise ReplayError(f"nothing subscribes to {', '.join(topics)} after {timeout_s:g} s: start the "
                              "subscriber (e.g. the detector node) first, or pass --wait-s 0 to publish anyway")
        session.spin_once(0.05)


def wait_for_subscribers(session: RosSession, publishers: dict[str, Any], expected: dict[str, int],
                         timeout_s: float, settle_s: float = MATCH_SETTLE_S) -> None:
    """Until each publisher has matched ``expected[topic]`` subscriptions (and more that appear meanwhile),
    then ``settle_s`` more for the readers' side; ReplayError naming the topics that did not match."""
    deadline = time.monotonic() + timeout_s

    def unmatched() -> list[str]:
        out = []
        for topic, pub in publishers.items():
            want = max(expected.get(topic, 0), sum(1 for _ in session.node.get_subscriptions_info_by_topic(topic)))
            if pub.get_subscription_count() < want:
                out.append(f"{topic} ({pub.get_subscription_count()} of {want})")
        return out

    while missing := unmatched():
        if time.monotonic() > deadline:
            raise ReplayError(f"subscriptions did not match within {timeout_s:g} s: {', '.join(missing)} "
                              "(incompatible QoS? the subscriber's reliability or durability)")
        session.spin_once(0.02)
    session.wait_until(time.time_ns() + int(settle_s * NS_PER_S))


def replay_bag(path: str | Path, topics: Sequence[str] | None = None, rate: float = 1.0, loop: bool = False,
               wait_s: float = 30.0) -> int:
    """Publish a bag's messages (raw CDR) at their recorded timing scaled by ``rate``; Ctrl-C stops.

    First waits up to ``wait_s`` until something subscribes to one of the topics and every subscription
    has matched (0: publish at once, whoever listens); returns 1 with a message when nothing subscribes.
    Event topics get the drivers' QoS (best effort) and the others reliable, each made reliable or
    transient local where a subscription asks for it; ``loop`` plays again from the start.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if not wait_s >= 0:
        raise ValueError(f"wait_s must be >= 0, got {wait_s}")
    bag = inspect_bag(path)
    chosen = list(topics) if topics else sorted(bag.topics)
    unknown = [t for t in chosen if t not in bag.topics]
    if unknown:
        raise ValueError(f"{path}: no topic {', '.join(unknown)} (topics: {', '.join(sorted(bag.topics))})")
    mixed = [t for t in chosen if bag.topics[t] is None]
    if mixed:
        raise ValueError(f"{path}: topic {', '.join(mixed)} mixes message types")
    with RosSession(f"event_clip_replay_{os.getpid()}") as session:
        passes = 0
        try:
            subscriptions = discover_subscriptions(session, chosen, wait_s) if wait_s > 0 else {}
            publishers: dict[str, Publisher] = {}
            for topic in chosen:
                msgtype = bag.topics[topic]
                assert msgtype is not None  # mixed topics are refused above
                default = EVENT_QOS if msgtype in SUPPORTED_MSGTYPES else OTHER_QOS
                qos = replay_qos(default, subscriptions.get(topic, []))
                publishers[topic] = session.node.create_publisher(message_class(msgtype), topic, qos)
            if wait_s > 0:
                wait_for_subscribers(session, publishers, {t: len(s) for t, s in subscriptions.items()}, wait_s)
                print(f"replay: {', '.join(f'{t} ({p.get_subscription_count()})' for t, p in publishers.items())} "
                      "subscribed", flush=True)
            while True:
                count = play(session, bag, publishers, rate)
                passes += 1
                print(f"replay: pass {passes}: {count} messages", flush=True)
                if not loop:
                    break
            for topic, pub in publishers.items():
                if pub.qos_profile.reliability == ReliabilityPolicy.RELIABLE and pub.get_subscription_count():
                    if not pub.wait_for_all_acked(Duration(nanoseconds=int(ACK_TIMEOUT_S * NS_PER_S))):
                        print(f"replay: {topic}: not every subscriber acknowledged the last messages "
                              f"within {ACK_TIMEOUT_S:g} s", file=sys.stderr, flush=True)
            if any(pub.qos_profile.reliability != ReliabilityPolicy.RELIABLE and pub.get_subscription_count()
                   for pub in publishers.values()):
                time.sleep(LINGER_S)  # best effort: give the readers' receive threads the last messages
            return 0
        except ReplayError as exc:
            print(f"event-clip replay: {exc}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            return 0


def play(session: RosSession, bag: BagTopics, publishers: dict[str, Any], rate: float,
         start_ns: int | None = None) -> int:
    """One pass: each message of the publishers' topics published when its log time is due; returns the count."""
    start_ns = time.time_ns() if start_ns is None else start_ns
    first_log_ns: int | None = None
    count = 0
    for message in bag_messages(bag, list(publishers)):
        if first_log_ns is None:
            first_log_ns = message.log_time_ns
        session.wait_until(start_ns + int((message.log_time_ns - first_log_ns) / rate))
        publishers[message.topic].publish(message.raw)
        count += 1
    return count
