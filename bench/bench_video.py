#!/usr/bin/env python3
"""Video path throughput on one core, beside plain OpenCV decoding of the same video in the same run.

Rows (frames per second, best of --repeats):
  cv2 decode (baseline)      : a bare ``cv2.VideoCapture.read`` loop
  VideoReader                : our streaming reader (decode + bookkeeping)
  extraction, decoded frames : the paper's frame-difference extraction alone, on frames already in memory
  decode + extraction        : VideoReader -> event frames at the video size (what video2events --mode frames does)
  decode + extraction 224    : the same with the resize to a 224x224 model input
  decode + event simulation  : VideoReader -> DVS simulator (events mode, without writing)

Input: a synthesised UCF-Crime-sized video (340x256 at 30 fps, mp4v) of moving shapes over a
textured background, written to a temporary directory. Results: stdout and bench/results/bench_video.json.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from results_file import bench_parser, best_rate, write_results

from event_clip_ros.events.simulate import SimulatorConfig
from event_clip_ros.events.types import SensorSize
from event_clip_ros.video.extraction import ExtractionConfig, extract_event_frames
from event_clip_ros.video.reader import VideoReader
from event_clip_ros.video.to_events import video_events


def synth_video(path: Path, n_frames: int, size: tuple[int, int], fps: float, seed: int = 0) -> Path:
    """Moving shapes over a static texture, with mild sensor noise (so not every difference is zero)."""
    w, h = size
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.uniform(40, 200, (h, w, 3)).astype(np.float32), (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError("this OpenCV build cannot write mp4v")
    for i in range(n_frames):
        img = bg + rng.normal(0, 2, (h, w, 3)).astype(np.float32)
        cx = int(w / 2 + 0.35 * w * np.sin(0.05 * i))
        cv2.circle(img, (cx, h // 3), h // 8, (230, 230, 230), -1, cv2.LINE_AA)
        sy = int((3 * i) % (h + 40)) - 20
        cv2.rectangle(img, (w // 5, sy), (w // 5 + 30, sy + 30), (20, 40, 200), -1)
        writer.write(np.clip(img, 0, 255).astype(np.uint8))
    writer.release()
    return path



def main() -> None:
    ap = bench_parser(__doc__, "bench_video")
    ap.add_argument("--frames", type=int, default=900, help="frames in the test video (default 900: 30 s at 30 fps)")
    ap.add_argument("--size", default="340x256", help="video size WxH (default 340x256, the UCF-Crime protocol's)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.lower().split("x"))
    fps = 30.0
    with tempfile.TemporaryDirectory() as tmp:
        video = synth_video(Path(tmp) / "bench.mp4", args.frames, (w, h), fps)
        print(f"input: {args.frames} frames {w}x{h} mp4v at {fps:g} fps ({video.stat().st_size / 1e6:.1f} MB), one core")

        def cv2_decode() -> int:
            cap, n = cv2.VideoCapture(str(video)), 0
            while cap.read()[0]:
                n += 1
            cap.release()
            return n

        def reader() -> int:
            with VideoReader(video) as r:
                return sum(1 for _ in r.frames())

        with VideoReader(video) as r:
            decoded = list(r.frames())

        def extraction_only() -> int:
            for _ in extract_event_frames(decoded, ExtractionConfig()):
                pass
            return len(decoded)

        def decode_extract(config: ExtractionConfig) -> Callable[[], int]:
            def run() -> int:
                with VideoReader(video) as r:
                    n = 0
                    for ef in extract_event_frames(r.frames(), config):
                        n += ef.n_frames
                    return n

            return run

        def decode_simulate() -> int:
            with VideoReader(video) as r:
                for _ in video_events(r.frames(), SensorSize(w, h), SimulatorConfig()):
                    pass
                return args.frames

        rates = {
            "cv2 decode (baseline)": best_rate(cv2_decode, args.repeats),
            "VideoReader": best_rate(reader, args.repeats),
            "extraction, decoded frames": best_rate(extraction_only, args.repeats),
            "decode + extraction": best_rate(decode_extract(ExtractionConfig()), args.repeats),
            "decode + extraction 224": best_rate(decode_extract(ExtractionConfig(out_size=(224, 224))), args.repeats),
            "decode + event simulation": best_rate(decode_simulate, args.repeats),
        }
    base = rates["cv2 decode (baseline)"]
    print(f"\n{'pipeline':<30} {'frames/s':>9} {'vs cv2 decode':>14}")
    for name, rate in rates.items():
        print(f"{name:<30} {rate:9.0f} {rate / base:13.2f}x")
    write_results({"input": f"synthetic {w}x{h} mp4v, {args.frames} frames", "frames_per_s": rates}, args.out)


if __name__ == "__main__":
    main()
