"""Sub-commands on ordinary videos: video2events, video-anomaly.

``video-anomaly`` scores each segment (stack of frames) with the node's
:class:`~event_clip_ros.apps.detector.Detector` and the scorer built from its options.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..apps.bag_writer import BagWriteConfig, write_event_bag
from ..events.simulate import SimulatorConfig
from ..events.types import SensorSize
from ..video.extraction import ExtractionConfig, extract_event_frames
from ..video.reader import VideoFileError, VideoFrame, VideoReader
from ..video.to_events import write_video_evt3
from .common import (
    MAX_CLAMP,
    MAX_CONTRAST,
    MAX_FPS,
    MAX_NOISE_HZ,
    MAX_STACK,
    count_arg,
    float_range,
    int_range,
    ms_arg,
    positive_float,
    progress,
    seed_arg,
    size_arg,
)
from .model_cmds import (
    add_model_args,
    add_scorer_args,
    checked_reference_bank,
    model_from_args,
    text_scorer,
)

if TYPE_CHECKING:
    from ..apps.detector import Detector
    from ..model.anomaly import AnomalyScorer
    from ..model.event_clip import EventClip


# ------------------------------------------------------------------ shared
def add_video_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("video")
    g.add_argument("--fps", type=positive_float(MAX_FPS), help="frame rate for the timestamps (default: the container's)")
    g.add_argument("--resize", type=size_arg, metavar="WxH", help="resize frames after decoding (UCF-Crime protocol: 340x256)")
    g.add_argument("--max-frames", type=count_arg, help="stop after N frames")


def add_extraction_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("event frames (the paper's frame-difference extraction)")
    g.add_argument("--diff-threshold", type=int_range(0, 255), default=10, help="gray-level difference a pixel must exceed (default 10)")
    g.add_argument("--stack", type=int_range(2, MAX_STACK), default=16, help="frames per event frame (default 16)")
    g.add_argument("--clamp", type=float_range(0.0, MAX_CLAMP), default=10.0, help="cap on the per-pixel sum before normalising; 0 "
                                                                                   "= none (default 10)")
    g.add_argument("--on-value", type=int_range(1, 255), default=1, help="value of a changed pixel: 1 counts changes (default), "
                                                                         "255 reproduces the README snippet")


def extraction_from_args(args: argparse.Namespace) -> "ExtractionConfig":
    return ExtractionConfig(threshold=args.diff_threshold, stack=args.stack, clamp=args.clamp or None, on_value=args.on_value)


def open_video(path: str, args: argparse.Namespace) -> "VideoReader":
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
    with open_video(args.video, args) as reader:
        width, height = reader.size
        if args.mode == "events":
            sim = SimulatorConfig(contrast_threshold=args.contrast, noise_rate_hz=args.noise_hz, seed=args.seed)
            as_bag = Path(args.out).suffix.lower() != ".raw"
            with tempfile.TemporaryDirectory(prefix="video2events_") as tmp:
                raw = Path(tmp) / "events.raw" if as_bag else Path(args.out)
                n = write_video_evt3(video_frames(reader, args, "simulating"), SensorSize(width, height), raw, sim)
                if as_bag:  # the RAW file through the bag writer: EventPackets that replay into the node
                    write_event_bag(raw, args.out, BagWriteConfig(packet_ms=args.packet_ms, storage=args.storage))
            print(f"wrote {n} events ({width}x{height}, {reader.fps:g} fps video) to {args.out}"
                  + (f" as a bag of {args.packet_ms:g} ms EventPackets" if as_bag else ""))
            return 0
        written = _write_event_frames(reader, args)
    print(f"wrote {written} event frames to {args.out} (index: {Path(args.out) / 'frames.csv'})")
    return 0


def _write_event_frames(reader: "VideoReader", args: argparse.Namespace) -> int:
    """Mode (a): one PNG per stack plus frames.csv (stack, first_frame, n_frames, t_start_us, t_end_us, file)."""
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
def _anomaly_extraction(model: "EventClip", args: argparse.Namespace) -> "ExtractionConfig":
    """The extraction options, with the 10 crops (default: the model's input size) when --ten-crop."""
    config = extraction_from_args(args)
    if not args.ten_crop:
        return config
    crop = model.meta.input_size if args.crop_size is None else (args.crop_size.height, args.crop_size.width)
    return replace(config, ten_crop=crop)


def _reference_scorer(model: "EventClip", args: argparse.Namespace, config: "ExtractionConfig") -> "AnomalyScorer":
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.video_anomaly import embed_video
    from ..model.anomaly import ReferenceAnomalyScorer, ReferenceScorerConfig

    if len(args.reference) == 1 and Path(args.reference[0]).suffix == ".npz":
        scorer = ReferenceAnomalyScorer.load(args.reference[0], device=model.device)
        if args.threshold is not None:
            scorer.threshold = args.threshold
        return scorer
    threshold = {} if args.threshold is None else {"threshold": args.threshold}
    bank_config = ReferenceScorerConfig(k=args.k, capacity=args.capacity, **threshold)
    scorer = ReferenceAnomalyScorer(bank_config, device=model.device)
    for path in args.reference:
        with open_video(path, args) as reader:
            for _, emb in embed_video(model, video_frames(reader, args, f"reference {Path(path).name}"), config, args.batch_size):
                scorer.update(emb.reshape(-1, emb.shape[-1]))
    return checked_reference_bank(
        scorer, f"the reference videos gave {len(scorer)} segment view(s) of {args.stack} frames", "segments", args.save_reference
    )


def cmd_video_anomaly(args: argparse.Namespace) -> int:
    if args.annotations is None:
        if len(args.video) != 1 or args.videos_dir is not None:
            raise SystemExit("video-anomaly: give exactly one VIDEO (several, or --videos-dir, need --annotations)")
        annotated = None
    else:
        if not args.video and args.videos_dir is None:
            raise SystemExit("video-anomaly: --annotations needs VIDEO arguments or --videos-dir")
        if args.frame_scores:
            raise SystemExit("video-anomaly: --frame-scores is for one video without --annotations (windows.csv has the segment scores)")
        annotated = _annotated_videos(args)  # before the model loads: a missing annotation fails fast
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.detector import Detector
    from ..apps.heads import AnomalyHead

    model = model_from_args(args)
    config = _anomaly_extraction(model, args)
    scorer = _reference_scorer(model, args, config) if args.reference else text_scorer(model, args)
    detector = Detector.for_head(model, AnomalyHead(scorer))
    if annotated is not None:
        return _evaluate_ucf(detector, config, args, *annotated)
    return _score_one_video(detector, config, args)


def _score_one_video(detector: "Detector", config: "ExtractionConfig", args: argparse.Namespace) -> int:
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.video_anomaly import frame_scores, score_video

    video = args.video[0]
    segments = []
    with open_video(video, args) as reader:
        if not args.json:
            print(f"{'segment':>7} {'t_start_us':>12} {'t_end_us':>12} {'frames':>6}  score  (threshold {detector.threshold:g})")
        for seg in score_video(detector, video_frames(reader, args, "scoring"), config, args.batch_size):
            segments.append(seg)
            if args.json:
                print(
                    json.dumps(
                        {
                            "segment": seg.index,
                            "first_frame": seg.first_frame,
                            "n_frames": seg.n_frames,
                            "t_start_us": seg.t_start_us,
                            "t_end_us": seg.t_end_us,
                            "score": round(seg.score, 6),
                            "anomaly": seg.is_anomaly,
                        }
                    )
                )
            else:
                mark = "  ANOMALY" if seg.is_anomaly else ""
                print(f"{seg.index:>7} {seg.t_start_us:>12} {seg.t_end_us:>12} {seg.n_frames:>6}  {seg.score:.3f}{mark}")
    if not segments:
        raise ValueError(f"{video}: fewer than 2 frames, no segment to score")
    if args.frame_scores:
        n_frames = segments[-1].first_frame + segments[-1].n_frames
        with open(args.frame_scores, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "score"])
            w.writerows((i, f"{s:.6f}") for i, s in enumerate(frame_scores(segments, n_frames)))
    if not args.json:
        n_flagged = sum(s.is_anomaly for s in segments)
        print(f"{n_flagged} of {len(segments)} segments above the threshold")
    return 0


