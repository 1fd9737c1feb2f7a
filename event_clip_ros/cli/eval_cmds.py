"""Sub-commands for recorded bags: evaluate (offline or --live), to-bag, replay, record.

``evaluate`` and ``to-bag`` need no ROS; ``replay``, ``record`` and
``evaluate --live`` import rclpy (from :mod:`event_clip_ros.ros`) only when run.
The detector is configured as the node is: ``--config config/detector.yaml``
(the node's parameter file) and/or the flags below, which override it; unset
parameters take the node's defaults.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..apps.bag_writer import ENCODINGS, STORAGES, BagWriteConfig, write_event_bag
from ..apps.evaluation.bag_input import open_bag_topics
from ..apps.evaluation.health import DECODE_ERROR_PARTS, DEFAULT_MAX_PROBLEM_RATE, LOSS_CHECKS
from ..apps.evaluation.sources import SOURCE_HELP, load_ground_truth
from ..apps.evaluation.truth import TimeRanges, load_truth_csv
from .common import (
    DENOISE,
    MAX_FPS,
    MAX_INT64,
    add_noise_args,
    batch_arg,
    count_arg,
    float_range,
    int_range,
    ms_arg,
    number_arg,
    positive_float,
    print_problems,
    progress,
    unit_arg,
)

#: Detector counters that mean input was skipped or lost (printed when non-zero): those that can degrade a run,
#: and those that are normal in small numbers.
_PROBLEM_COUNTERS = (*DECODE_ERROR_PARTS, *(name for check in LOSS_CHECKS for name in check.counters),
                     "stream_restarts", "skipped_windows", "capped_windows", "dropped_windows")
#: Fastest replay (speed factor) and longest wait (s) the bag commands take: 1000x, one week.
MAX_RATE = 1000.0
MAX_WAIT_S = 7 * 24 * 3600.0

#: evaluate flag -> detector parameter (see apps/detector_params.py)
_PARAMETER_FLAGS = {
    "mode": "mode", "labels": "labels", "labels_file": "labels_file", "prompts": "prompt_templates",
    "checkpoint": "checkpoint", "model": "model", "pretrained": "pretrained", "device": "device",
    "precision": "precision", "window_ms": "window_duration_ms", "hop_ms": "window_hop_ms",
    "event_count": "window_event_count", "min_events": "min_events", "top_k": "top_k",
    "score_threshold": "score_threshold", "threshold": "anomaly_threshold", "reference": "anomaly_reference_file",
    "noise_background_us": "noise_background_activity_us", "noise_hot_pixel_ms": "noise_hot_pixel_learn_ms",
    "noise_hot_pixel_factor": "noise_hot_pixel_factor", "noise_hot_pixel_min_count": "noise_hot_pixel_min_count",
    "backend": "backend", "onnx": "onnx_file", "onnx_providers": "onnx_providers",
}


def _param_arg(flag: str) -> Callable[[str], int | float]:
    """argparse type of a detector flag: the type and range the node declares for its parameter.

    The node's parameter table (:mod:`event_clip_ros.apps.detector_params`, which loads torch) is imported when
    the flag is given, so ``evaluate`` refuses exactly what the node refuses.
    """
    def parse(text: str) -> int | float:
        # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
        from ..apps.detector_params import PARAMETERS_BY_NAME

        spec = PARAMETERS_BY_NAME[_PARAMETER_FLAGS[flag]]
        return number_arg(type(spec.default), *(spec.range or (None, None)))(text)

    parse.__name__ = "number"  # int or float, as the parameter's default
    return parse


def detector_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The node parameters ``--config`` and the flags set (flags win); the rest keep the node's defaults."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.detector_params import load_parameters_yaml

    values: dict[str, Any] = load_parameters_yaml(args.config) if args.config else {}
    if args.denoise:
        values["noise_background_activity_us"] = DENOISE.background_activity_us
        values["noise_hot_pixel_learn_ms"] = DENOISE.hot_pixel_learn_us / 1000
    for flag, name in _PARAMETER_FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if name == "labels":
            value = [label.strip() for label in value.split(",") if label.strip()]
        elif name == "prompt_templates":
            value = [t for t in value.split("|") if t]
        values[name] = value
    return values


# ------------------------------------------------------------------ evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    """Exit 0: complete, or degraded (a WARNING line) without --strict; 1: degraded with --strict, incomplete,
    interrupted or no window with ground truth; 2: an error (main)."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.detector_inputs import narrow_to_input
    from ..apps.detector_params import config_from_parameters
    from ..apps.evaluation.offline import EvaluationSetup, evaluate_bag

    values, config_topic = narrow_to_input(detector_parameters(args), args.camera)
    bag = open_bag_topics(args.bag, args.topic or config_topic)
    values["input_type"] = bag.msgtype  # the bag's type, whatever the config file says
    config, _ = config_from_parameters(values)
    truth = load_ground_truth(args.ground_truth, bag, args.fps) if args.ground_truth else None
    setup = EvaluationSetup(config, truth, truth.describe() if truth else "none", args.batch_size,
                            round(args.frame_step_ms * 1e6), args.max_problem_rate)
    if args.live:
        # lazy: rclpy and the ROS layer load only for the commands that talk to ROS
        from ..ros.live_evaluation import evaluate_live
        from ..ros.session import ReplayError

        try:
            run, evaluation = evaluate_live(bag, setup, values, args.out, rate=args.rate, timeout_s=args.timeout_s)
        except ReplayError as exc:
            print(f"event-clip evaluate --live: {exc}", file=sys.stderr)
            return 1
    else:
        with progress("evaluating", "msg", total=bag.message_count) as bar:
            run, evaluation = evaluate_bag(args.bag, setup, args.out, topic=bag.event_topic, on_message=bar.update)
    _print_summary(run, evaluation, args.out)
    print_problems({k: v for k, v in run.counters.items() if k in _PROBLEM_COUNTERS})
    if run.status == "degraded":
        print(f"WARNING: evaluation degraded: the input lost more than {args.max_problem_rate:g} of itself (problems "
              "above); the numbers describe what survived" + ("" if args.strict else " (--strict: exit 1)"),
              file=sys.stderr)
    ok = run.status == "complete" or (run.status == "degraded" and not args.strict)
    return 0 if ok and evaluation.scored else 1


