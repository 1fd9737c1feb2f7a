#!/usr/bin/env python3
"""GPU latency in one command: the event encoder at batch 1 and the detector end to end, targets beside.

  bash bench/gpu_bench.sh                              # on a GPU machine (wheels from .whl/ when present)
  .venv/bin/python bench/bench_gpu.py --device cpu     # the same path on a CPU, tiny sizes (CI smoke test)

1. Encoder latency, batch 1 (one 224x224 frame of a random event window), for each architecture
   (default ViT-B/32 and ViT-L/14; random weights from open_clip's configs, nothing downloaded) and
   precision (fp16, bf16): torch as the node runs it (``EventClip.encode_frames``: fp32 weights under
   autocast), torch with the weights cast to the precision, and that forward replayed as a CUDA
   graph (no per-kernel launch cost: what the GPU itself takes). Median and p90 of --repeats calls,
   wall clock, synchronised. Target printed beside: ViT-B/32 fp16 < 3 ms on an H100-class GPU.
2. onnxruntime, when the ONNX export (``event_clip_ros.model.onnx_export``) and a provider are there:
   TensorRT and CUDA on a GPU, the CPU provider on a CPU, for --onnx-archs. Each missing part is
   skipped with the reason printed.
3. The detector end to end: with rclpy, a simulated scene (--node-seconds of ``event-clip simulate``'s
   moving shapes, 640x480) written as a bag of 1 ms EVT3 EventPackets (``event-clip to-bag``) and
   replayed at its recorded timing into the node (``python -m event_clip_ros.ros.node``, --node-arch, random
   weights, on --device) over DDS; its /diagnostics latency (window complete -> result published)
   and inference time are read at the end. Target: latency p50 <= inference p50 + 5 ms. Without
   rclpy (a bare GPU box), the same packets go through the detector in this process in real time
   (``Detector.feed_cdr`` + ``infer``: no DDS, no worker thread), labelled as such.

Results (JSON, written after each section, so a run cut short keeps what it measured): --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repo, where the package is not installed
from results_file import RESULTS_DIR  # noqa: E402

from event_clip_ros.events.frames import build_frames_torch  # noqa: E402
from event_clip_ros.events.types import SensorSize, make_events  # noqa: E402

SIZE = SensorSize(1280, 720)
B32_FP16_TARGET_MS = 3.0
NODE_MARGIN_MS = 5.0
LABELS = ["disc", "bar", "square", "person", "car"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def say(text: str = "") -> None:
    print(text, flush=True)


def random_window(events: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10_000, events))
    return make_events(t, rng.integers(0, SIZE.width, events), rng.integers(0, SIZE.height, events),
                       rng.integers(0, 2, events))


def timed_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median and p90 wall time (ms) of ``repeats`` calls after ``warmup`` (CUDA synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": round(statistics.median(times), 4), "p90_ms": round(p90(times), 4)}


def p90(values: list[float]) -> float:
    """The 90th percentile (the nearest rank above: never below the median)."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * (len(ordered) - 1))]


