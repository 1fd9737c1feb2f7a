"""Over real DDS (the node in its own process): driver bursts lose no window that is not stale, and one node
serves several cameras.

* A bag whose first 35 packets (420 ms of sensor time, 8 windows of 50 ms) are logged within 35 ns, as a
  real driver's burst (issue 15: the latest-only hand-off lost 5 of 25 windows), replayed at recorded
  speed: every window is answered when none can be stale (the burst spans less than queue_max_age_ms),
  and with a shorter max age every window not answered is one counted as stale; the answered ones equal
  the offline evaluation window by window; the node's /diagnostics show the queue.
* Two cameras in one node (two topics, different sensor sizes, frame_ids, labels; one in anomaly mode):
  each camera's results, on its own topics, equal those of a detector that saw that camera alone (the
  single-camera node's results, test_ros_detector.py), with its frame_id and stamps; one message that
  completes several windows is inferred as one batch; each camera has its own LabelInfo and status.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from shipped_samples import CLASSES, GLYPHS, TOY
from test_ros_detector import SIZE, STAMP0_NS, OfflineDetector, checkpoint, offline_detector, scene, stamp_ns  # noqa: F401

from event_clip_ros.apps.bag_writer import BagWriteConfig, write_event_bag
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.evaluation.bag_input import bag_messages, open_bag_topics
from event_clip_ros.apps.evaluation.offline import EvaluationSetup, evaluate_bag
from event_clip_ros.apps.evaluation.truth import load_truth_csv
from event_clip_ros.events.encoders import encode_evt3
from event_clip_ros.events.readers.bag_types import bag_typestore
from event_clip_ros.events.ros_cdr import encode_event_packet
from event_clip_ros.events.types import SensorSize
from event_clip_ros.events.windows import WindowConfig
from event_clip_ros.model import ModelSpec

pytestmark = pytest.mark.ros

BURST_PACKETS, PACKET_MS, WINDOW_MS = 35, 12, 50
NODE = "import sys\nfrom event_clip_ros.ros.node import main\nsys.exit(main())\n"


@pytest.fixture(scope="module")
def burst_bag(tmp_path_factory) -> Path:
    """The glyph sample as 12 ms EventPackets, the first 35 logged together at the time of the 35th."""
    tmp = tmp_path_factory.mktemp("burst")
    plain = tmp / "plain"
    write_event_bag(GLYPHS, plain, BagWriteConfig(packet_ms=PACKET_MS, stamp_origin_ns=STAMP0_NS),
                    load_truth_csv(GLYPHS.with_suffix(".labels.csv")))
    bag = open_bag_topics(plain)
    messages = list(bag_messages(bag, sorted(bag.topics)))
    events = [m for m in messages if m.topic == bag.event_topic]
    burst_end_ns = events[BURST_PACKETS - 1].log_time_ns
    out = tmp / "burst"
    store = bag_typestore()
    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {t: writer.add_connection(t, msgtype, typestore=store) for t, msgtype in bag.topics.items()}
        for m in messages:
            log_ns = m.log_time_ns
            if m.topic == bag.event_topic and log_ns <= burst_end_ns:  # the driver held them back, then sent all
                log_ns = burst_end_ns - (BURST_PACKETS - 1 - events.index(m))
            writer.write(connections[m.topic], max(log_ns, 0), m.raw)
    return out


@pytest.mark.parametrize("max_age_ms", [500.0, 100.0], ids=["burst-within-max-age", "burst-beyond-max-age"])
def test_a_burst_loses_no_window_that_is_not_stale_and_equals_offline(ros, burst_bag, tmp_path, max_age_ms):
    """500 ms: the burst's 8 windows span 400 ms, none can be stale, every window is answered. 100 ms: the
    burst's older windows may be stale when the worker gets to them; every window not answered is one the
    node counted as stale (the rule itself: test_inference_queue.py), every answered one equals offline."""
    from diagnostic_msgs.msg import DiagnosticArray

    from event_clip_ros.ros.interfaces import status_name
    from event_clip_ros.ros.live_evaluation import evaluate_live

    torch.set_num_threads(1)
    bag = open_bag_topics(burst_bag)
    burst = [m.log_time_ns for m in bag_messages(bag, [bag.event_topic])][:BURST_PACKETS + 1]
    assert burst[BURST_PACKETS - 1] - burst[0] < 1_000_000 and burst[BURST_PACKETS] - burst[0] >= PACKET_MS * 10**6
    config = DetectorConfig(labels=CLASSES, templates=("the {}",), top_k=5,
                            window=WindowConfig(duration_us=WINDOW_MS * 1000, min_events=100, max_events=2_000_000),
                            model=ModelSpec(checkpoint=str(TOY), device="cpu"))
    truth = load_truth_csv(GLYPHS.with_suffix(".labels.csv"))
    _, offline = evaluate_bag(burst_bag, EvaluationSetup(config, truth, "csv"), tmp_path / "offline")
    assert len(offline.windows) == 59 and sum(w.result.t_end_us <= 432_000 for w in offline.windows) == 8
    statuses = []
    name = status_name(f"/evaluate{os.getpid()}/detector")  # the node evaluate_live starts
    ros.node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(s for s in m.status if s.name == name), 1000)
    parameters = {"checkpoint": str(TOY), "labels": list(CLASSES), "prompt_templates": ["the {}"], "top_k": 5,
                  "window_duration_ms": float(WINDOW_MS), "min_events": 100, "device": "cpu",
                  "queue_max_age_ms": max_age_ms}
    run, live = evaluate_live(bag, EvaluationSetup(config, truth, "csv"), parameters, tmp_path / "live", rate=1.0)

    answered = {w.result.index: w.result for w in live.windows}
    for b in offline.windows:
        ra, rb = answered.get(b.result.index), b.result
        if ra is None:
            continue
        assert (ra.index, ra.t_start_us, ra.t_end_us, ra.n_events, ra.stamp_ns) == \
               (rb.index, rb.t_start_us, rb.t_end_us, rb.n_events, rb.stamp_ns)
        assert [s.label for s in ra.labels] == [s.label for s in rb.labels]
        assert [s.score for s in ra.labels] == pytest.approx([s.score for s in rb.labels], abs=1e-5)
    missing = len(offline.windows) - len(answered)

    # what the node said (its statuses waited in this subscription's history meanwhile)
    def last(key: str) -> int:
        return int(next(kv.value for kv in statuses[-1].values if kv.key == key)) if statuses else -1

    ros.spin_until(lambda: last("inferred_windows") + last("dropped_windows") == 59, "the node's last status", 10)
    values = {kv.key: kv.value for kv in statuses[-1].values}
    assert values["queued_windows"] == "59" and values["queue_depth"] == "0" and values["lost_packets"] == "0"
    stale = int(values["dropped_old_windows"]) + int(values["dropped_overflow_windows"])
    assert missing == int(values["dropped_windows"]) == stale == run.counters["dropped_windows"]
    if max_age_ms == 500.0:
        assert missing == 0 and run.status == "complete", run.problems
    assert 1 <= int(values["batches"]) <= 59 - missing and float(values["batch_size_max"]) <= 8
    for key in ("wait_ms_p50", "wait_ms_p90", "inference_ms_p50", "inference_ms_p90", "latency_ms_p50",
                "latency_ms_p90"):
        assert float(values[key]) > 0, key
    assert float(values["latency_ms_max"]) >= float(values["wait_ms_max"])  # latency = wait + inference + publish


def evt3_stream(events: np.ndarray, n: int, size: SensorSize, frame_id: str, seq0: int = 0) -> list[bytes]:
    out, prev = [], None
    for i, chunk in enumerate(np.array_split(events, n)):
        stamp = STAMP0_NS + (int(chunk["t"][0]) - int(events["t"][0])) * 1000
        out.append(encode_event_packet(encode_evt3(chunk, prev), encoding="evt3", width=size.width,
                                       height=size.height, seq=seq0 + i, stamp_ns=stamp, frame_id=frame_id))
        prev = int(chunk["t"][-1])
    return out


def test_two_cameras_in_one_node_equal_two_single_camera_runs(ros, checkpoint):  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticArray
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification, LabelInfo

    from event_clip_ros.ros.interfaces import EVENT_QOS, status_name

    ns, base = "stereo", "/stereo/detector"
    big = SensorSize(128, 96)
    proc = ros.start_python(NODE, "--ros-args", "-r", f"__ns:=/{ns}", "-p", "torch_threads:=1",
                            "-p", "diagnostics_period_s:=0.1", "-p", f"checkpoint:={checkpoint}",
                            "-p", "labels:=[disc, bar, square]", "-p", "window_duration_ms:=10.0",
                            "-p", "min_events:=50", "-p", "top_k:=3", "-p", "inputs:=[left, right]",
                            "-p", "left.labels:=[cat, dog, bird]", "-p", "right.topic:=/right_camera/events",
                            "-p", "right.mode:=anomaly", "-p", "anomaly_threshold:=0.45")
    node = ros.node
    pubs = {"left": node.create_publisher(EventPacket, f"{base}/left/events", EVENT_QOS),
            "right": node.create_publisher(EventPacket, "/right_camera/events", EVENT_QOS)}
    results: dict[str, list] = {"left": [], "right": []}
    node.create_subscription(Classification, f"{base}/left/classification", results["left"].append, 100)
    node.create_subscription(Classification, f"{base}/right/anomaly", results["right"].append, 100)
    latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    label_infos: dict[str, list] = {"left": [], "right": []}
    for cam in ("left", "right"):
        node.create_subscription(LabelInfo, f"{base}/{cam}/label_info", label_infos[cam].append, latched)
    statuses: dict[str, dict[str, str]] = {}
    names = {status_name(base): "node", status_name(base, "left"): "left", status_name(base, "right"): "right"}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: statuses.update(
        {names[s.name]: {kv.key: kv.value for kv in s.values} for s in m.status if s.name in names}), 100)

    # each camera connected: an event-free probe per topic until the node counts it
    probes = {"left": encode_event_packet(b"", encoding="evt3", width=SIZE.width, height=SIZE.height, seq=0),
              "right": encode_event_packet(b"", encoding="evt3", width=big.width, height=big.height, seq=0)}
    for cam, pub in pubs.items():
        ros.spin_until(lambda pub=pub: pub.get_subscription_count() > 0, f"the node subscribing {cam}", 60, watch=proc)

        def counted(cam=cam, pub=pub) -> bool:
            pub.publish(probes[cam])
            return int(statuses.get(cam, {}).get("packets", "0")) > 0

        ros.spin_until(counted, f"the node receiving {cam}'s probe", 30, watch=proc)

    # the same streams through single-camera detectors (what single-camera nodes publish)
    left_offline = offline_detector(checkpoint, labels=["cat", "dog", "bird"])
    right_offline = OfflineDetector(DetectorConfig(mode="anomaly", top_k=3, anomaly=AnomalyConfig(threshold=0.45),
                                                   window=WindowConfig(duration_us=10_000, min_events=50, max_events=2_000_000),
                                                   model=ModelSpec(checkpoint=str(checkpoint), device="cpu")))
    streams = {"left": evt3_stream(scene(9_000, 80_000, seed=7), 16, SIZE, "left_optical"),
               "right": evt3_stream(scene(9_000, 80_000, seed=8, t0_us=3_000), 16, big, "right_optical")}
    expected: dict[str, list] = {"left": [], "right": []}
    counts: dict[str, list[int]] = {}
    for cam, det in (("left", left_offline), ("right", right_offline)):
        for raw in streams[cam]:
            expected[cam] += det.process(raw)
            counts.setdefault(cam, []).append(len(expected[cam]))
    assert len(expected["left"]) == len(expected["right"]) == 7
    # interleaved as two drivers send them; after each pair, the results they complete
    for k in range(16):
        for cam in ("left", "right"):
            pubs[cam].publish(streams[cam][k])
        ros.spin_until(lambda k=k: all(len(results[cam]) >= counts[cam][k] for cam in results),
                       f"the results of packet {k}", 30, watch=proc)
    ros.spin_until(lambda: int(statuses["node"].get("inferred_windows", "0")) == 14, "the status after them", 10,
                   watch=proc)
    for cam in ("left", "right"):
        for msg, r in zip(results[cam], expected[cam], strict=True):
            assert stamp_ns(msg.header) == r.stamp_ns and msg.header.frame_id == f"{cam}_optical"
            assert [h.class_id for h in msg.results] == [s.label for s in r.labels]
            assert [h.score for h in msg.results] == pytest.approx([s.score for s in r.labels], abs=1e-5)
    assert {h.class_id for m in results["right"] for h in m.results} == {"anomaly", "normal"}
    ros.spin_until(lambda: label_infos["left"] and label_infos["right"], "each camera's LabelInfo", watch=proc)
    assert [c.class_name for c in label_infos["left"][-1].class_map] == ["cat", "dog", "bird"]
    assert [c.class_name for c in label_infos["right"][-1].class_map] == ["normal", "anomaly"]

    # one message completing several windows: inferred as one batch
    before = int(statuses["node"]["batches"])
    tail = scene(6_000, 60_000, seed=9, t0_us=100_000)
    raw = encode_event_packet(encode_evt3(tail, None), encoding="evt3", width=SIZE.width, height=SIZE.height,
                              seq=16, stamp_ns=STAMP0_NS + 99_000_000, frame_id="left_optical")
    more = left_offline.process(raw)
    assert len(more) == 7  # the open window and six in the packet
    pubs["left"].publish(raw)
    ros.spin_until(lambda: len(results["left"]) == len(expected["left"]) + 7, "the seven windows", 30, watch=proc)
    ros.spin_until(lambda: int(statuses["node"]["inferred_windows"]) == 14 + 7, "the status after them", 10,
                   watch=proc)
    assert int(statuses["node"]["batches"]) == before + 1 and statuses["node"]["batch_size_max"] == "7"
    assert [stamp_ns(m.header) for m in results["left"][-7:]] == [r.stamp_ns for r in more]
    for cam in ("left", "right"):
        assert statuses[cam]["dropped_windows"] == "0" and float(statuses[cam]["latency_ms_p50"]) > 0
    assert statuses["right"]["topic"] == "/right_camera/events" and statuses["node"]["inputs"] == "2"
    proc.popen.send_signal(signal.SIGINT)
    proc.popen.communicate(timeout=30)
    assert proc.popen.returncode == 0
