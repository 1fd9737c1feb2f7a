#!/usr/bin/env python3
"""The event encoder on onnxruntime (backend onnxruntime) against torch (backend torch) in the same run.

For each architecture: random weights (speed does not depend on their values), f_E exported with
``export_onnx`` (the code behind ``event-clip export --onnx``) into a temporary folder, then per batch
size the (B, H, W) frames of random event windows through both backends, interleaved (3 rounds of
``--repeats`` calls after warm-up), median wall time per call. Torch: ``TorchEncoder``, i.e.
``EventClip.encode_frames`` under inference_mode (what backend torch runs); onnxruntime:
``OnnxRuntimeEncoder`` (numpy in, session.run, tensor out), both with torch's CPU thread count.
Prints speedup = torch ms / onnxruntime ms (> 1: onnxruntime faster) and the smallest cosine between the
two backends' embeddings. ``--device cuda --providers cuda`` (with onnxruntime-gpu) measures a GPU the
same way. On a loaded shared machine torch's default thread pool (2 threads on 2 cores busy with other work)
can take 100x longer per call than with ``--threads 1``: compare the two before reading a speedup.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_model import SIZE, timed, windows
from results_file import bench_parser, write_results

from event_clip_ros.events.frames import build_frames_torch
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.backends import TorchEncoder
from event_clip_ros.model.onnx_export import cosines, export_onnx
from event_clip_ros.model.onnx_runtime import OnnxRuntimeEncoder


def compare(arch: str, batches: list[int], device: str, providers: str, precision: str, events_per_window: int,
            repeats: int, folder: Path) -> list[dict]:
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device="cpu", precision="fp32")).eval()
    t0 = time.perf_counter()
    exported = export_onnx(model, folder / f"{arch}.onnx")
    export_s = time.perf_counter() - t0
    model.place(device, precision)
    onnx_encoder = OnnxRuntimeEncoder.open(exported.path, model, providers, precision, source=arch)
    torch_encoder = TorchEncoder(model)
    rows = []
    for batch in batches:
        frames = build_frames_torch(windows(batch, events_per_window), SIZE, model.frame_config, model.device)
        t: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for _ in range(3):  # interleaved, so drift on a shared machine hits both alike
            t["torch"] += timed(functools.partial(torch_encoder, frames), model.device, repeats)
            t["onnxruntime"] += timed(functools.partial(onnx_encoder, frames), model.device, repeats)
        torch_s, onnx_s = statistics.median(t["torch"]), statistics.median(t["onnxruntime"])
        rows.append({
            "arch": arch,
            "batch": batch,
            "device": str(model.device),
            "torch_precision": model.precision,
            "providers": list(onnx_encoder.active_providers),
            "onnx_precision": onnx_encoder.precision,
            "threads": torch.get_num_threads(),
            "torch_ms": torch_s * 1e3,
            "onnxruntime_ms": onnx_s * 1e3,
            "speedup": torch_s / onnx_s,
            "min_cosine": float(cosines(onnx_encoder(frames).cpu().numpy(), torch_encoder(frames).cpu().numpy()).min()),
            "export_s": export_s,
            "onnx_mb": exported.size_bytes / 1e6,
        })
    return rows


def main() -> None:
    ap = bench_parser(__doc__, "bench_onnx")
    ap.add_argument("--archs", default="EventCLIP-Toy48,ViT-B-32", help="open_clip architectures (comma list)")
    ap.add_argument("--batches", default="1,8", help="batch sizes (comma list)")
    ap.add_argument("--device", default="cpu", help="device of the torch model (and of the embeddings)")
    ap.add_argument("--providers", default="auto", help="onnxruntime providers: auto or a list of tensorrt, cuda, cpu")
    ap.add_argument("--precision", default="fp32", help="fp32 (CPU), or fp16 / auto on a GPU")
    ap.add_argument("--events-per-window", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads of both (torch.set_num_threads; the node's "
                                                          "torch_threads); 0: torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as folder:
        for arch in args.archs.split(","):
            rows += compare(arch, [int(b) for b in args.batches.split(",")], args.device, args.providers, args.precision,
                            args.events_per_window, args.repeats, Path(folder))

    print(f"\n{'arch':<16} {'batch':>5} {'device':<6} {'threads':>7} {'torch ms':>9} {'onnxrt ms':>9} {'speedup':>8} "
          f"{'min cos':>9}  providers")
    for r in rows:
        print(f"{r['arch']:<16} {r['batch']:>5} {r['device']:<6} {r['threads']:>7} {r['torch_ms']:9.2f} "
              f"{r['onnxruntime_ms']:9.2f} {r['speedup']:7.2f}x {r['min_cosine']:9.6f}  "
              f"{','.join(r['providers'])} ({r['onnx_precision']})")
    for arch in dict.fromkeys(r["arch"] for r in rows):
        r = next(r for r in rows if r["arch"] == arch)
        print(f"{arch}: export {r['export_s']:.1f} s, {r['onnx_mb']:.1f} MB")
    print("speedup = torch ms / onnxruntime ms, same frames, same run (> 1: onnxruntime is faster)")
    write_results(rows, args.out)


if __name__ == "__main__":
    main()