class Results:
    """The run's results, rewritten to ``path`` whenever a section adds to them."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path = path
        self.meta = meta
        self.encoder: list[dict] = []
        self.onnx: list[dict] = []
        self.node: dict | None = None
        self.skipped: list[dict] = []

    def add(self, section: str, value: dict) -> None:
        if section == "node":
            self.node = value
        else:
            getattr(self, section).append(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"meta": self.meta, "encoder": self.encoder, "onnx": self.onnx, "node": self.node, "skipped": self.skipped}
        self.path.write_text(json.dumps(data, indent=2))

    def skip(self, what: str, reason: str) -> None:
        say(f"skipped: {what}: {reason}")
        self.add("skipped", {"what": what, "reason": reason})


# ---------------------------------------------------------------- 1. encoder latency


def encoder_latency(arch: str, device: torch.device, precisions: list[str], repeats: int, events: int,
                    results: Results) -> None:
    from event_clip_ros.model import ModelSpec, create_event_clip

    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device=str(device), precision="fp32")).eval()
    say(f"{arch}: built with random weights in {time.perf_counter() - t0:.1f} s")
    frames = build_frames_torch([random_window(events)], SIZE, model.frame_config, model.device)
    for precision in precisions:
        dtype = DTYPES[precision]
        rows = {}
        with torch.inference_mode():
            if device.type == "cuda" or precision == "fp32":
                model.place(device, precision)
                rows["torch autocast (node)"] = timed_ms(lambda: model.encode_frames(frames), device, repeats)
            tower = copy.deepcopy(model.event_tower).to(dtype).eval()
            x = model.frames_to_input(frames).to(dtype)
            rows[f"torch {precision} weights"] = timed_ms(partial(tower, x), device, repeats)
            if device.type == "cuda":
                rows[f"torch {precision} weights, CUDA graph"] = timed_ms(cuda_graph(tower, x), device, repeats)
        for variant, t in rows.items():
            row = {"arch": arch, "precision": precision, "variant": variant, "batch": 1, **t}
            results.add("encoder", row)
            say(f"  {arch:<10} {precision:<5} {variant:<36} {t['median_ms']:9.3f} ms  (p90 {t['p90_ms']:.3f})")


def cuda_graph(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """``module(x)`` captured as a CUDA graph (static input): replaying it launches one graph."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            module(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        module(static_x)
    return graph.replay


# ---------------------------------------------------------------- 2. onnxruntime


def onnx_latency(arch: str, device: torch.device, precisions: list[str], repeats: int, events: int, folder: Path,
                 results: Results) -> None:
    try:
        import onnxruntime as ort

        from event_clip_ros.model.onnx_export import export_onnx
        from event_clip_ros.model.onnx_runtime import OnnxRuntimeEncoder
    except ImportError as exc:
        results.skip(f"onnxruntime {arch}", f"not importable here ({exc}); the ONNX export comes with the onnx branch "
                                            "(event_clip_ros.model.onnx_export), the GPU providers with onnxruntime-gpu")
        return
    from event_clip_ros.model import ModelSpec, create_event_clip

    available = ort.get_available_providers()
    wanted = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider"} if device.type == "cuda" \
        else {"cpu": "CPUExecutionProvider"}
    providers = [name for name, ep in wanted.items() if ep in available]
    for name, ep in wanted.items():
        if ep not in available:
            results.skip(f"onnxruntime {name} {arch}", f"{ep} is not among onnxruntime's providers here ({', '.join(available)})")
    if not providers:
        return
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device="cpu", precision="fp32")).eval()
    t0 = time.perf_counter()
    exported = export_onnx(model, folder / f"{arch}.onnx")
    say(f"{arch}: exported to ONNX in {time.perf_counter() - t0:.1f} s")
    for precision in precisions if device.type == "cuda" else ["fp32"]:
        if precision == "bf16":
            results.skip(f"onnxruntime {arch} bf16", "the onnxruntime backend runs fp32 or fp16")
            continue
        model.place(device, precision)
        frames = build_frames_torch([random_window(events)], SIZE, model.frame_config, model.device)
        for provider in providers:
            try:
                t0 = time.perf_counter()
                encoder = OnnxRuntimeEncoder.open(exported.path, model, provider, precision, source=arch)
                encoder(frames)  # a TensorRT engine is built at the first call
                start_s = time.perf_counter() - t0
                t = timed_ms(partial(encoder, frames), device, repeats)
            except Exception as exc:  # a provider that fails to start: say why, go on
                results.skip(f"onnxruntime {provider} {arch} {precision}", f"{type(exc).__name__}: {exc}")
                continue
            row = {"arch": arch, "precision": precision, "variant": f"onnxruntime {provider}", "batch": 1,
                   "providers": list(getattr(encoder, "active_providers", [])), "session_start_s": round(start_s, 1), **t}
            results.add("onnx", row)
            say(f"  {arch:<10} {precision:<5} {'onnxruntime ' + provider:<36} {t['median_ms']:9.3f} ms  "
                f"(p90 {t['p90_ms']:.3f}; session start {start_s:.1f} s)")


# ---------------------------------------------------------------- 3. the detector end to end