def _print_summary(run, evaluation, out_dir: str) -> None:
    metrics = evaluation.metrics_dict()
    line = f"{run.source} evaluation ({run.status}): {metrics['windows']} windows, {metrics['windows_with_truth']} with truth"
    c = evaluation.classification
    if c is not None and c.top1 is not None:
        line += f"; top-1 {100 * c.top1:.1f}%" + (f", top-5 {100 * c.top5:.1f}%" if c.top5 is not None else "")
    for name, m in (("window", evaluation.window_anomaly), ("frame", evaluation.frame_anomaly)):
        if m is not None and m.roc_auc is not None:
            line += f"; {name} ROC-AUC {m.roc_auc:.3f} AP {m.average_precision:.3f}"
    print(line)
    print(f"report: {Path(out_dir) / 'report.md'}")
    for problem in run.problems + evaluation.problems:
        print(f"problem: {problem}", file=sys.stderr)


# ------------------------------------------------------------------ to-bag
def cmd_to_bag(args: argparse.Namespace) -> int:
    truth: TimeRanges | None = None
    if args.labels:
        loaded = load_truth_csv(args.labels)
        if not isinstance(loaded, TimeRanges):
            raise ValueError(f"{args.labels}: a label topic needs time ranges (t_start_us,t_end_us,label or "
                             "stamp_start_ns,stamp_end_ns,label), not labels by window")
        truth = loaded
    config = BagWriteConfig(encoding=args.encoding, packet_ms=args.packet_ms, storage=args.storage, topic=args.out_topic,
                            label_topic=args.label_topic, frame_id=args.frame_id, stamp_origin_ns=args.stamp_origin_ns)
    with progress("writing", "pkt") as bar:
        summary = write_event_bag(args.input, args.out, config, truth, args.topic, on_packet=lambda _: bar.update())
    print(f"wrote {summary.path}: {summary.packets} {args.encoding} EventPackets ({summary.events} events, "
          f"{summary.size.width}x{summary.size.height}) on {args.out_topic}"
          + (f", {summary.labels} labels on {args.label_topic}" if truth is not None else "") + f" ({args.storage})")
    return 0


