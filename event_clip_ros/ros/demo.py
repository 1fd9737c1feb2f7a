"""Demo: play a recording into the detector node over real DDS and print the labels it publishes.

    python -m event_clip_ros.ros.demo                      # the shipped toy model on the shipped glyph recording
    python -m event_clip_ros.ros.demo --checkpoint vitb.pt --recording my.raw --labels cat,dog --window-ms 50

Starts the node (``event_clip_ros.ros.node``) as a subprocess on the given model, waits until
it is active and receives this process's packets, then reads the recording (any format
``open_events`` knows), re-encodes it as EVT3 EventPackets of ``--packet-ms`` and publishes
them at their recorded timing (``--speed`` scales it) with the drivers' QoS, as a camera driver
would. Every Classification the node publishes is printed; with a ground-truth file beside the
recording (``<recording>.labels.csv``: t_start_us,t_end_us,label, as ``event-clip simulate
--scene glyphs`` writes) each window's true label and the top-1 accuracy are printed too.

Defaults: ``models/event_clip_toy48.safetensors`` (the toy preset of training/pretrain.py:
a tiny CLIP trained on synthetic glyph images, f_E pre-trained on simulated events of 26
glyph classes, NOT a real CLIP) on ``data/samples/glyphs.raw``: ten glyphs of the ten classes
the encoder never saw as events during its pre-training, one every 300 ms, labelled zero-shot
among those ten class names.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..events.encoders import encode_evt3
from ..events.readers import open_events
from ..events.ros_cdr import encode_event_packet
from ..events.types import SensorSize, concat_events

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECORDING = REPO / "data" / "samples" / "glyphs.raw"
DEFAULT_CHECKPOINT = REPO / "models" / "event_clip_toy48.safetensors"
#: The toy split's held-out classes, named as the toy model's prompts name them ("the digit 2").
DEFAULT_LABELS = "digit 2,digit 4,digit 7,letter b,letter e,letter h,letter k,letter n,letter s,letter w"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m event_clip_ros.ros.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recording", default=str(DEFAULT_RECORDING), help="event recording to play (default: %(default)s)")
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT),
                   help="event encoder checkpoint (.safetensors or the paper's vitb.pt/vitl.pt; default: %(default)s); "
                        "'' to use --model/--pretrained")
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture when no checkpoint is given")
    p.add_argument("--pretrained", default="openai", help="open_clip pretrained tag or weights file when no checkpoint")
    p.add_argument("--labels", default=DEFAULT_LABELS, help="comma-separated labels (default: %(default)s)")
    p.add_argument("--templates", default="the {}",
                   help="prompt templates, '|'-separated, or a set name (event, n-imagenet, ...) (default: %(default)s)")
    p.add_argument("--window-ms", type=float, default=300.0, help="window length on sensor time (default 300)")
    p.add_argument("--min-events", type=int, default=100, help="skip windows with fewer events (default 100)")
    p.add_argument("--packet-ms", type=float, default=5.0, help="sensor time per EventPacket (default 5)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1: recorded timing)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--torch-threads", type=int, default=0, help="torch CPU threads in the node (0: default)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="give up after this long (default 120)")
    return p.parse_args(argv)


@dataclass(frozen=True)
class Packet:
    end_us: int  #: sensor time of the packet's end
    size: SensorSize
    events: np.ndarray


def packets(path: str, packet_ms: float) -> Iterator[Packet]:
    """The recording cut into ``packet_ms`` pieces of sensor time (empty pieces skipped)."""
    with open_events(path) as reader:
        events = concat_events(list(reader.chunks()))
        size = reader.size
    if events.size == 0:
        raise SystemExit(f"{path}: no events")
    step = int(packet_ms * 1000)
    t = events["t"]
    edges = np.arange(int(t[0]), int(t[-1]) + step + 1, step)
    bounds = np.searchsorted(t, edges)
    for lo, hi, end in zip(bounds[:-1], bounds[1:], edges[1:]):
        if hi > lo:
            yield Packet(int(end), size, events[lo:hi])


def ground_truth(recording: str) -> list[tuple[int, int, str]]:
    """(t_start_us, t_end_us, label) rows of ``<recording>.labels.csv``, or [] when there is none."""
    path = Path(recording).with_suffix(".labels.csv")
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [(int(r["t_start_us"]), int(r["t_end_us"]), r["label"]) for r in csv.DictReader(f)]


def true_label(truth: list[tuple[int, int, str]], t_start_us: int, t_end_us: int) -> str | None:
    """The label covering most of the window, or None."""
    overlap = {label: max(0, min(e, t_end_us) - max(s, t_start_us)) for s, e, label in truth}
    best = max(overlap, key=overlap.get, default=None)
    return best if best is not None and overlap[best] > 0 else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.recording, args.checkpoint):
        if path and not Path(path).exists():
            print(f"demo: {path} does not exist", file=sys.stderr)
            return 2
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from vision_msgs.msg import Classification

    ns = f"demo{os.getpid()}"
    model_args = ["-p", f"checkpoint:={args.checkpoint}"] if args.checkpoint else \
        ["-p", f"model:={args.model}", "-p", f"pretrained:={args.pretrained}"]
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    templates = [t for t in args.templates.split("|") if t]
    node_cmd = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{ns}", *model_args,
                "-p", f"labels:={labels}", "-p", f"prompt_templates:={templates}",
                "-p", f"window_duration_ms:={args.window_ms}", "-p", f"min_events:={args.min_events}",
                "-p", f"device:={args.device}", "-p", f"torch_threads:={args.torch_threads}", "-p", "top_k:=3",
                "-p", "diagnostics_period_s:=0.1"]
    node_proc = subprocess.Popen(node_cmd)
    rclpy.init()
    node = rclpy.create_node("demo_player")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    pub = node.create_publisher(EventPacket, f"/{ns}/detector/events", qos)
    truth = ground_truth(args.recording)
    received: list[Classification] = []
    correct = 0
    packets_seen = 0
    clock: dict[str, int] = {}  # start_ns, first_t_us: sensor time <-> stamps of this playback

    def show(msg: Classification) -> None:
        nonlocal correct
        received.append(msg)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        t_end_us = clock["first_t_us"] + round((stamp_ns - clock["start_ns"]) * args.speed / 1000)
        t_start_us = t_end_us - round(args.window_ms * 1000)
        top = ", ".join(f"{h.class_id} {h.score:.2f}" for h in msg.results)
        line = f"window {t_start_us / 1e6:6.2f}-{t_end_us / 1e6:5.2f} s: {top}"
        expected = true_label(truth, t_start_us, t_end_us)
        if expected is not None:
            hit = bool(msg.results) and msg.results[0].class_id.split()[-1] == expected  # "digit 2" names class 2
            correct += hit
            line += f"   (true: {expected}{', correct' if hit else ''})"
        print(line, flush=True)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        nonlocal packets_seen
        for status in msg.status:
            if status.name.startswith(f"/{ns}/detector"):
                packets_seen = int({kv.key: kv.value for kv in status.values}.get("packets", "0"))

    node.create_subscription(Classification, f"/{ns}/detector/classification", show, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    deadline = time.monotonic() + args.timeout_s
    try:
        seq = 0
        # until the node is active and its reader has matched this writer: a best-effort packet sent before is
        # lost; probes carry no events and repeat one seq, so they change no window and no seq-gap count
        first = next(packets(args.recording, args.packet_ms))
        probe = encode_event_packet(b"", encoding="evt3", width=first.size.width, height=first.size.height, seq=seq)
        while packets_seen == 0:
            if node_proc.poll() is not None:
                print(f"demo: the detector node exited with {node_proc.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("demo: the detector node did not become active in time", file=sys.stderr)
                return 1
            if pub.get_subscription_count():
                pub.publish(probe)
            rclpy.spin_once(node, timeout_sec=0.05)
        start_ns, prev_t, n_windows = time.time_ns(), None, 0
        first_t = int(first.events["t"][0])
        clock.update(start_ns=start_ns, first_t_us=first_t)
        for packet in packets(args.recording, args.packet_ms):
            seq += 1
            due_ns = start_ns + int((packet.end_us - first_t) * 1000 / args.speed)
            while time.time_ns() < due_ns:
                rclpy.spin_once(node, timeout_sec=max(0.0, (due_ns - time.time_ns()) * 1e-9))
            stamp = start_ns + int((int(packet.events["t"][0]) - first_t) * 1000 / args.speed)
            pub.publish(encode_event_packet(encode_evt3(packet.events, prev_t), encoding="evt3",
                                            width=packet.size.width, height=packet.size.height, seq=seq,
                                            stamp_ns=stamp, frame_id="demo_camera"))
            prev_t = int(packet.events["t"][-1])
            n_windows = int((prev_t - first_t) // int(args.window_ms * 1000))
        quiet_until = time.monotonic() + 3.0  # windows below min_events get no answer: stop after 3 s of quiet
        while len(received) < n_windows and time.monotonic() < min(deadline, quiet_until):
            count = len(received)
            rclpy.spin_once(node, timeout_sec=0.1)
            if len(received) > count:
                quiet_until = time.monotonic() + 3.0
        summary = f"demo: {len(received)} classifications for {n_windows} completed windows"
        if truth:
            summary += f"; top-1 correct {correct} of {len(received)}"
        print(summary, flush=True)
        return 0 if received else 1
    finally:
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGINT)
            node_proc.wait(timeout=30)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
