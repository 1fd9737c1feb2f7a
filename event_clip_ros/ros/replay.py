"""Playing event messages into ROS and collecting the detector's answers (rclpy).

Shared by ``event-clip replay`` (:func:`replay_bag`: a bag's messages at their
recorded timing, for installs without ``ros2 bag play``), ``event-clip evaluate
--live`` (:func:`evaluate_live`: the node in a subprocess, the bag played into
it, its Classifications scored like the offline results) and the demo
(:mod:`event_clip_ros.ros.demo`).

Delivery: a message published before the subscriber's reader has matched the
writer is lost. :func:`replay_bag` therefore waits until the subscriptions on
its topics have matched (:func:`wait_for_subscribers`), publishes with a QoS that
matches theirs (reliable when one of them is: a reliable writer also serves
best-effort readers, and resends to reliable ones what they missed) and, at the
end, waits until reliable readers have acknowledged everything. A best-effort
reader may still match the writer a moment after the writer matched it (the
discovery of each side runs on its own); :data:`MATCH_SETTLE_S` covers that on one
host. Before playing into a detector node it starts itself, :func:`wait_connected`
publishes an event-free probe (same encoding, size and seq as the first message:
it changes no window and no lost-packet count) until the node's /diagnostics
count a packet, which proves the node's side has matched too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Classification

from ..apps.detector_params import NODE_NAME
from ..apps.evaluation.bag_input import BagTopics, bag_messages, inspect_bag
from ..events.packet_stream import SUPPORTED_MSGTYPES
from ..events.ros_cdr import EVENT_PACKET_TYPES, encode_event_array, encode_event_packet, parse_event_packet
from ..events.types import empty_events
from .interfaces import EVENT_QOS, message_class

#: Non-event topics are played reliable with a short history (labels, strings, ...).
OTHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE)
#: After the writer has matched every subscription: time for the readers to match the writer, s.
MATCH_SETTLE_S = 0.3
#: At the end: how long reliable readers get to acknowledge the last messages, s.
ACK_TIMEOUT_S = 5.0
_NS_PER_S = 1_000_000_000


class ReplayError(RuntimeError):
    """The node could not be reached or exited; the message says which."""


class RosSession:
    """An rclpy context with one node and an executor: nothing global, so several can live in one process."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node: Node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_once(self, timeout_s: float) -> None:
        self.executor.spin_once(timeout_sec=max(0.0, timeout_s))

    def wait_until(self, due_ns: int) -> None:
        """Process callbacks until the wall clock reaches ``due_ns`` (time.time_ns)."""
        while (now := time.time_ns()) < due_ns:
            self.spin_once((due_ns - now) * 1e-9)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NodeWatch:
    """The ``packets`` counter a detector node reports on /diagnostics (status names start with its FQN)."""

    def __init__(self, node: Node, node_fqn: str) -> None:
        self.packets = 0
        self._prefix = node_fqn
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(self._prefix):
                self.packets = int({kv.key: kv.value for kv in status.values}.get("packets", "0"))


def wait_connected(session: RosSession, publisher, probe: Any, watch: NodeWatch, deadline_s: float,
                   process: subprocess.Popen | None = None) -> None:
    """Publish ``probe`` until the node has counted a packet; ReplayError when it exits or time runs out."""
    while watch.packets == 0:
        if process is not None and process.poll() is not None:
            raise ReplayError(f"the detector node exited with {process.returncode}")
        if time.monotonic() > deadline_s:
            raise ReplayError("the detector node did not become active in time")
        if publisher.get_subscription_count():
            publisher.publish(probe)
        session.spin_once(0.05)


def probe_message(msgtype: str, first_raw: bytes) -> bytes:
    """An event-free message of ``msgtype`` that continues the stream of ``first_raw`` unchanged."""
    if msgtype in EVENT_PACKET_TYPES:
        packet = parse_event_packet(first_raw)
        return encode_event_packet(b"", encoding=packet.encoding, width=packet.width, height=packet.height, seq=packet.seq,
                                   time_base_ns=packet.time_base_ns, stamp_ns=packet.stamp_ns, frame_id=packet.frame_id)
    from ..events.ros_cdr import parse_event_array

    array = parse_event_array(first_raw)
    return encode_event_array(empty_events(), array.width, array.height, stamp_ns=array.stamp_ns, frame_id=array.frame_id)


