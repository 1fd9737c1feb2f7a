#!/usr/bin/env python3
"""Per-window inference latency and throughput of the event encoder, beside bare open_clip
``encode_image`` on the same input in the same run (goal: our overhead at most 10%).

Bare: ``clip.encode_image(x, normalize=True)`` of the frames already on the device as a (B, 3, H, W) tensor.
Ours, same input: ``EventClip.encode_frames`` of the (B, H, W) frames (3-channel input,
normalisation, autocast, normalised float32 embeddings) under inference_mode; the goal
applies to it. Ours, from events: ``EventClip.embed_windows`` of the event arrays, which
also builds the frames (reported beside, its extra cost is the frame builder's). Random weights: speed
does not depend on their values, and none are downloaded. On a GPU also ViT-B/32 batch-1
latency in fp16 and bf16.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from results_file import bench_parser, write_results

from event_clip_ros.events.frames import build_frames_torch
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.device import autocast

SIZE = SensorSize(1280, 720)


def windows(n: int, events_per_window: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.sort(rng.integers(0, 10_000, events_per_window))
        out.append(
            make_events(
                t,
                rng.integers(0, SIZE.width, events_per_window),
                rng.integers(0, SIZE.height, events_per_window),
                rng.integers(0, 2, events_per_window),
            )
        )
    return out


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    """Wall times (s) of ``repeats`` calls after 2 warm-up calls (CUDA synchronised)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def compare(arch: str, device: str, precision: str, batch: int, events_per_window: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device=device, precision=precision)).eval()
    wins = windows(batch, events_per_window)
    frames = build_frames_torch(wins, SIZE, model.frame_config, model.device)
    x = frames.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()

    @torch.inference_mode()
    def bare() -> torch.Tensor:
        with autocast(model.device, model.precision):
            return model.clip.encode_image(x, normalize=True)

    @torch.inference_mode()
    def ours_frames() -> torch.Tensor:
        return model.encode_frames(frames)

    def ours_events() -> torch.Tensor:
        return model.embed_windows(wins, SIZE, batch_size=batch)

    # interleave the three so drift on a shared machine hits all alike
    t: dict[str, list[float]] = {"bare": [], "frames": [], "events": []}
    for _ in range(3):
        t["bare"] += timed(bare, model.device, repeats)
        t["frames"] += timed(ours_frames, model.device, repeats)
        t["events"] += timed(ours_events, model.device, repeats)
    b, f, e = (statistics.median(t[k]) for k in ("bare", "frames", "events"))
    return {
        "arch": arch,
        "device": str(model.device),
        "precision": model.precision,
        "batch": batch,
        "events_per_window": events_per_window,
        "bare_ms": b * 1e3,
        "ours_ms": f * 1e3,
        "overhead": f / b - 1,
        "from_events_ms": e * 1e3,
        "from_events_windows_per_s": batch / e,
    }


def main() -> None:
    ap = bench_parser(__doc__, "bench_model")
    ap.add_argument("--archs", default="EventCLIP-Tiny,ViT-B-32", help="open_clip architectures (comma list)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--events-per-window", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    rows = []
    for arch in args.archs.split(","):
        for batch in (1, 32):
            rows.append(compare(arch, args.device, "auto", batch, args.events_per_window, args.repeats))
    if torch.cuda.is_available():
        for precision in ("fp16", "bf16"):
            rows.append(compare("ViT-B-32", "cuda", precision, 1, args.events_per_window, args.repeats))
    else:
        print("no CUDA GPU here: ViT-B/32 fp16/bf16 GPU latency not measured")

    print(
        f"\n{'arch':<16} {'device':<7} {'prec':<5} {'batch':>5} {'bare ms':>9} {'ours ms':>9} {'overhead':>9}"
        f" {'from events ms':>15} {'windows/s':>10}"
    )
    for r in rows:
        print(
            f"{r['arch']:<16} {r['device']:<7} {r['precision']:<5} {r['batch']:>5} {r['bare_ms']:9.2f} {r['ours_ms']:9.2f} "
            f"{r['overhead'] * 100:8.1f}% {r['from_events_ms']:15.2f} {r['from_events_windows_per_s']:10.1f}"
        )
    print(f"(from events: {args.events_per_window} events per {SIZE.width}x{SIZE.height} window, frames built on the model device)")
    worst = max(r["overhead"] for r in rows)
    print(f"goal overhead <= 10%: worst {worst * 100:.1f}% {'OK' if worst <= 0.10 else 'MISSED'}")
    write_results(rows, args.out)


if __name__ == "__main__":
    main()
