"""Sub-commands on ordinary videos: video2events, video-anomaly."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .common import progress, size_arg
from .model_cmds import add_model_args, add_scorer_args, checked_reference_bank, model_from_args, text_scorer

if TYPE_CHECKING:
    from ..model.anomaly import AnomalyScorer
    from ..model.event_clip import EventClip
    from ..video.extraction import ExtractionConfig
    from ..video.reader import VideoFrame, VideoReader


# ------------------------------------------------------------------ shared
def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video")
    g.add_argument("--fps", type=float, help="frame rate for the timestamps (default: the container's)")
    g.add_argument("--resize", type=size_arg, metavar="WxH", help="resize frames after decoding (UCF-Crime protocol: 340x256)")
    g.add_argument("--max-frames", type=int, help="stop after N frames")


def add_extraction_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("event frames (the paper's frame-difference extraction)")
    g.add_argument("--diff-threshold", type=int, default=10, help="gray-level difference a pixel must exceed (default 10)")
    g.add_argument("--stack", type=int, default=16, help="frames per event frame (default 16)")
    g.add_argument("--clamp", type=float, default=10.0, help="cap on the per-pixel sum before normalising; 0 = none (default 10)")
    g.add_argument("--on-value", type=int, default=1, help="value of a changed pixel: 1 counts changes (default), 255 reproduces the README snippet")


def extraction_from_args(args: argparse.Namespace) -> "ExtractionConfig":
    from ..video.extraction import ExtractionConfig

    return ExtractionConfig(threshold=args.diff_threshold, stack=args.stack, clamp=args.clamp or None, on_value=args.on_value)


def open_video(path: str, args: argparse.Namespace) -> "VideoReader":
    from ..video.reader import VideoReader

    return VideoReader(path, fps=args.fps, resize=None if args.resize is None else (args.resize.width, args.resize.height))


def video_frames(reader: "VideoReader", args: argparse.Namespace, desc: str) -> Iterator["VideoFrame"]:
    """The frames of the opened video, counted by a progress bar."""
    total = reader.frame_count_hint if args.max_frames is None else min(args.max_frames, reader.frame_count_hint or args.max_frames)
    with progress(desc, "frame", total=total) as bar:
        for frame in reader.frames(args.max_frames):
            yield frame
            bar.update()


# ------------------------------------------------------------------ video2events
def cmd_video2events(args: argparse.Namespace) -> int:
    from ..events.types import SensorSize

    with open_video(args.video, args) as reader:
        width, height = reader.size
        if args.mode == "events":
            from ..events.simulate import SimulatorConfig
            from ..video.to_events import write_video_evt3

            sim = SimulatorConfig(contrast_threshold=args.contrast, noise_rate_hz=args.noise_hz, seed=args.seed)
            n = write_video_evt3(video_frames(reader, args, "simulating"), SensorSize(width, height), args.out, sim)
            print(f"wrote {n} events ({width}x{height}, {reader.fps:g} fps video) to {args.out}")
            return 0
        written = _write_event_frames(reader, args)
    print(f"wrote {written} event frames to {args.out} (index: {Path(args.out) / 'frames.csv'})")
    return 0


def _write_event_frames(reader: "VideoReader", args: argparse.Namespace) -> int:
    """Mode (a): one PNG per stack plus frames.csv (stack, first_frame, n_frames, t_start_us, t_end_us, file)."""
    from dataclasses import replace

    import cv2
    import numpy as np

    from ..video.extraction import extract_event_frames

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = extraction_from_args(args)
    if args.frame_size is not None:
        config = replace(config, out_size=(args.frame_size.height, args.frame_size.width))
    written = 0
    with open(out / "frames.csv", "w", newline="") as index_file:
        index = csv.writer(index_file)
        index.writerow(["stack", "first_frame", "n_frames", "t_start_us", "t_end_us", "file"])
        for ef in extract_event_frames(video_frames(reader, args, "extracting"), config):
            name = f"stack_{ef.index:06d}_{ef.t_start_us}us.png"
            if not cv2.imwrite(str(out / name), np.rint(ef.frame * np.float32(255)).astype(np.uint8)):
                raise OSError(f"could not write {out / name}")
            index.writerow([ef.index, ef.first_frame, ef.n_frames, ef.t_start_us, ef.t_end_us, name])
            written += 1
    return written


# ------------------------------------------------------------------ video-anomaly
def _reference_scorer(model: "EventClip", args: argparse.Namespace) -> "AnomalyScorer":
    from ..model.anomaly import ReferenceAnomalyScorer, ReferenceScorerConfig
    from ..video.anomaly import embed_video

    if len(args.reference) == 1 and Path(args.reference[0]).suffix == ".npz":
        scorer = ReferenceAnomalyScorer.load(args.reference[0], device=model.device)
        if args.threshold is not None:
            scorer.threshold = args.threshold
        return scorer
    config = ReferenceScorerConfig(k=args.k, capacity=args.capacity, **({} if args.threshold is None else {"threshold": args.threshold}))
    scorer = ReferenceAnomalyScorer(config, device=model.device)
    for path in args.reference:
        with open_video(path, args) as reader:
            for _, emb in embed_video(model, video_frames(reader, args, f"reference {Path(path).name}"), extraction_from_args(args), args.batch_size):
                scorer.update(emb)
    return checked_reference_bank(scorer, f"the reference videos gave {len(scorer)} segment(s) of {args.stack} frames",
                                  "segments", args.save_reference)


def cmd_video_anomaly(args: argparse.Namespace) -> int:
    import numpy as np

    from ..video.anomaly import frame_scores, score_video

    model = model_from_args(args)
    scorer = _reference_scorer(model, args) if args.reference else text_scorer(model, args)
    segments = []
    with open_video(args.video, args) as reader:
        if not args.json:
            print(f"{'segment':>7} {'t_start_us':>12} {'t_end_us':>12} {'frames':>6}  score  (threshold {scorer.threshold:g})")
        for seg in score_video(model, scorer, video_frames(reader, args, "scoring"), extraction_from_args(args), args.batch_size):
            segments.append(seg)
            flagged = bool(scorer.decide(np.array([seg.score]))[0])
            if args.json:
                print(json.dumps({"segment": seg.index, "first_frame": seg.first_frame, "n_frames": seg.n_frames,
                                  "t_start_us": seg.t_start_us, "t_end_us": seg.t_end_us,
                                  "score": round(seg.score, 6), "anomaly": flagged}))
            else:
                print(f"{seg.index:>7} {seg.t_start_us:>12} {seg.t_end_us:>12} {seg.n_frames:>6}  {seg.score:.3f}{'  ANOMALY' if flagged else ''}")
    if not segments:
        raise ValueError(f"{args.video}: fewer than 2 frames, no segment to score")
    if args.frame_scores:
        n_frames = segments[-1].first_frame + segments[-1].n_frames
        with open(args.frame_scores, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "score"])
            w.writerows((i, f"{s:.6f}") for i, s in enumerate(frame_scores(segments, n_frames)))
    if not args.json:
        flagged = int(scorer.decide(np.array([s.score for s in segments])).sum())
        print(f"{flagged} of {len(segments)} segments above the threshold")
    return 0


# ------------------------------------------------------------------ parser
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video2events", help="events from an ordinary video: the paper's event frames (PNG) or a simulated RAW EVT3 stream")
    p.add_argument("video", help="video file (anything this OpenCV build decodes)")
    p.add_argument("out", help="frames mode: output directory (PNG per stack + frames.csv); events mode: output .raw file")
    p.add_argument("--mode", choices=("frames", "events"), default="frames",
                   help="frames: thresholded frame differences summed per stack (default); events: DVS simulation written as RAW EVT3")
    add_video_args(p)
    add_extraction_args(p)
    p.add_argument("--frame-size", type=size_arg, metavar="WxH", help="frames mode: size of the event frames (default: the video's)")
    g = p.add_argument_group("events mode (DVS simulation)")
    g.add_argument("--contrast", type=float, default=0.2, help="log-intensity contrast threshold (default 0.2)")
    g.add_argument("--noise-hz", type=float, default=0.0, help="background noise events per pixel per second (default 0)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.set_defaults(func=cmd_video2events)

    p = sub.add_parser("video-anomaly", help="anomaly score in [0, 1] for each stack of frames of a video")
    p.add_argument("video", help="video file")
    p.add_argument("--reference", nargs="+", metavar="NORMAL_VIDEO|BANK",
                   help="normal behaviour: videos (their segments form the reference bank) or one saved bank .npz; without it, text prompts score P(abnormal)")
    add_scorer_args(p, "segments")
    p.add_argument("--frame-scores", metavar="CSV", help="also write per-frame scores (each segment's score over its frames)")
    p.add_argument("--json", action="store_true", help="one JSON object per segment: segment, first_frame, n_frames, t_start_us, t_end_us, score, anomaly")
    add_video_args(p)
    add_extraction_args(p)
    add_model_args(p)
    p.set_defaults(func=cmd_video_anomaly)
