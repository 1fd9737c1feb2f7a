#!/usr/bin/env python3
"""Several event cameras in one detector node against as many single-camera nodes, over real DDS.

For 1, 2 and 4 cameras (``--cameras``) this process plays N drivers at once (EVT3 EventPackets of
``--packet-ms`` of uniform random events at ``--rate`` Mev/s per camera, 320x240, each packet
published when its last event is due, header stamp = host time of its first event, as
metavision_driver does) into

* one node with ``inputs: [cam0, ...]`` (one model, one worker batching the cameras' windows), and
* the baseline, measured in the same run: N single-camera nodes (``python -m
  event_clip_ros.ros.node``), one per camera, each with its own model and worker.

Every node: a random EventCLIP-Tiny checkpoint (speed does not depend on the weights), one torch
thread, 50 ms windows. Reported per setup: latency p50/p90 of the results as a subscriber sees
them (receive time minus header stamp, i.e. from the window's end in host time: packetisation, DDS
both ways, queueing and inference), the nodes' own latency p50 (from the arrival of the message that
completed the window), CPU time of the node processes (user + system, every thread) per inferred
window, windows answered and dropped; and the ratios one node / N nodes. Results of the first
``--warmup-s`` (first forward passes) are left out of the latencies. On a 2-core machine the
publisher (this process) shares the CPU with the nodes.
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

SIZE = SensorSize(320, 240)
LABELS = ["disc", "bar", "square", "person", "car"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def camera_packets(rate_mev_s: float, packet_ms: float, duration_s: float, seed: int) -> list[tuple[int, bytes]]:
    """(first event time in us from the stream start, EVT3 payload) of each packet of one camera."""
    rng = np.random.default_rng(seed)
    per_packet, packet_us = int(rate_mev_s * 1000 * packet_ms), int(packet_ms * 1000)
    out, prev = [], None
    for k in range(int(duration_s * 1000 / packet_ms)):
        t = k * packet_us + np.sort(rng.integers(0, packet_us, per_packet))
        ev = make_events(t, rng.integers(0, SIZE.width, per_packet), rng.integers(0, SIZE.height, per_packet),
                         rng.integers(0, 2, per_packet))
        out.append((int(t[0]), encode_evt3(ev, prev)))
        prev = int(t[-1])
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process (all its threads), s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_node(ns: str, checkpoint: Path, window_ms: float, inputs: int) -> subprocess.Popen:
    """A detector node in /<ns>: one input on ~/events (inputs 0) or inputs cam0..cam<n-1> on ~/cam<i>/events."""
    args = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{ns}",
            "-p", f"checkpoint:={checkpoint}", "-p", f"labels:={LABELS}", "-p", "torch_threads:=1",
            "-p", f"window_duration_ms:={window_ms}", "-p", "diagnostics_period_s:=0.25", "-p", "device:=cpu"]
    if inputs:
        args += ["-p", f"inputs:=[{', '.join(f'cam{i}' for i in range(inputs))}]"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_nodes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run_setup(args: argparse.Namespace, checkpoint: Path, streams: list[list[tuple[int, bytes]]],
              one_node: bool, tag: str) -> dict:
    """Start the node(s), play the cameras' streams into them, measure; one result row."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from event_camera_msgs.msg import EventPacket
    from vision_msgs.msg import Classification

    from event_clip_ros.ros.interfaces import EVENT_QOS, status_name

    n = len(streams)
    if one_node:
        ns = f"bmc{os.getpid()}_{tag}"
        procs = [start_node(ns, checkpoint, args.window_ms, n)]
        fqns = [f"/{ns}/detector"]
        bases = [f"/{ns}/detector/cam{i}" for i in range(n)]
    else:
        nss = [f"bmc{os.getpid()}_{tag}_{i}" for i in range(n)]
        procs = [start_node(ns, checkpoint, args.window_ms, 0) for ns in nss]
        fqns = [f"/{ns}/detector" for ns in nss]
        bases = list(fqns)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"bench_multicam_{tag}", context=context)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        pubs = [node.create_publisher(EventPacket, f"{base}/events", EVENT_QOS) for base in bases]
        latencies: list[list[float]] = [[] for _ in range(n)]
        counts = [0] * n
        measure_from_ns = [0]

        def on_result(cam: int, msg) -> None:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            counts[cam] += 1
            if stamp >= measure_from_ns[0]:
                latencies[cam].append((time.time_ns() - stamp) * 1e-6)

        for cam, base in enumerate(bases):
            node.create_subscription(Classification, f"{base}/classification",
                                     lambda msg, cam=cam: on_result(cam, msg), 1000)
        diag: dict[str, dict[str, str]] = {}  # status name -> its values
        totals = [status_name(fqn) for fqn in fqns]  # every node's own status
        per_camera = [status_name(fqns[0], f"cam{i}") for i in range(n)] if one_node else totals
        watched = set(totals) | set(per_camera)
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
            {s.name: {kv.key: kv.value for kv in s.values} for s in m.status if s.name in watched}), 100)

        def spin_until(condition, what: str, timeout_s: float) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                for proc in procs:
                    if proc.poll() is not None:
                        sys.exit(f"a node exited while waiting for {what}: {proc.stderr.read() if proc.stderr else ''}")
                if time.monotonic() > deadline:
                    sys.exit(f"timed out waiting for {what}")
                executor.spin_once(timeout_sec=0.05)

        probe = encode_event_packet(b"", encoding="evt3", width=SIZE.width, height=SIZE.height, seq=0)

        def connected() -> bool:  # a probe (no events) counted by every input: its reader has matched
            for pub in pubs:
                if pub.get_subscription_count():
                    pub.publish(probe)
            return all(int(diag.get(name, {}).get("packets", "0")) > 0 for name in per_camera)

        spin_until(connected, "every input receiving", 120)
        cpu0 = [cpu_s(p.pid) for p in procs]
        start = time.time_ns() + 200_000_000
        measure_from_ns[0] = start + int(args.warmup_s * 1e9)
        late = 0
        for k in range(len(streams[0])):
            due = start + int((k + 1) * args.packet_ms * 1e6)
            while (now := time.time_ns()) < due:
                executor.spin_once(timeout_sec=(due - now) * 1e-9)
            if time.time_ns() - due > 5_000_000:
                late += 1
            for cam, stream in enumerate(streams):
                first_us, payload = stream[k]
                pubs[cam].publish(encode_event_packet(payload, encoding="evt3", width=SIZE.width,
                                                      height=SIZE.height, seq=k + 1, stamp_ns=start + first_us * 1000,
                                                      frame_id=f"cam{cam}"))
        expected = int(args.duration_s * 1000 / args.window_ms) - 1  # the last window stays open
        settle = time.monotonic() + 5.0
        while time.monotonic() < settle and min(counts) < expected:
            executor.spin_once(timeout_sec=0.05)
        cpu1 = [cpu_s(p.pid) for p in procs]
        fresh = time.monotonic() + 0.6  # statuses after the last result (period 0.25 s)
        while time.monotonic() < fresh:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
        stop_nodes(procs)
    node_values = [diag[name] for name in totals]
    inferred = sum(int(v["inferred_windows"]) for v in node_values)
    all_lat = [v for cam in latencies for v in cam]
    node_p50 = [float(v.get("latency_ms_p50", "nan")) for v in node_values]
    return {
        "cameras": n,
        "setup": "one node" if one_node else f"{n} single-camera nodes",
        "expected_windows": expected * n,
        "results": sum(counts),
        "inferred_windows": inferred,
        "dropped_windows": sum(int(v["dropped_windows"]) for v in node_values),
        "lost_packets": sum(int(v["lost_packets"]) for v in node_values),
        "publisher_late_steps": late,
        "latency_ms_p50": percentile(all_lat, 50),
        "latency_ms_p90": percentile(all_lat, 90),
        "node_latency_ms_p50": round(statistics.mean(node_p50), 2),
        "node_inference_ms_p50": round(statistics.mean(float(v.get("inference_ms_p50", "nan")) for v in node_values), 2),
        "batch_size_p50": round(statistics.mean(float(v.get("batch_size_p50", "nan")) for v in node_values), 2),
        "batch_size_max": max(int(float(v.get("batch_size_max", "0"))) for v in node_values),
        "windows_per_batch": round(inferred / max(1, sum(int(v.get("batches", "0")) for v in node_values)), 2),
        "cpu_ms_per_window": round((sum(cpu1) - sum(cpu0)) * 1e3 / inferred, 2) if inferred else None,
    }