def start_detector_node(namespace: str, parameters: dict[str, Any]) -> subprocess.Popen:
    """The detector node (``python -m event_clip_ros.ros.node``) in namespace ``/namespace`` with these parameters."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="detector_params_", delete=False) as f:
        yaml.safe_dump({"/**": {"ros__parameters": parameters}}, f)
    cmd = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{namespace}",
           "--params-file", f.name]
    proc = subprocess.Popen(cmd)
    proc.params_file = f.name  # type: ignore[attr-defined]  # removed by stop_process
    return proc


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGINT (clean shutdown), then kill if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    params = getattr(proc, "params_file", None)
    if params:
        Path(params).unlink(missing_ok=True)


class ResultCollector:
    """Classifications of a detector node (~/classification and ~/anomaly), in arrival order."""

    def __init__(self, node: Node, node_fqn: str, on_result: Callable[[Classification], None] | None = None) -> None:
        self.received: list[Classification] = []
        self._on_result = on_result
        for topic in ("classification", "anomaly"):
            node.create_subscription(Classification, f"{node_fqn}/{topic}", self._add, 100)

    def _add(self, msg: Classification) -> None:
        self.received.append(msg)
        if self._on_result is not None:
            self._on_result(msg)

    def wait_for(self, session: RosSession, count: int, deadline_s: float, quiet_s: float = 3.0) -> None:
        """Until ``count`` results arrived, ``quiet_s`` passed without one, or the deadline."""
        quiet_until = time.monotonic() + quiet_s
        while len(self.received) < count and time.monotonic() < min(deadline_s, quiet_until):
            before = len(self.received)
            session.spin_once(0.1)
            if len(self.received) > before:
                quiet_until = time.monotonic() + quiet_s

    def by_stamp(self) -> dict[int, list[tuple[str, float]]]:
        """stamp (ns) -> [(class_id, score), ...] best/decided first."""
        return {m.header.stamp.sec * _NS_PER_S + m.header.stamp.nanosec: [(h.class_id, float(h.score)) for h in m.results]
                for m in self.received}


# ------------------------------------------------------------------ event-clip replay
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
    session.wait_until(time.time_ns() + int(settle_s * _NS_PER_S))


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
                    if not pub.wait_for_all_acked(Duration(nanoseconds=int(ACK_TIMEOUT_S * _NS_PER_S))):
                        print(f"replay: {topic}: not every subscriber acknowledged the last messages "
                              f"within {ACK_TIMEOUT_S:g} s", file=sys.stderr, flush=True)
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


# ------------------------------------------------------------------ event-clip evaluate --live
def evaluate_live(bag: BagTopics, setup, parameters: dict[str, Any], out_dir: str | Path, rate: float = 1.0,
                  timeout_s: float = 120.0, torch_threads: int = 1):
    """Start the node with ``parameters``, play the bag's event topic into it, score what it publishes.

    Returns (RunInfo, Evaluation) as :func:`~event_clip_ros.apps.evaluation.offline.evaluate_bag` does;
    windows the node did not answer are counted (``dropped_windows``) and make the status incomplete.
    """
    from ..apps.detector import Detector
    from ..apps.evaluation.live import bag_windows, join_results
    from ..apps.evaluation.offline import Pass, score_and_write

    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    config = setup.config
    windows, counters = bag_windows(bag, bag.msgtype, config.window)
    namespace = f"evaluate{os.getpid()}"
    fqn = f"/{namespace}/{NODE_NAME}"
    params = {**parameters, "input_type": bag.msgtype, "torch_threads": torch_threads, "diagnostics_period_s": 0.1}
    proc = start_detector_node(namespace, params)
    done = Pass()
    try:
        with RosSession(f"event_clip_evaluate_{os.getpid()}") as session:
            publisher = session.node.create_publisher(message_class(bag.msgtype), f"{fqn}/events", EVENT_QOS)
            watch = NodeWatch(session.node, fqn)
            collector = ResultCollector(session.node, fqn)
            deadline = time.monotonic() + timeout_s
            first = next(bag_messages(bag, [bag.event_topic]), None)
            if first is None:
                raise ReplayError(f"{bag.path}: no message on {bag.event_topic}")
            wait_connected(session, publisher, probe_message(bag.msgtype, first.raw), watch, deadline, proc)
            start = time.perf_counter()
            try:
                messages = play(session, bag, {bag.event_topic: publisher}, rate)
                collector.wait_for(session, len(windows), deadline)
            except KeyboardInterrupt:
                done.status = "interrupted"
                done.problems.append("interrupted while playing the bag")
                messages = watch.packets
            wall_s = time.perf_counter() - start
            received = collector.by_stamp()
    finally:
        stop_process(proc)
    done.results, missing = join_results(windows, received, config.mode)
    if missing:
        if done.status == "complete":
            done.status = "incomplete"
        done.problems.append(f"the node published no result for {len(missing)} of {len(windows)} windows "
                             f"(dropped under load or lost); first: window {missing[0].index}")
    done.counters = {**counters, "inferred_windows": len(done.results), "dropped_windows": len(missing)}
    done.timing = {"wall_s": round(wall_s, 4), "windows_per_s": round(len(done.results) / wall_s, 2) if wall_s else 0.0,
                   "messages": messages, "rate": rate}
    return score_and_write(bag, setup, Detector(config, bag.msgtype), done, out_dir, source="live")
