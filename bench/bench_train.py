#!/usr/bin/env python3
"""Pretraining step rate beside a bare forward+backward of the same event tower, in the same run.

Bare: f_E forward on a ready (B, 3, H, W) frame batch, mean of the output, backward, AdamW
step. Ours: the full pretraining step of training/pretrain.py's method: frames built from the
events on the device, frozen f_I forward on the paired images (no grad), L = L_ct + 0.1 L_zs +
L_kl against cached seen-class text embeddings, backward, AdamW step. The difference is what
the method adds (mostly the frozen f_I forward) plus our overhead. Random weights: speed does
not depend on their values.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from results_file import bench_parser, write_results

from event_clip_ros.events.frames import build_frames_torch
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.train.losses import PretrainLoss, PretrainLossConfig

SIZE = SensorSize(128, 96)


def batch(n: int, events: int, image_size: int, seed: int = 0) -> tuple[list[np.ndarray], torch.Tensor]:
    rng = np.random.default_rng(seed)
    ev = [
        make_events(
            np.sort(rng.integers(0, 100_000, events)),
            rng.integers(0, SIZE.width, events),
            rng.integers(0, SIZE.height, events),
            rng.integers(0, 2, events),
        )
        for _ in range(n)
    ]
    images = torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    return ev, images


def steps_per_s(step, repeats: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


def compare(arch: str, batch_size: int, events: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device="auto")).train()
    h, w = model.meta.input_size
    ev, images = batch(batch_size, events, h)
    images = images.to(model.device)
    with torch.no_grad():
        text = model.encode_texts([f"class {i}" for i in range(16)], normalize=False)
    loss_fn = PretrainLoss(PretrainLossConfig(tau_i=0.1)).to(model.device)
    params = [*model.event_tower.parameters(), *loss_fn.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-5)
    frames_fixed = build_frames_torch(ev, SIZE, model.frame_config, model.device)
    x_fixed = frames_fixed.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()

    def bare() -> None:
        opt.zero_grad(set_to_none=True)
        model.event_tower(x_fixed).float().mean().backward()
        opt.step()

    def ours() -> None:
        opt.zero_grad(set_to_none=True)
        frames = build_frames_torch(ev, SIZE, model.frame_config, model.device)
        with torch.no_grad():
            img = model.encode_images(images, normalize=False)
        evt = model.encode_frames(frames, normalize=False)
        total, _ = loss_fn(img, img, evt, text)
        total.backward()
        opt.step()

    r_bare, r_ours = [], []
    for _ in range(2):  # interleave against drift on a shared machine
        r_bare.append(steps_per_s(bare, repeats))
        r_ours.append(steps_per_s(ours, repeats))
    b, o = max(r_bare), max(r_ours)
    return {
        "arch": arch,
        "device": str(model.device),
        "batch": batch_size,
        "events_per_sample": events,
        "bare_steps_per_s": b,
        "ours_steps_per_s": o,
        "ours_samples_per_s": o * batch_size,
        "ratio": o / b,
    }


def main() -> None:
    ap = bench_parser(__doc__, "bench_train")
    ap.add_argument("--archs", default="EventCLIP-Toy48,EventCLIP-Tiny,ViT-B-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--events", type=int, default=5000, help="events per sample (default 5000)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = [compare(a, args.batch if a != "ViT-B-32" else min(args.batch, 8), args.events, args.repeats) for a in args.archs.split(",")]
    print(f"\n{'arch':<16} {'device':<7} {'batch':>5} {'bare step/s':>12} {'ours step/s':>12} {'samples/s':>10} {'ours/bare':>10}")
    for r in rows:
        print(
            f"{r['arch']:<16} {r['device']:<7} {r['batch']:>5} {r['bare_steps_per_s']:12.2f} {r['ours_steps_per_s']:12.2f} "
            f"{r['ours_samples_per_s']:10.1f} {r['ratio']:10.2f}"
        )
    print("(ours adds the frozen f_I forward on the images, the frame building and the three losses)")
    write_results(rows, args.out)


if __name__ == "__main__":
    main()