# ------------------------------------------------------------------ replay / record (rclpy)
def cmd_replay(args: argparse.Namespace) -> int:
    # lazy: rclpy and the ROS layer load only for the commands that talk to ROS
    from ..ros.replay import replay_bag

    return replay_bag(args.bag, topics=args.topic, rate=args.rate, loop=args.loop, wait_s=args.wait_s)


def cmd_record(args: argparse.Namespace) -> int:
    # lazy: rclpy and the ROS layer load only for the commands that talk to ROS
    from ..ros.record import record_bag
    from ..ros.session import ReplayError

    try:
        return record_bag(args.out, topics=args.topic, storage=args.storage, duration_s=args.duration_s,
                          max_messages=args.max_messages)
    except ReplayError as exc:
        print(f"event-clip record: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy / anomaly metrics of the detector on a bag (report, plots, CSV)")
    p.add_argument("bag", help="rosbag2 bag (directory, .mcap or .db3)")
    p.add_argument("--topic", help="event topic (default: the bag's only event topic)")
    p.add_argument("--ground-truth", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--out", required=True, help="directory for report.md, metrics.json, windows.csv and the plots")
    p.add_argument("--config", help="the node's parameter file (config/detector.yaml); flags below override it")
    p.add_argument("--camera", metavar="NAME",
                   help="with a parameter file of several cameras (inputs: [...], config/two_cameras.yaml): the one "
                        "to evaluate, with its settings and topic (--topic overrides)")
    p.add_argument("--fps", type=positive_float(MAX_FPS), default=30.0,
                   help="frame rate of ucf: annotations (default 30)")
    p.add_argument("--frame-step-ms", type=ms_arg, default=1000 / 30,
                   help="frame-level anomaly metrics sample every this many ms (default 33.3: 30 frames/s)")
    p.add_argument("--batch-size", type=batch_arg, default=32, help="windows per forward pass (default 32)")
    p.add_argument("--max-problem-rate", type=unit_arg, default=DEFAULT_MAX_PROBLEM_RATE, metavar="SHARE",
                   help="largest share of packets, events or windows the input may lose (decode errors, gaps, "
                        "dropped events, time jumps) before the status is degraded (default %(default)g: 0.1%%)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the status is degraded (default: exit 0 with a WARNING line)")
    d = p.add_argument_group("detector parameters (default: --config, else the node's defaults)")
    d.add_argument("--mode", choices=("zero_shot", "anomaly"))
    d.add_argument("--labels", help="comma-separated class names")
    d.add_argument("--labels-file", help="file with one class name per line")
    d.add_argument("--prompts", help="prompt templates, '|'-separated, or a set name (event, n-imagenet, ...)")
    d.add_argument("--checkpoint", help="event encoder checkpoint (.safetensors or the paper's vitb.pt/vitl.pt)")
    d.add_argument("--model", help="open_clip architecture (when no checkpoint)")
    d.add_argument("--pretrained", help="open_clip pretrained tag or weights file (when no checkpoint)")
    d.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    d.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"))
    d.add_argument("--backend", choices=("torch", "onnxruntime"), help="what runs the event encoder (onnxruntime: --onnx)")
    d.add_argument("--onnx", metavar="FILE", help="the encoder exported by event-clip export --onnx (backend onnxruntime)")
    d.add_argument("--onnx-providers", metavar="LIST", help="onnxruntime providers: auto, or a list of tensorrt, cuda, cpu")
    d.add_argument("--window-ms", type=_param_arg("window_ms"), help="window duration on sensor time")
    d.add_argument("--hop-ms", type=_param_arg("hop_ms"), help="start-to-start distance of windows")
    d.add_argument("--event-count", type=_param_arg("event_count"), help="windows of N events instead of a duration")
    d.add_argument("--min-events", type=_param_arg("min_events"), help="windows with fewer events are skipped")
    d.add_argument("--top-k", type=_param_arg("top_k"), help="labels per window (top-5 accuracy needs 5)")
    d.add_argument("--score-threshold", type=_param_arg("score_threshold"),
                   help="zero-shot: labels below this probability are left out")
    d.add_argument("--threshold", type=_param_arg("threshold"), help="anomaly: decision threshold on P(anomaly)")
    d.add_argument("--reference", help="anomaly: reference bank .npz instead of text prompts")
    add_noise_args(p)
    live = p.add_argument_group("live (rclpy): the node in a subprocess, the bag replayed into it over DDS")
    live.add_argument("--live", action="store_true", help="score the node's published results instead of running offline")
    live.add_argument("--rate", type=positive_float(MAX_RATE), default=1.0,
                      help="replay speed factor (default 1: recorded timing)")
    live.add_argument("--timeout-s", type=positive_float(MAX_WAIT_S), default=120.0,
                      help="give up waiting for the node after this long")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("to-bag", help="convert any recording into a rosbag2 bag of EventPackets (optional label topic)")
    p.add_argument("input", help="recording (every format the event readers know, bags included)")
    p.add_argument("out", help="new bag directory")
    p.add_argument("--topic", help="event topic of an input bag")
    p.add_argument("--encoding", choices=ENCODINGS, default="evt3", help="EventPacket encoding (default evt3)")
    p.add_argument("--packet-ms", type=ms_arg, default=1.0, help="sensor time per packet (default 1)")
    p.add_argument("--labels", help="ground-truth CSV of time ranges, written as a std_msgs/String label topic")
    p.add_argument("--storage", choices=tuple(STORAGES), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--out-topic", default="/event_camera/events", help="event topic (default %(default)s)")
    p.add_argument("--label-topic", default="/labels", help="label topic (default %(default)s)")
    p.add_argument("--frame-id", default="camera", help="header frame_id (default %(default)s)")
    p.add_argument("--stamp-origin-ns", type=int_range(0, MAX_INT64), default=0,
                   help="ROS time of sensor time 0, ns (default 0)")
    p.set_defaults(func=cmd_to_bag)

    p = sub.add_parser("replay", help="publish a bag's messages into ROS at their recorded timing (rclpy)")
    p.add_argument("bag", help="rosbag2 bag")
    p.add_argument("--topic", action="append", help="topic to play (repeat; default: all topics)")
    p.add_argument("--rate", type=positive_float(MAX_RATE), default=1.0, help="speed factor (default 1)")
    p.add_argument("--loop", action="store_true", help="play again from the start until Ctrl-C")
    p.add_argument("--wait-s", type=float_range(0.0, MAX_WAIT_S), default=30.0,
                   help="wait this long for a subscriber and until every subscription has matched, so that no "
                        "message is lost; exit 1 when nothing subscribes (default 30; 0: publish at once)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("record", help="record topics into a bag through raw subscriptions (rclpy)")
    p.add_argument("out", help="new bag directory")
    p.add_argument("--topic", action="append", required=True, help="topic to record (repeat)")
    p.add_argument("--storage", choices=tuple(STORAGES), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--duration-s", type=positive_float(MAX_WAIT_S), help="stop after this long (default: Ctrl-C)")
    p.add_argument("--max-messages", type=count_arg, help="stop after this many messages")
    p.set_defaults(func=cmd_record)
