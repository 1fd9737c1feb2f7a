"""The detector's input thread (event_clip_ros.ros.input_loop) over real DDS, in process.

Every message of each subscription handed over once, in order, on the loop's thread and
never by the executor spinning the same node; a handler that raises is counted and the
loop goes on; stop() returns promptly while messages flow, after the message in hand.
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.ros

N = 300


def _reliable():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1, reliability=ReliabilityPolicy.RELIABLE)


def _packet(seq: int) -> bytes:
    from event_clip_ros.events.ros_cdr import encode_event_packet

    return encode_event_packet(bytes([seq % 256]) * 8, encoding="evt3", width=64, height=48, seq=seq)


class _Seqs:
    """What a loop handed over: per subscription, the sequence numbers in order, and on which thread."""

    def __init__(self, fail_every: int = 0) -> None:
        from event_camera_msgs.msg import EventPacket

        self.msg_class = EventPacket
        self.seqs: dict[int, list[int]] = {}
        self.threads: set[str] = set()
        self.fail_every = fail_every

    def __call__(self, index: int, raw: bytes, info: dict) -> None:
        from rclpy.serialization import deserialize_message

        seq = deserialize_message(raw, self.msg_class).seq
        self.threads.add(threading.current_thread().name)
        if self.fail_every and seq % self.fail_every == 0:
            raise RuntimeError(f"bad {seq}")
        self.seqs.setdefault(index, []).append(seq)

    def count(self) -> int:
        return sum(len(s) for s in self.seqs.values())


def _setup(ros, topics: list[str], handler):
    from event_camera_msgs.msg import EventPacket

    from event_clip_ros.ros.input_loop import InputLoop, unexecuted_group

    executed: list[bytes] = []
    group = unexecuted_group()
    subs = [ros.node.create_subscription(EventPacket, t, executed.append, _reliable(), callback_group=group, raw=True)
            for t in topics]
    pubs = [ros.node.create_publisher(EventPacket, t, _reliable()) for t in topics]
    ros.spin_until(lambda: all(p.get_subscription_count() == 1 for p in pubs), "the subscriptions to match")
    loop = InputLoop(subs, handler, ros.context)
    return loop, pubs, executed


def test_every_message_in_order_on_the_input_thread_not_the_executor(ros) -> None:
    got = _Seqs()
    loop, pubs, executed = _setup(ros, ["/input_loop/a", "/input_loop/b"], got)
    loop.start()
    try:
        for seq in range(N):  # the two topics interleaved, as two cameras
            for pub in pubs:
                pub.publish(_packet(seq))
        ros.spin_until(lambda: got.count() == 2 * N, "every message handed over", timeout_s=60)
    finally:
        loop.stop()
    assert got.seqs == {0: list(range(N)), 1: list(range(N))}
    assert got.threads == {"detector-input"}
    assert executed == []  # the executor spun the node all along and took none of them
    assert loop.taken == [N, N] and loop.errors == 0
    assert 1 <= loop.wakeups <= 2 * N
    assert not loop.running


def test_a_failing_handler_is_counted_and_the_loop_goes_on(ros) -> None:
    got = _Seqs(fail_every=10)
    loop, pubs, _ = _setup(ros, ["/input_loop/failing"], got)
    loop.start()
    try:
        for seq in range(N):
            pubs[0].publish(_packet(seq))
        ros.spin_until(lambda: loop.taken[0] == N, "every message taken", timeout_s=60)
    finally:
        loop.stop()
    assert loop.errors == N // 10
    assert loop.last_error is not None and "RuntimeError: bad" in loop.last_error
    assert got.seqs[0] == [s for s in range(N) if s % 10]


def test_stop_while_messages_flow_returns_after_the_message_in_hand(ros) -> None:
    started = threading.Event()

    def slow(index: int, raw: bytes, info: dict) -> None:
        started.set()
        time.sleep(0.2)

    loop, pubs, _ = _setup(ros, ["/input_loop/flowing"], slow)
    loop.start()
    stop_pumping = threading.Event()

    def pump() -> None:
        seq = 0
        while not stop_pumping.is_set():
            pubs[0].publish(_packet(seq))
            seq += 1
            time.sleep(0.001)

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    try:
        ros.spin_until(started.is_set, "the first message in hand")
        t0 = time.monotonic()
        loop.stop()
        stopped_s = time.monotonic() - t0
    finally:
        stop_pumping.set()
        pumper.join(5)
    assert not loop.running
    assert stopped_s < 5.0  # the message in hand (0.2 s), not the backlog of hundreds
    assert 1 <= loop.taken[0] <= 60
    loop.stop()  # a second stop is harmless


def test_an_idle_loop_stops_at_once(ros) -> None:
    loop, _, _ = _setup(ros, ["/input_loop/idle"], _Seqs())
    loop.start()
    assert loop.running
    t0 = time.monotonic()
    loop.stop()
    assert not loop.running and time.monotonic() - t0 < 2.0
    assert loop.taken == [0] and loop.wakeups == 0
