"""ROS 2 level checks over real rclpy and DDS.

* Every message package the project uses imports and its type support works
  (rclpy serialises and deserialises a populated message).
* EventPackets with an EVT3 payload cross a process boundary with the drivers'
  QoS, arrive as raw CDR through a ``raw=True`` subscription, and decode with the
  project's CDR parser and stream decoder to exactly the source events.
* The project's CDR parser and builder agree with rclpy's serialiser, field by
  field, for EventPacket and the three dvs_msgs-style EventArray types.
"""

from __future__ import annotations

import array
import importlib
import os

import numpy as np
import pytest

from event_clip_ros.events.packet_stream import EventPacketStream
from event_clip_ros.events.ros_cdr import (
    encode_event_array,
    encode_event_packet,
    parse_event_array,
    parse_event_packet,
)
from event_clip_ros.events.types import concat_events, make_events

pytestmark = pytest.mark.ros

WIDTH, HEIGHT = 640, 480
STAMP_NS = 1_700_000_123_456_789_000

#: The sensor stream of the publisher test: 60 000 events over 300 ms crossing the EVT3
#: 24-bit time rollover (2**24 us), so the decoder's state must carry across packets.
T0_US = (1 << 24) - 150_000
N_EVENTS = 60_000
N_PACKETS = 40

PUBLISHER = r"""
import array
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from event_camera_msgs.msg import EventPacket

from event_clip_ros.events.encoders import encode_evt3

events_path, topic, width, height, n_packets = sys.argv[1:]
events = np.load(events_path)
rclpy.init()
node = rclpy.create_node("evt3_publisher")
qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                 durability=DurabilityPolicy.VOLATILE)
pub = node.create_publisher(EventPacket, topic, qos)
deadline = time.monotonic() + 20.0
while pub.get_subscription_count() == 0:
    if time.monotonic() > deadline:
        sys.exit("publisher: no subscription matched within 20 s")
    rclpy.spin_once(node, timeout_sec=0.05)
prev_t_us = None
for seq, chunk in enumerate(np.array_split(events, int(n_packets))):
    msg = EventPacket()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000 + seq, 0
    msg.header.frame_id = "event_camera"
    msg.width, msg.height = int(width), int(height)
    msg.seq = seq
    msg.time_base = 0
    msg.encoding = "evt3"
    msg.events = array.array("B", encode_evt3(chunk, prev_t_us))  # array.array: the fast path
    prev_t_us = int(chunk["t"][-1])
    pub.publish(msg)
print(f"published {n_packets}", flush=True)
sys.stdin.read()  # stay alive until the test has received everything
node.destroy_node()
rclpy.shutdown()
"""


