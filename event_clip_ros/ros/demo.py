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
import os
import sys
import time
from pathlib import Path

from event_camera_msgs.msg import EventPacket

from ..apps.bag_writer import PacketEncoder, recording_packets
from ..apps.evaluation.truth import TimeRanges, load_truth_csv
from ..events.readers.base import EventFileError
from ..events.ros_cdr import encode_event_packet
from .interfaces import EVENT_QOS
from .node_process import NodeWatch, start_detector_node, stop_process, wait_connected
from .results import ResultCollector
from .session import ReplayError, RosSession

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


def ground_truth(recording: str) -> list[tuple[int, int, str]]:
    """(t_start_us, t_end_us, label) rows of ``<recording>.labels.csv``, or [] when there is none."""
    path = Path(recording).with_suffix(".labels.csv")
    if not path.is_file():
        return []
    return [(r.start_ns // 1000, r.end_ns // 1000, r.label) for r in _truth_ranges(path).ranges]


def _truth_ranges(path: Path) -> TimeRanges:
    truth = load_truth_csv(path)
    if not isinstance(truth, TimeRanges) or truth.clock != "sensor":
        raise ValueError(f"{path}: expected t_start_us,t_end_us,label rows")
    return truth


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in (args.recording, args.checkpoint):
        if path and not Path(path).exists():
            print(f"demo: {path} does not exist", file=sys.stderr)
            return 2

    ns = f"demo{os.getpid()}"
    fqn = f"/{ns}/detector"
    model = {"checkpoint": args.checkpoint} if args.checkpoint else {"model": args.model, "pretrained": args.pretrained}
    node_proc = start_detector_node(ns, {
        **model, "labels": [label.strip() for label in args.labels.split(",") if label.strip()],
        "prompt_templates": [t for t in args.templates.split("|") if t], "window_duration_ms": float(args.window_ms),
        "min_events": args.min_events, "device": args.device, "torch_threads": args.torch_threads, "top_k": 3,
        "diagnostics_period_s": 0.1})
    truth_path = Path(args.recording).with_suffix(".labels.csv")
    truth = _truth_ranges(truth_path) if truth_path.is_file() else None
    correct = 0
    clock: dict[str, int] = {}  # start_ns, first_t_us: sensor time <-> stamps of this playback

    def show(msg) -> None:
        nonlocal correct
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        t_end_us = clock["first_t_us"] + round((stamp_ns - clock["start_ns"]) * args.speed / 1000)
        t_start_us = t_end_us - round(args.window_ms * 1000)
        top = ", ".join(f"{h.class_id} {h.score:.2f}" for h in msg.results)
        line = f"window {t_start_us / 1e6:6.2f}-{t_end_us / 1e6:5.2f} s: {top}"
        expected = truth.label_between(t_start_us * 1000, t_end_us * 1000) if truth else None
        if expected is not None:
            hit = bool(msg.results) and msg.results[0].class_id.split()[-1] == expected  # "digit 2" names class 2
            correct += hit
            line += f"   (true: {expected}{', correct' if hit else ''})"
        print(line, flush=True)

    session = RosSession("demo_player")
    pub = session.node.create_publisher(EventPacket, f"{fqn}/events", EVENT_QOS)
    collector = ResultCollector(session.node, fqn, on_result=show)
    watch = NodeWatch(session.node, fqn)
    deadline = time.monotonic() + args.timeout_s
    try:
        first = next(recording_packets(args.recording, args.packet_ms))
        # probes carry no events and repeat the first packet's seq: they change no window and no seq-gap count
        probe = encode_event_packet(b"", encoding="evt3", width=first.size.width, height=first.size.height, seq=0)
        wait_connected(session, pub, probe, watch, deadline, node_proc)
        start_ns, n_windows = time.time_ns(), 0
        first_t = int(first.events["t"][0])
        clock.update(start_ns=start_ns, first_t_us=first_t)
        encoder = PacketEncoder("evt3", "demo_camera")
        for packet in recording_packets(args.recording, args.packet_ms):
            session.wait_until(start_ns + int((packet.end_us - first_t) * 1000 / args.speed))
            stamp = start_ns + int((int(packet.events["t"][0]) - first_t) * 1000 / args.speed)
            pub.publish(encoder.encode(packet, stamp_ns=stamp))
            n_windows = int((int(packet.events["t"][-1]) - first_t) // int(args.window_ms * 1000))
        # windows below min_events get no answer: stop after 3 s of quiet
        collector.wait_for(session, n_windows, deadline)
        received = collector.received
        summary = f"demo: {len(received)} classifications for {n_windows} completed windows"
        if truth:
            summary += f"; top-1 correct {correct} of {len(received)}"
        print(summary, flush=True)
        return 0 if received else 1
    except (ReplayError, EventFileError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_process(node_proc)
        session.close()


if __name__ == "__main__":
    sys.exit(main())
