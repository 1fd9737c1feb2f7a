"""``event-clip record``: topics into a rosbag2 bag through raw subscriptions (for installs without rosbag2).

Each topic's type is discovered from the graph (waits until every topic has a
publisher), subscribed raw with a best-effort QoS (it matches reliable and
best-effort publishers) and written as received, log time = receive time, with
rosbags' Writer. Message definitions come from rosbags' typestore plus the event
types of :mod:`event_clip_ros.events.ros_cdr`; a type unknown to both is refused.
Stops on Ctrl-C, after ``duration_s`` or ``max_messages``; the bag is closed
cleanly in every case.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Writer

from ..apps.bag_writer import STORAGES
from ..events.readers.bag_types import bag_typestore
from .interfaces import message_class
from .session import ReplayError, RosSession

#: Best effort matches every publisher; a deep history absorbs bursts between callbacks.
RECORD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)


def record_bag(out: str | Path, topics: Sequence[str], storage: str = "mcap", duration_s: float | None = None,
               max_messages: int | None = None, discovery_timeout_s: float = 30.0) -> int:
    """Record ``topics`` into a new bag at ``out``; returns 0 (messages recorded) or 1 (none)."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new bag path")
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    store = bag_typestore()
    with RosSession(f"event_clip_record_{os.getpid()}") as session:
        types = discover_types(session, topics, discovery_timeout_s)
        unknown = [t for t in types.values() if t not in store.fielddefs]
        if unknown:
            raise ValueError(f"no message definition for {', '.join(sorted(set(unknown)))}")
        count = 0
        with Writer(out, version=9, storage_plugin=STORAGES[storage]) as writer:
            connections = {topic: writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in types.items()}

            def make_callback(topic: str):
                def on_message(raw: bytes) -> None:
                    nonlocal count
                    writer.write(connections[topic], time.time_ns(), bytes(raw))
                    count += 1
                return on_message

            for topic, msgtype in types.items():
                session.node.create_subscription(message_class(msgtype), topic, make_callback(topic), RECORD_QOS, raw=True)
            end = None if duration_s is None else time.monotonic() + duration_s
            try:
                while (max_messages is None or count < max_messages) and (end is None or time.monotonic() < end):
                    session.spin_once(0.1 if end is None else min(0.1, max(0.0, end - time.monotonic())))
            except KeyboardInterrupt:
                pass
    print(f"record: {count} messages on {', '.join(types)} -> {out}", flush=True)
    return 0 if count else 1


def discover_types(session: RosSession, topics: Sequence[str], timeout_s: float) -> dict[str, str]:
    """topic -> 'pkg/msg/Type' of each topic once it has a publisher; ReplayError naming those still missing."""
    deadline = time.monotonic() + timeout_s
    while True:
        graph = dict(session.node.get_topic_names_and_types())
        found = {t: graph[t][0] for t in topics if graph.get(t)}
        if len(found) == len(topics):
            return {t: found[t] for t in topics}
        if time.monotonic() > deadline:
            missing = [t for t in topics if t not in found]
            raise ReplayError(f"no publisher on {', '.join(missing)} after {timeout_s:g} s")
        session.spin_once(0.05)