def source_events(n: int, seed: int = 7) -> np.ndarray:
    """Random sensor events, time-sorted, with bursts of equal time stamps (EVT3 vectors)."""
    rng = np.random.default_rng(seed)
    t = T0_US + np.sort(rng.integers(0, 300_000, n // 4)).repeat(4)
    return make_events(t, rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), rng.integers(0, 2, n))


def event_qos():
    """QoS of the event camera drivers' publishers: best effort, keep last 1000, volatile."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                      reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def sample_message(module: str, name: str):
    """A default message of the type, with a header stamp and frame_id where it has a header."""
    msg = getattr(importlib.import_module(module), name)()
    if hasattr(msg, "header"):
        msg.header.frame_id = "event_camera"
        msg.header.stamp.sec = 1_700_000_000
    return msg


MESSAGE_TYPES = [
    ("event_camera_msgs.msg", "EventPacket"),
    ("dvs_msgs.msg", "Event"),
    ("dvs_msgs.msg", "EventArray"),
    ("prophesee_event_msgs.msg", "EventArray"),
    ("dv_ros2_msgs.msg", "EventArray"),
    ("vision_msgs.msg", "Classification"),
    ("vision_msgs.msg", "ObjectHypothesis"),
    ("vision_msgs.msg", "LabelInfo"),
    ("vision_msgs.msg", "VisionClass"),
    ("vision_msgs.msg", "VisionInfo"),
    ("diagnostic_msgs.msg", "DiagnosticArray"),
    ("diagnostic_msgs.msg", "DiagnosticStatus"),
    ("sensor_msgs.msg", "Image"),
]


@pytest.mark.parametrize("module, name", MESSAGE_TYPES)
def test_message_type_support_round_trips(module, name):
    from rclpy.serialization import deserialize_message, serialize_message

    msg = sample_message(module, name)
    back = deserialize_message(serialize_message(msg), type(msg))
    assert back == msg


def test_classification_with_hypotheses_round_trips():
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Classification, LabelInfo, ObjectHypothesis, VisionClass

    msg = Classification()
    msg.header.frame_id = "event_camera"
    msg.results = [ObjectHypothesis(class_id="cat", score=0.75), ObjectHypothesis(class_id="dog", score=0.25)]
    back = deserialize_message(serialize_message(msg), Classification)
    assert [(h.class_id, h.score) for h in back.results] == [("cat", 0.75), ("dog", 0.25)]
    info = LabelInfo(class_map=[VisionClass(class_id=3, class_name="cat")], threshold=0.5)
    back = deserialize_message(serialize_message(info), LabelInfo)
    assert (back.class_map[0].class_id, back.class_map[0].class_name, back.threshold) == (3, "cat", 0.5)


def test_rclpy_uses_the_session_domain(ros):
    assert ros.context.get_domain_id() == int(os.environ["ROS_DOMAIN_ID"])
    assert 1 <= ros.context.get_domain_id() <= 101


def test_evt3_packets_between_processes_decode_to_the_source_events(ros, tmp_path):
    from event_camera_msgs.msg import EventPacket

    events = source_events(N_EVENTS)
    events_path = tmp_path / "events.npy"
    np.save(events_path, events)
    topic = "/event_camera/events"
    received: list[bytes] = []
    sub = ros.node.create_subscription(EventPacket, topic, received.append, event_qos(), raw=True)

    publisher = ros.start_python(PUBLISHER, str(events_path), topic, str(WIDTH), str(HEIGHT), str(N_PACKETS))
    ros.spin_until(lambda: sub.get_publisher_count() > 0, "the publisher to match", watch=publisher)
    ros.spin_until(lambda: len(received) == N_PACKETS, f"{N_PACKETS} packets", watch=publisher)
    assert publisher.finish().strip() == f"published {N_PACKETS}"

    assert all(isinstance(raw, bytes) for raw in received)
    stream = EventPacketStream()
    decoded = concat_events([stream.decode_cdr(raw).events for raw in received])
    np.testing.assert_array_equal(decoded, events)
    assert (stream.encoding, stream.size.width, stream.size.height) == ("evt3", WIDTH, HEIGHT)
    assert stream.stats.packets == N_PACKETS
    assert stream.stats.bad_packets == stream.stats.lost_packets == stream.stats.time_resets == 0
    first = parse_event_packet(received[0])
    assert (first.seq, first.frame_id, first.stamp_ns) == (0, "event_camera", 1_700_000_000 * 10**9)


def test_event_packet_cdr_matches_rclpy():
    from event_camera_msgs.msg import EventPacket
    from rclpy.serialization import deserialize_message, serialize_message

    payload = bytes(range(256)) * 3 + b"\x01"
    msg = EventPacket(height=HEIGHT, width=WIDTH, seq=42, time_base=123_456_789, encoding="mono",
                      is_bigendian=False, events=array.array("B", payload))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(STAMP_NS, 10**9)
    msg.header.frame_id = "cam"

    parsed = parse_event_packet(serialize_message(msg))
    assert (parsed.stamp_ns, parsed.frame_id, parsed.height, parsed.width, parsed.seq, parsed.time_base_ns,
            parsed.encoding, parsed.is_bigendian) == (STAMP_NS, "cam", HEIGHT, WIDTH, 42, 123_456_789, "mono", False)
    assert parsed.events.tobytes() == payload

    ours = encode_event_packet(payload, encoding="mono", width=WIDTH, height=HEIGHT, seq=42,
                               time_base_ns=123_456_789, stamp_ns=STAMP_NS, frame_id="cam")
    assert deserialize_message(ours, EventPacket) == msg


@pytest.mark.parametrize("package", ["dvs_msgs", "prophesee_event_msgs", "dv_ros2_msgs"])
@pytest.mark.parametrize("n", [0, 1, 2, 257])
def test_event_array_cdr_matches_rclpy(package, n):
    from builtin_interfaces.msg import Time
    from rclpy.serialization import deserialize_message, serialize_message

    module = importlib.import_module(f"{package}.msg")
    rng = np.random.default_rng(n)
    events = make_events(1_700_000_000_000_000 + np.sort(rng.integers(0, 5_000_000, n)),
                         rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), rng.integers(0, 2, n))
    msg = module.EventArray(width=WIDTH, height=HEIGHT)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(STAMP_NS, 10**9)
    msg.header.frame_id = "dvs"
    msg.events = [
        module.Event(x=int(e["x"]), y=int(e["y"]), polarity=bool(e["p"]),
                     ts=Time(sec=int(e["t"]) // 10**6, nanosec=int(e["t"]) % 10**6 * 1000))
        for e in events
    ]

    parsed = parse_event_array(serialize_message(msg))
    assert (parsed.stamp_ns, parsed.frame_id, parsed.width, parsed.height) == (STAMP_NS, "dvs", WIDTH, HEIGHT)
    np.testing.assert_array_equal(parsed.events, events)

    back = deserialize_message(encode_event_array(events, WIDTH, HEIGHT, STAMP_NS, "dvs"), module.EventArray)
    assert back == msg