SCENE = SensorSize(640, 480)


def simulated_events(seconds: float) -> np.ndarray:
    """The moving-shapes scene of ``event-clip simulate`` (640x480, about 2 Mev/s), in this process."""
    from event_clip_ros.events.simulate import frames_to_events, moving_shapes
    from event_clip_ros.events.types import concat_events

    return concat_events(list(frames_to_events(moving_shapes(SCENE, int(seconds * 1e6)), SCENE)))


def node_parameters(arch: str, device: torch.device, precision: str, window_ms: float) -> dict:
    return {"model": arch, "pretrained": "none", "device": str(device), "precision": precision, "labels": LABELS,
            "window_duration_ms": window_ms, "torch_threads": 1, "diagnostics_period_s": 0.25}


def node_latency_ros(events: np.ndarray, folder: Path, params: dict) -> dict:
    """The scene as a bag of 1 ms EventPackets (``event-clip to-bag``), replayed into the node over DDS;
    its /diagnostics at the end."""
    from diagnostic_msgs.msg import DiagnosticArray

    from event_clip_ros.apps.detector_params import NODE_NAME
    from event_clip_ros.apps.evaluation.bag_input import bag_messages, open_bag_topics
    from event_clip_ros.events.writers import write_raw_evt3
    from event_clip_ros.ros.interfaces import EVENT_QOS, message_class
    from event_clip_ros.ros.node_process import NodeWatch, probe_message, start_detector_node, stop_process, wait_connected
    from event_clip_ros.ros.replay import play
    from event_clip_ros.ros.session import RosSession

    raw, bag_dir = folder / "scene.raw", folder / "scene_bag"
    write_raw_evt3(raw, [events], SCENE)
    subprocess.run([sys.executable, "-m", "event_clip_ros.cli", "to-bag", str(raw), str(bag_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    bag = open_bag_topics(bag_dir)
    namespace = f"bench_gpu{os.getpid()}"
    fqn = f"/{namespace}/{NODE_NAME}"
    proc = start_detector_node(namespace, {**params, "input_type": bag.msgtype})
    status: dict[str, str] = {}
    try:
        with RosSession(f"bench_gpu_{os.getpid()}") as session:
            publisher = session.node.create_publisher(message_class(bag.msgtype), f"{fqn}/events", EVENT_QOS)
            watch = NodeWatch(session.node, fqn)

            def on_diag(msg) -> None:  # the node's statuses (itself, its input) merged
                merged = {kv.key: kv.value for s in msg.status if s.name.startswith(fqn) for kv in s.values}
                if merged:
                    status.clear()
                    status.update(merged)

            session.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
            first = next(bag_messages(bag, [bag.event_topic]))
            wait_connected(session, publisher, probe_message(bag.msgtype, first.raw), watch, time.monotonic() + 300, proc)
            messages = play(session, bag, {bag.event_topic: publisher}, 1.0)
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                session.spin_once(0.05)
    finally:
        stop_process(proc)
    return {"path": "ROS 2 node over DDS (bag replayed at recorded timing)", "messages": messages, **status}


def node_latency_in_process(events: np.ndarray, params: dict) -> dict:
    """The scene as 1 ms EventPackets through the detector in this process, in real time (no DDS, no
    worker thread)."""
    from event_clip_ros.apps.detector import Detector
    from event_clip_ros.apps.detector_params import config_from_parameters
    from event_clip_ros.apps.event_input import make_input
    from event_clip_ros.events.encoders import encode_evt3
    from event_clip_ros.events.ros_cdr import encode_event_packet

    config, msgtype = config_from_parameters({k: v for k, v in params.items() if k != "torch_threads"
                                              and k != "diagnostics_period_s"})
    detector = Detector(config)
    detector.load()
    source = make_input(msgtype, config)
    size = SCENE
    slots = (events["t"] - events["t"][0]) // 1000
    cuts = np.flatnonzero(np.diff(slots)) + 1
    packets, prev = [], None
    for k, part in enumerate(np.split(events, cuts)):
        packets.append((int(part["t"][-1] - events["t"][0]), encode_event_packet(
            encode_evt3(part, prev), encoding="evt3", width=size.width, height=size.height, seq=k,
            stamp_ns=int(part["t"][0]) * 1000)))
        prev = int(part["t"][-1])
    latencies, inference = [], []
    start = time.perf_counter()
    for due_us, raw_msg in packets:
        wait = start + due_us * 1e-6 - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        for window in source.feed(raw_msg):
            t0 = time.perf_counter()
            detector.infer([window])
            if detector.model is not None and detector.model.device.type == "cuda":
                torch.cuda.synchronize()
            done = time.perf_counter()
            inference.append((done - t0) * 1e3)
            latencies.append((time.monotonic_ns() - window.ready_ns) * 1e-6)
    if not latencies:
        return {"path": "in process", "windows": 0}
    return {"path": "detector in this process (no DDS, no worker thread), packets in real time",
            "windows": len(latencies), "latency_ms_p50": statistics.median(latencies),
            "latency_ms_p90": p90(latencies),
            "inference_ms_p50": statistics.median(inference)}


def node_latency(arch: str, device: torch.device, precision: str, seconds: float, window_ms: float,
                 folder: Path, results: Results, use_ros: bool = True) -> None:
    t0 = time.perf_counter()
    events = simulated_events(seconds)
    say(f"detector end to end: {arch} {precision} on {device}, {seconds:g} s simulated {SCENE.width}x{SCENE.height} "
        f"scene ({events.size / seconds / 1e6:.1f} Mev/s, made in {time.perf_counter() - t0:.1f} s), "
        f"{window_ms:g} ms windows")
    params = node_parameters(arch, device, precision if device.type == "cuda" else "fp32", window_ms)
    if use_ros:
        try:
            import rclpy  # noqa: F401
            import rosbags  # noqa: F401
        except ImportError as exc:
            use_ros = False
            results.skip("node over DDS", f"{exc}: the detector runs in this process instead")
    out = node_latency_ros(events, folder, params) if use_ros else node_latency_in_process(events, params)

    def number(key: str) -> float | None:
        try:
            value = float(out.get(key, "nan"))
        except (TypeError, ValueError):
            return None
        return None if value != value else value

    lat, inf = number("latency_ms_p50"), number("inference_ms_p50")
    row = {"arch": arch, "precision": params["precision"], "device": str(device), "window_ms": window_ms,
           **{k: v for k, v in out.items() if not isinstance(v, (list, dict))}}
    if lat is not None and inf is not None:
        row["target_ms"] = round(inf + NODE_MARGIN_MS, 3)
        row["meets_target"] = lat <= inf + NODE_MARGIN_MS
        say(f"  {out['path']}: latency p50 {lat:.2f} ms (p90 {number('latency_ms_p90')}), inference p50 {inf:.2f} ms; "
            f"target latency <= inference + {NODE_MARGIN_MS:g} ms = {inf + NODE_MARGIN_MS:.2f}: "
            f"{'OK' if lat <= inf + NODE_MARGIN_MS else 'MISSED'}")
    else:
        say(f"  {out.get('path')}: no latency figures ({out})")
    results.add("node", row)


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="cuda, cuda:N or cpu (default: cuda when there is one)")
    ap.add_argument("--archs", help="architectures (default: ViT-B-32,ViT-L-14 on a GPU, EventCLIP-Tiny on a CPU)")
    ap.add_argument("--precisions", help="default fp16,bf16 on a GPU, fp32,bf16 on a CPU")
    ap.add_argument("--repeats", type=int, help="timed calls per figure (default 100 on a GPU, 10 on a CPU)")
    ap.add_argument("--events", type=int, default=50_000, help="events in the benchmark window (default 50000)")
    ap.add_argument("--onnx-archs", help="architectures for onnxruntime (default ViT-B-32; CPU: EventCLIP-Tiny); "
                                         "'none' skips")
    ap.add_argument("--node-arch", help="the detector's model (default ViT-B-32; CPU: EventCLIP-Tiny); 'none' skips")
    ap.add_argument("--node-seconds", type=float, help="length of the replayed scene (default 5 s; CPU: 1 s)")
    ap.add_argument("--window-ms", type=float, default=50.0, help="the detector's window (default 50)")
    ap.add_argument("--no-ros", action="store_true", help="run the detector in this process even where rclpy is")
    ap.add_argument("--out", default=str(RESULTS_DIR / "bench_gpu.json"), help="results JSON (default: %(default)s)")
    args = ap.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        say("bench_gpu: error: --device cuda but torch sees no CUDA GPU (use --device cpu for the CPU path)")
        return 2
    gpu = device.type == "cuda"
    archs = (args.archs or ("ViT-B-32,ViT-L-14" if gpu else "EventCLIP-Tiny")).split(",")
    precisions = (args.precisions or ("fp16,bf16" if gpu else "fp32,bf16")).split(",")
    if any(p not in DTYPES for p in precisions):
        ap.error(f"precisions are {', '.join(DTYPES)}")
    repeats = args.repeats or (100 if gpu else 10)
    onnx_archs = (args.onnx_archs or ("ViT-B-32" if gpu else "EventCLIP-Tiny")).split(",")
    node_arch = args.node_arch or ("ViT-B-32" if gpu else "EventCLIP-Tiny")
    node_seconds = args.node_seconds or (5.0 if gpu else 1.0)
    if not gpu:
        torch.set_num_threads(1)

    name = torch.cuda.get_device_name(device) if gpu else platform.processor() or platform.machine()
    meta = {"device": str(device), "device_name": name, "torch": torch.__version__,
            "cuda": torch.version.cuda if gpu else None, "python": platform.python_version(), "repeats": repeats,
            "events_per_window": args.events}
    say(f"bench_gpu: {name} ({device}), torch {torch.__version__}, {repeats} calls per figure")
    results = Results(Path(args.out), meta)
    status = 0
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        folder = Path(tmp)
        say("\n1. encoder latency, batch 1")
        for arch in archs:
            try:
                encoder_latency(arch, device, precisions, repeats, args.events, results)
                if gpu:
                    torch.cuda.empty_cache()  # the models of this architecture are gone
            except Exception as exc:
                status = 1
                results.skip(f"encoder {arch}", f"failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
        say("\n2. onnxruntime, batch 1")
        for arch in [a for a in onnx_archs if a.lower() != "none"]:
            try:
                onnx_latency(arch, device, precisions, repeats, args.events, folder, results)
            except Exception as exc:
                status = 1
                results.skip(f"onnxruntime {arch}", f"failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()
        say("\n3. detector end to end")
        if node_arch.lower() != "none":
            try:
                node_latency(node_arch, device, precisions[0], node_seconds, args.window_ms, folder, results,
                             use_ros=not args.no_ros)
            except Exception as exc:
                status = 1
                results.skip("detector end to end", f"failed: {type(exc).__name__}: {exc}")
                traceback.print_exc()

    say("\nsummary")
    b32 = [r for r in results.encoder if r["arch"] == "ViT-B-32" and r["precision"] == "fp16"]
    if b32 and gpu:
        best = min(b32, key=lambda r: r["median_ms"])
        say(f"  ViT-B/32 fp16 batch 1: {best['median_ms']:.3f} ms ({best['variant']}); target < {B32_FP16_TARGET_MS:g} ms "
            f"on an H100-class GPU: {'OK' if best['median_ms'] < B32_FP16_TARGET_MS else 'MISSED'} ({name})")
        node_path = next((r for r in b32 if r["variant"] == "torch autocast (node)"), None)
        if node_path:
            say(f"  as the node runs it (autocast): {node_path['median_ms']:.3f} ms")
    node = results.node
    if node and "meets_target" in node:
        say(f"  detector latency p50 {float(node['latency_ms_p50']):.2f} ms vs inference + {NODE_MARGIN_MS:g} ms = "
            f"{node['target_ms']:.2f}: {'OK' if node['meets_target'] else 'MISSED'}")
    for s in results.skipped:
        say(f"  skipped {s['what']}: {s['reason']}")
    say(f"results: {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