def main() -> None:
    ap = bench_parser(__doc__, "bench_multicam")
    ap.add_argument("--cameras", default="1,2,4", help="camera counts to run (comma list)")
    ap.add_argument("--rate", type=float, default=1.0, help="events per camera, Mev/s")
    ap.add_argument("--duration-s", type=float, default=4.0, help="seconds of events per setup")
    ap.add_argument("--warmup-s", type=float, default=0.5, help="results of the first seconds left out")
    ap.add_argument("--packet-ms", type=float, default=2.0, help="sensor time per EventPacket")
    ap.add_argument("--window-ms", type=float, default=50.0)
    args = ap.parse_args()
    import rclpy  # noqa: F401  (fail early without ROS)

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_multicam_"))
    checkpoint = write_tiny_checkpoint(tmp)
    counts = [int(c) for c in args.cameras.split(",")]
    load_before = round(os.getloadavg()[0], 1)
    print(f"encoding {max(counts)} cameras x {args.duration_s:g} s at {args.rate:g} Mev/s ...", flush=True)
    streams = [camera_packets(args.rate, args.packet_ms, args.duration_s, seed) for seed in range(max(counts))]
    rows, ratios = [], []
    for n in counts:
        separate = run_setup(args, checkpoint, streams[:n], one_node=False, tag=f"s{n}")
        print(separate, flush=True)
        together = run_setup(args, checkpoint, streams[:n], one_node=True, tag=f"o{n}")
        print(together, flush=True)
        rows += [separate, together]

        def ratio(key: str, a: dict = together, b: dict = separate) -> float | None:
            return round(a[key] / b[key], 3) if a[key] and b[key] else None

        ratios.append({"cameras": n, "latency_p50_one_node_over_separate": ratio("latency_ms_p50"),
                       "latency_p90_one_node_over_separate": ratio("latency_ms_p90"),
                       "cpu_per_window_one_node_over_separate": ratio("cpu_ms_per_window")})
        print(ratios[-1], flush=True)
    result = {"device": "cpu", "torch_threads_per_node": 1, "model": "EventCLIP-Tiny (random weights)",
              "sensor": f"{SIZE.width}x{SIZE.height}", "rate_mev_s_per_camera": args.rate,
              "packet_ms": args.packet_ms, "window_ms": args.window_ms, "duration_s": args.duration_s,
              "cpu_count": os.cpu_count(), "load_average_before": load_before,
              "load_average_after": round(os.getloadavg()[0], 1), "ratios": ratios, "rows": rows}
    print(f"load average before: {load_before}, after: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    print("cameras  setup                      latency p50/p90 ms   node p50 ms  CPU ms/window  windows/batch (max)  "
          "answered")
    for r in rows:
        print(f"{r['cameras']:>7}  {r['setup']:<25}  {r['latency_ms_p50']!s:>7} / {r['latency_ms_p90']!s:<8}  "
              f"{r['node_latency_ms_p50']:>10}  {r['cpu_ms_per_window']!s:>13}  "
              f"{r['windows_per_batch']:>13} ({r['batch_size_max']})  {r['results']}/{r['expected_windows']}")
    for r in ratios:
        print(f"{r['cameras']} cameras, one node / separate nodes: latency p50 {r['latency_p50_one_node_over_separate']}, "
              f"p90 {r['latency_p90_one_node_over_separate']}, CPU per window {r['cpu_per_window_one_node_over_separate']}")
    write_results(result, args.out)


if __name__ == "__main__":
    main()