def _annotated_videos(args: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """(the VIDEO arguments, then the listed videos found in --videos-dir; problems), each with an annotation line."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.evaluation.ucf import find_annotated_videos, video_truth

    videos = [Path(v) for v in args.video]
    problems: list[str] = []
    if args.videos_dir is not None:
        found, missing = find_annotated_videos(args.annotations, args.videos_dir)
        videos += found
        if missing:
            problems.append(f"{len(missing)} annotated video(s) not in {args.videos_dir} (skipped): {', '.join(missing)}")
    if not videos:
        raise ValueError(f"none of the videos of {args.annotations} is in {args.videos_dir}")
    for video in videos:
        video_truth(args.annotations, video, fps=1.0)  # GroundTruthError without a line (the frame rate does not matter here)
    return videos, problems


def _evaluate_ucf(
    detector: "Detector",
    config: "ExtractionConfig",
    args: argparse.Namespace,
    videos: list[Path],
    problems: list[str],
) -> int:
    """UCF-Crime protocol: every annotated video scored, frame-level metrics over all frames, the evaluation report."""
    # lazy: torch and open_clip take seconds to import; --help and the event commands do without them
    from ..apps.evaluation.report import RunInfo, write_evaluation
    from ..apps.evaluation.ucf import ScoredVideo, evaluate_videos, video_truth
    from ..apps.video_anomaly import score_video

    started = time.perf_counter()
    scored: list[ScoredVideo] = []
    for i, video in enumerate(videos):
        try:
            with open_video(str(video), args) as reader:
                frames = video_frames(reader, args, f"[{i + 1}/{len(videos)}] {video.name}")
                segments = tuple(score_video(detector, frames, config, args.batch_size))
                fps, n_frames = reader.fps, reader.frames_read
        except VideoFileError as exc:
            problems.append(f"skipped: {exc}")
            print(f"warning: {problems[-1]}", file=sys.stderr)
            continue
        if not segments:
            problems.append(f"skipped: {video}: fewer than 2 frames, no segment to score")
            print(f"warning: {problems[-1]}", file=sys.stderr)
            continue
        scored.append(ScoredVideo(video, fps, n_frames, segments, video_truth(args.annotations, video, fps)))
    if not scored:
        raise ValueError("no video could be scored: " + "; ".join(problems))
    evaluation, summaries = evaluate_videos(scored, detector.threshold)
    elapsed = time.perf_counter() - started
    frames_total = sum(v.n_frames for v in scored)
    run = RunInfo(
        bag=str(args.videos_dir or videos[0]),
        topic="",
        msgtype="video",
        mode="anomaly",
        classes=[],
        truth=f"UCF-Crime temporal annotations {args.annotations}",
        source="offline",
        status="incomplete" if problems else "complete",
        problems=problems,
        counters={"videos": len(scored), "frames": frames_total, "segments": sum(len(v.segments) for v in scored)},
        timing={"wall_s": elapsed, "frames_per_s": frames_total / elapsed if elapsed > 0 else 0.0},
        settings={
            "scorer": "reference" if args.reference else "text",
            "anomaly_threshold": detector.threshold,
            "diff_threshold": config.threshold,
            "stack": config.stack,
            "clamp": config.clamp,
            "on_value": config.on_value,
            "ten_crop": None if config.ten_crop is None else list(config.ten_crop),
            "resize": None if args.resize is None else [args.resize.width, args.resize.height],
            "model": args.model,
            "checkpoint": args.checkpoint,
            "batch_size": args.batch_size,
        },
        videos=[s.as_dict() for s in summaries],
    )
    write_evaluation(args.out, run, evaluation)
    frame = evaluation.frame_anomaly
    assert frame is not None  # evaluate_videos scores the frames
    if args.json:
        print(json.dumps({"videos": run.videos, "metrics": evaluation.metrics_dict(), "problems": problems + evaluation.problems}))
    else:
        for s in summaries:
            print(
                f"{s.name}: {s.frames} frames, {s.anomalous_frames} anomalous, frame ROC-AUC "
                f"{'n/a' if s.roc_auc is None else f'{s.roc_auc:.3f}'}"
            )
        auc = "n/a" if frame.roc_auc is None else f"{frame.roc_auc:.3f}"
        ap = "n/a" if frame.average_precision is None else f"{frame.average_precision:.3f}"
        print(f"frame-level ROC-AUC {auc}, AP {ap} over {frame.samples} frames of {len(scored)} video(s); report in {args.out}")
    return 0


# ------------------------------------------------------------------ parser
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video2events", help="events from an ordinary video: the paper's event frames (PNG) or a simulated RAW EVT3 stream")
    p.add_argument("video", help="video file (anything this OpenCV build decodes)")
    p.add_argument(
        "out",
        help="frames mode: output directory (PNG per stack + frames.csv); events mode: a .raw file "
        "(RAW EVT3), or any other name for a rosbag2 bag of EventPackets",
    )
    p.add_argument(
        "--mode",
        choices=("frames", "events"),
        default="frames",
        help="frames: thresholded frame differences summed per stack (default); events: DVS simulation written as RAW EVT3",
    )
    p.add_argument("--packet-ms", type=ms_arg, default=1.0, help="events mode, bag output: sensor time per EventPacket (default 1)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="events mode, bag output: storage (default mcap)")
    add_video_args(p)
    add_extraction_args(p)
    p.add_argument("--frame-size", type=size_arg, metavar="WxH", help="frames mode: size of the event frames (default: the video's)")
    g = p.add_argument_group("events mode (DVS simulation)")
    g.add_argument("--contrast", type=positive_float(MAX_CONTRAST), default=0.2, help="log-intensity contrast threshold (default 0.2)")
    g.add_argument(
        "--noise-hz", type=float_range(0.0, MAX_NOISE_HZ), default=0.0, help="background noise events per pixel per second (default 0)"
    )
    g.add_argument("--seed", type=seed_arg, default=0, help="noise seed (default 0)")
    p.set_defaults(func=cmd_video2events)

    p = sub.add_parser(
        "video-anomaly",
        help="anomaly score in [0, 1] for each stack of frames of a video; with --annotations, the UCF-Crime evaluation of several videos",
    )
    p.add_argument("video", nargs="*", metavar="VIDEO", help="video file (several with --annotations)")
    p.add_argument(
        "--reference",
        nargs="+",
        metavar="NORMAL_VIDEO|BANK",
        help="normal behaviour: videos (their segments form the reference bank) or one saved bank .npz; without it, "
        "text prompts score P(abnormal)",
    )
    add_scorer_args(p, "segments")
    p.add_argument("--frame-scores", metavar="CSV", help="also write per-frame scores (each segment's score over its frames)")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per segment: segment, first_frame, n_frames, t_start_us, "
        "t_end_us, score, anomaly "
        "(with --annotations: one object with the videos and metrics)",
    )
    g = p.add_argument_group("UCF-Crime protocol")
    g.add_argument(
        "--annotations",
        metavar="FILE",
        help="temporal annotation file ('name class s1 e1 s2 e2', frames, -1 = none): "
        "frame-level ROC-AUC and AP over all listed videos, written as the evaluation report",
    )
    g.add_argument("--videos-dir", metavar="DIR", help="with --annotations: evaluate every listed video found in DIR")
    g.add_argument(
        "--out",
        default="video-anomaly-eval",
        help="with --annotations: directory for report.md, metrics.json, windows.csv, roc.png, pr.png (default %(default)s)",
    )
    g.add_argument("--ten-crop", action="store_true", help="score 10 views per segment (centre + 4 corners, each mirrored) and average")
    g.add_argument(
        "--crop-size",
        type=size_arg,
        metavar="WxH",
        help="with --ten-crop: crop size (default: the model input size; UCF-Crime: 224x224 of 340x256 frames)",
    )
    add_video_args(p)
    add_extraction_args(p)
    add_model_args(p)
    p.set_defaults(func=cmd_video_anomaly)
