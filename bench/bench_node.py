#!/usr/bin/env python3
"""End-to-end latency of the detector node over real DDS, beside the bare inference time of the
same model in the same run (goal: p50 at most inference + 15 ms at 20 Mev/s on CPU with a tiny
model), and the highest input rate the node decodes without losing packets.

Set-up: the node (``event_clip_ros.ros.node``) runs in its own process with a tiny random
EventCLIP-Tiny checkpoint (speed does not depend on the weights), one torch thread. This
process plays a driver: EVT3 EventPackets of ``--packet-ms`` of events, each published when its
last event is due (real time), header stamp = host time of its first event, as metavision_driver
does. Latency = receive time of the Classification minus its header stamp (the window's end
mapped to host time), so it includes the packetisation delay (one packet) and DDS both ways.
The sensor clock runs with the host clock across rates (the node keeps one sensor-to-ROS time
offset per stream); the window still open when a rate ends is left out of the next rate's figures.
On 2 cores the publisher (this process) and the node share the CPU: at high rates the publisher
falls behind (``publisher_late_packets``) before the node does.
Bare inference: ``EventClip.embed_windows`` + ``ZeroShotClassifier.classify`` of windows of the
same event count in this process, one thread.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_file import bench_parser, write_results
from tiny_model import write_tiny_checkpoint

from event_clip_ros.events.encoders import encode_evt3
from event_clip_ros.events.ros_cdr import encode_event_packet
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.model.zero_shot import ZeroShotClassifier

SIZE = SensorSize(640, 480)
#: a rate's packets are encoded before its start: this long (s) plus this much per Mev/s after the previous rate ends
ENCODE_LEAD_S, ENCODE_LEAD_S_PER_MEV_S = 1.0, 0.15
LABELS = ["disc", "bar", "square", "person", "car"]


def packet_events(rate_mev_s: float, packet_ms: float, k: int, rng: np.random.Generator) -> np.ndarray:
    n = int(rate_mev_s * 1000 * packet_ms)
    t0 = int(k * packet_ms * 1000)
    t = t0 + np.sort(rng.integers(0, int(packet_ms * 1000), n))
    return make_events(t, rng.integers(0, SIZE.width, n), rng.integers(0, SIZE.height, n), rng.integers(0, 2, n))


def encoded_packets(rate: float, packet_ms: float, duration_s: float, seq0: int, t0_us: int) -> list[tuple[int, bytes, int]]:
    """(due time in ns from the step start, EVT3 payload, first event time in us) per packet."""
    rng = np.random.default_rng(seq0)
    out, prev = [], None
    for k in range(int(duration_s * 1000 / packet_ms)):
        ev = packet_events(rate, packet_ms, k, rng)
        ev["t"] += t0_us
        out.append((int((k + 1) * packet_ms * 1e6), encode_evt3(ev, prev), int(ev["t"][0])))
        prev = int(ev["t"][-1])
    return out


def bare_inference_ms(checkpoint: Path, events_per_window: int, repeats: int = 20) -> float:
    from event_clip_ros.model.checkpoint import load_any_checkpoint

    model = load_any_checkpoint(checkpoint).place("cpu", "fp32").eval()
    clf = ZeroShotClassifier(model, LABELS)
    rng = np.random.default_rng(0)
    ev = packet_events(events_per_window / 1000.0, 1.0, 0, rng)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        clf.classify(model.embed_windows([ev], SIZE), top_k=5)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


class NodeUnderTest:
    def __init__(self, checkpoint: Path, window_ms: float, ns: str) -> None:
        args = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{ns}",
                "-p", f"checkpoint:={checkpoint}", "-p", f"labels:={LABELS}", "-p", "torch_threads:=1",
                "-p", f"window_duration_ms:={window_ms}", "-p", "diagnostics_period_s:=0.25"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)


def main() -> None:
    ap = bench_parser(__doc__, "bench_node")
    ap.add_argument("--rates", default="5,10,20,40", help="input rates to run, Mev/s (comma list)")
    ap.add_argument("--latency-rate", type=float, default=20.0, help="rate of the latency goal, Mev/s")
    ap.add_argument("--duration-s", type=float, default=2.0, help="seconds of events per rate")
    ap.add_argument("--packet-ms", type=float, default=1.0, help="sensor time per EventPacket")
    ap.add_argument("--window-ms", type=float, default=50.0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    tmp = Path(tempfile.mkdtemp(prefix="bench_node_"))
    checkpoint = write_tiny_checkpoint(tmp)
    ns = f"bench{os.getpid()}"
    node_proc = NodeUnderTest(checkpoint, args.window_ms, ns)
    try:
        rows = run_rates(args, node_proc, ns)
    finally:
        node_proc.stop()
    result = summarise(args, checkpoint, rows)
    print({k: v for k, v in result.items() if k != "rates"})
    write_results(result, args.out)


def run_rates(args: argparse.Namespace, node_proc: NodeUnderTest, ns: str) -> list[dict]:
    """Play each rate into the node; one row of counts and latencies per rate."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification

    rclpy.init()
    node = rclpy.create_node("bench_node_driver")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    pub = node.create_publisher(EventPacket, f"/{ns}/detector/events", qos)
    latencies: list[float] = []
    diag: dict[str, str] = {}

    rate_start_ns = [0]

    def on_result(msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp >= rate_start_ns[0]:  # not the previous rate's last window, completed only by this rate's first events
            latencies.append((time.time_ns() - stamp) * 1e-6)

    def on_diag(msg) -> None:
        for s in msg.status:
            if s.name.startswith(f"/{ns}/detector"):
                diag.clear()
                diag.update({kv.key: kv.value for kv in s.values})

    node.create_subscription(Classification, f"/{ns}/detector/classification", on_result, 1000)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 100)
    deadline = time.monotonic() + 60
    while not (pub.get_subscription_count() and diag.get("state") == "active"):
        if time.monotonic() > deadline or node_proc.proc.poll() is not None:
            stderr = node_proc.proc.stderr
            sys.exit(f"the node did not come up: {stderr.read() if stderr is not None and node_proc.proc.poll() is not None else ''}")
        rclpy.spin_once(node, timeout_sec=0.05)
    probe = encode_event_packet(b"", encoding="evt3", width=SIZE.width, height=SIZE.height, seq=0)
    while int(diag.get("packets", "0")) == 0:  # until the node's reader has matched this writer
        pub.publish(probe)
        rclpy.spin_once(node, timeout_sec=0.05)

    rows = []
    seq, origin_ns = 1, time.time_ns()
    for rate in [float(r) for r in args.rates.split(",")]:
        # the sensor clock runs with the host clock, as a camera's does: the node maps sensor time to ROS time
        # with one offset per stream (learnt from the first packet), so each rate starts at the sensor time
        # of its host start time; the packets are encoded before that start
        lead_s = ENCODE_LEAD_S + ENCODE_LEAD_S_PER_MEV_S * rate
        start = time.time_ns() + int(lead_s * 1e9)
        t0_us = (start - origin_ns) // 1000
        packets = encoded_packets(rate, args.packet_ms, args.duration_s, seq, t0_us)
        if time.time_ns() > start:
            print(f"warning: encoding {rate} Mev/s took longer than {lead_s:.1f} s; latencies include the delay")
        n_events = int(rate * 1000 * args.packet_ms) * len(packets)
        before = {k: int(v) for k, v in diag.items() if v.isdigit()}
        latencies.clear()
        rate_start_ns[0] = start
        late = 0
        for i, (due_ns, payload, first_t_us) in enumerate(packets):
            wait_s = (start + due_ns - time.time_ns()) * 1e-9
            if wait_s > 0:
                end = time.monotonic() + wait_s
                while time.monotonic() < end:
                    rclpy.spin_once(node, timeout_sec=max(0.0, end - time.monotonic()))
            else:
                late += 1
            stamp = start + int((first_t_us - t0_us) * 1000)
            pub.publish(encode_event_packet(payload, encoding="evt3", width=SIZE.width, height=SIZE.height,
                                            seq=seq + i, stamp_ns=stamp, frame_id="bench"))
        sent_s = (time.time_ns() - start) * 1e-9
        seq += len(packets)
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            rclpy.spin_once(node, timeout_sec=0.05)
        after = {k: int(v) for k, v in diag.items() if v.isdigit()}
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("packets", "lost_packets", "events", "windows",
                                                                  "inferred_windows", "dropped_windows")}
        lat = sorted(latencies)
        row = {
            "rate_mev_s": rate,
            "sent_packets": len(packets),
            "sent_events": n_events,
            "publisher_late_packets": late,
            "achieved_rate_mev_s": round(rate * args.duration_s / sent_s, 2),
            **delta,
            "received_all_packets": delta["events"] == n_events and delta["lost_packets"] == 0,
            "latency_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
            "latency_ms_p90": round(lat[int(len(lat) * 0.9)], 2) if lat else None,
            "latency_ms_max": round(lat[-1], 2) if lat else None,
            "node_inference_ms_p50": float(diag.get("inference_ms_p50", "nan")),
        }
        print(row, flush=True)
        rows.append(row)
    node.destroy_node()
    rclpy.shutdown()
    return rows


def summarise(args: argparse.Namespace, checkpoint: Path, rows: list[dict]) -> dict:
    events_per_window = int(args.latency_rate * 1000 * args.window_ms)
    bare = bare_inference_ms(checkpoint, events_per_window)
    goal = next((r for r in rows if r["rate_mev_s"] == args.latency_rate), None)
    sustained = [r["rate_mev_s"] for r in rows if r["received_all_packets"]]
    return {
        "device": "cpu", "torch_threads": 1, "window_ms": args.window_ms, "packet_ms": args.packet_ms,
        "sensor": f"{SIZE.width}x{SIZE.height}", "model": "EventCLIP-Tiny (random weights)",
        "bare_inference_ms": round(bare, 2), "events_per_window_at_latency_rate": events_per_window,
        "latency_goal_ms": round(bare + 15.0, 2),
        "latency_p50_at_goal_rate_ms": goal["latency_ms_p50"] if goal else None,
        "meets_goal": bool(goal and goal["latency_ms_p50"] is not None and goal["latency_ms_p50"] <= bare + 15.0),
        "highest_rate_without_lost_packets_mev_s": max(sustained) if sustained else None,
        "rates": rows,
    }


if __name__ == "__main__":
    main()
