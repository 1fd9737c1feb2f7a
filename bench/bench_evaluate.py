#!/usr/bin/env python3
"""Throughput of ``event-clip evaluate`` (windows per second) beside bare model inference in the same run.

Set-up: a synthetic recording (``--rate-mev-s`` of uniform events on 640x480 for ``--seconds``) is
written as a bag of 1 ms EVT3 EventPackets (mcap) with a whole-bag label; the evaluation runs the
node's Detector over it (decode, windows, inference, scoring, report files) with a random model
of each ``--archs`` (speed does not depend on the weights). Bare inference: ``EventClip.embed_windows``
+ ``ZeroShotClassifier.classify`` of the same windows, already cut and in memory, same batch size.
The difference is the cost of reading the bag, decoding, windowing and writing the report.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results_file import RESULTS_DIR, write_results

from event_clip_ros.apps.bag_writer import BagWriteConfig, write_event_bag
from event_clip_ros.apps.detector_config import DetectorConfig
from event_clip_ros.apps.evaluation.offline import EvaluationSetup, evaluate_bag
from event_clip_ros.apps.evaluation.truth import WholeLabel
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.windows import WindowConfig, iter_windows
from event_clip_ros.events.writers import write_raw_evt3
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.zero_shot import ZeroShotClassifier

SIZE = SensorSize(640, 480)
LABELS = ("disc", "bar", "square", "person", "car")


def recording(path: Path, rate_mev_s: float, seconds: float) -> None:
    rng = np.random.default_rng(0)
    chunks = []
    per_s = int(rate_mev_s * 1e6)
    for k in range(int(seconds)):
        t = k * 1_000_000 + np.sort(rng.integers(0, 1_000_000, per_s))
        chunks.append(make_events(t, rng.integers(0, SIZE.width, per_s), rng.integers(0, SIZE.height, per_s),
                                  rng.integers(0, 2, per_s)))
    write_raw_evt3(path, chunks, SIZE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", default="EventCLIP-Tiny,ViT-B-32", help="open_clip architectures (comma list)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rate-mev-s", type=float, default=1.0, help="event rate of the recording (default 1)")
    ap.add_argument("--seconds", type=float, default=4.0, help="recording length (default 4)")
    ap.add_argument("--window-ms", type=float, default=50.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--out", default=str(RESULTS_DIR / "bench_evaluate.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    window = WindowConfig.by_duration_ms(args.window_ms, min_events=1, max_events=2_000_000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw, bag = Path(tmp) / "scene.raw", Path(tmp) / "bag"
        recording(raw, args.rate_mev_s, args.seconds)
        t0 = time.perf_counter()
        summary = write_event_bag(raw, bag, BagWriteConfig(packet_ms=1.0))
        to_bag_s = time.perf_counter() - t0
        with open_events(raw) as reader:
            cut = [w.events for w in iter_windows(reader.chunks(), window)][:-1]  # the last stays open, as offline
        for arch in args.archs.split(","):
            torch.manual_seed(0)
            model = create_event_clip(ModelSpec(arch=arch, pretrained=None, device=args.device))
            config = DetectorConfig(labels=LABELS, window=window, model=ModelSpec(arch=arch, pretrained=None,
                                                                                  device=args.device))
            classifier = ZeroShotClassifier(model, LABELS)
            classifier.classify(model.embed_windows(cut[:2], SIZE), top_k=5)  # warm-up
            t0 = time.perf_counter()
            for i in range(0, len(cut), args.batch_size):
                classifier.classify(model.embed_windows(cut[i:i + args.batch_size], SIZE, batch_size=args.batch_size),
                                    top_k=5)
            bare_s = time.perf_counter() - t0
            run, ev = evaluate_bag(bag, EvaluationSetup(config, WholeLabel("disc"), "bench", args.batch_size),
                                   Path(tmp) / f"out_{arch}", model=model)
            row = {
                "arch": arch, "device": str(model.device), "windows": len(ev.windows),
                "events_per_window": int(np.mean([c.size for c in cut])), "packets": summary.packets,
                "evaluate_windows_per_s": round(len(ev.windows) / run.timing["wall_s"], 2),
                "bare_inference_windows_per_s": round(len(cut) / bare_s, 2),
                "evaluate_wall_s": run.timing["wall_s"], "decode_s": run.timing["decode_s"],
                "inference_s": run.timing["inference_s"], "to_bag_s": round(to_bag_s, 3),
            }
            rows.append(row)
            print(row, flush=True)
    write_results({"rate_mev_s": args.rate_mev_s, "seconds": args.seconds, "window_ms": args.window_ms,
                   "batch_size": args.batch_size, "threads": torch.get_num_threads(), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
