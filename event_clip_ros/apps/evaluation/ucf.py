"""The UCF-Crime evaluation protocol on video segment scores: frame-level ROC-AUC and AP.

The temporal annotation file (``Temporal_Anomaly_Annotation_for_Testing_Videos.txt``)
has one line per test video, ``name class s1 e1 s2 e2`` in frames (0-based,
inclusive; -1 = no interval), read by
:func:`~event_clip_ros.apps.evaluation.truth.load_ucf_annotations`. Every frame
of a video takes its segment's score (:func:`.anomaly.frame_scores`), the frames
of all evaluated videos are concatenated, and one ROC-AUC / AP is computed over
them, as the protocol does. Segments are also scored as the bag evaluation's
windows (truth: the label covering most of the segment), so the report files
(:mod:`event_clip_ros.apps.evaluation.report`) are the same as for a bag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..detector import DetectionResult
from ..heads import anomaly_labels
from ..video_anomaly import SegmentScore, frame_scores
from .metrics import anomaly_metrics
from .scoring import Evaluation, Scored
from .truth import (
    ANOMALOUS,
    NORMAL,
    GroundTruthError,
    TimeRanges,
    anomaly_truth,
    load_ucf_annotations,
)


def annotated_names(annotations: str | Path) -> list[str]:
    """The video names of an annotation file, in file order (first field of each non-empty line)."""
    path = Path(annotations)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"cannot read annotations {path}: {exc}") from exc
    return [line.split()[0] for line in lines if line.strip()]


def find_annotated_videos(annotations: str | Path, videos_dir: str | Path) -> tuple[list[Path], list[str]]:
    """(videos of ``videos_dir`` the annotation file lists, in its order; listed names not found there).

    A name matches a file of that exact name, else the one file whose stem is
    the name's stem (``Arson011_x264.mp4`` finds ``Arson011_x264.avi``).
    """
    folder = Path(videos_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such directory")
    by_stem: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file():
            by_stem.setdefault(f.stem, []).append(f)
    found, missing = [], []
    for name in annotated_names(annotations):
        exact = folder / name
        candidates = [exact] if exact.is_file() else by_stem.get(Path(name).stem, [])
        if len(candidates) == 1:
            found.append(candidates[0])
        else:
            missing.append(name)
    return found, missing


def video_truth(annotations: str | Path, video: str | Path, fps: float) -> TimeRanges:
    """The annotation of ``video`` as sensor-clock ranges, frame 0 at time 0 (GroundTruthError without a line)."""
    return load_ucf_annotations(annotations, str(video), fps, origin_ns=0)


def frame_truth(truth: TimeRanges, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) bool: frame ``i`` (at ``round(i * 1e9 / fps)`` ns) lies in an anomalous interval."""
    return np.array([bool(anomaly_truth(truth.label_at(round(i * 1e9 / fps), "sensor"))) for i in range(n_frames)], bool)


@dataclass(frozen=True)
class ScoredVideo:
    """The segment scores of one video and its annotation."""

    path: Path
    fps: float  #: the frame rate of the frame times (and of the annotation's frame numbers)
    n_frames: int  #: frames decoded
    segments: tuple[SegmentScore, ...]
    truth: TimeRanges

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class VideoSummary:
    """Frame-level numbers of one video (per-video lines of the report)."""

    name: str
    frames: int
    anomalous_frames: int
    segments: int
    roc_auc: float | None  #: None for a video with only normal (or only anomalous) frames

    def as_dict(self) -> dict:
        return {"name": self.name, "frames": self.frames, "anomalous_frames": self.anomalous_frames,
                "segments": self.segments, "roc_auc": self.roc_auc}


def _segment_result(video: ScoredVideo, seg: SegmentScore) -> DetectionResult:
    """A segment as a detector window: half-open frame times [first, first + n), frame_id the video's name."""
    t_end_us = round((seg.first_frame + seg.n_frames) * 1e6 / video.fps)
    return DetectionResult(index=seg.index, t_start_us=seg.t_start_us, t_end_us=t_end_us, n_events=0,
                           stamp_ns=t_end_us * 1_000, frame_id=video.name, labels=anomaly_labels(seg.score, seg.is_anomaly),
                           anomaly_score=seg.score, is_anomaly=seg.is_anomaly)


def evaluate_videos(videos: Sequence[ScoredVideo], threshold: float) -> tuple[Evaluation, list[VideoSummary]]:
    """Segment (window) and frame-level metrics over all ``videos``: segments decided as the detector did, frames
    ``score > threshold`` (the detector's threshold)."""
    if not videos:
        raise ValueError("no scored videos to evaluate")
    windows: list[Scored] = []
    all_truth, all_scores = [], []
    summaries = []
    for video in videos:
        per_frame = frame_scores(video.segments, video.n_frames)
        truth = frame_truth(video.truth, video.fps, video.n_frames)
        all_truth.append(truth)
        all_scores.append(per_frame)
        own = anomaly_metrics(truth, per_frame, per_frame > threshold)
        summaries.append(VideoSummary(video.name, video.n_frames, own.positives, len(video.segments), own.roc_auc))
        for seg in video.segments:
            result = _segment_result(video, seg)
            is_anomalous = anomaly_truth(video.truth.label_of(result))
            if is_anomalous is None:
                windows.append(Scored(result, None, None))
            else:
                windows.append(Scored(result, ANOMALOUS if is_anomalous else NORMAL, result.is_anomaly == is_anomalous))
    evaluation = Evaluation("anomaly", windows)
    with_truth = [w for w in windows if w.truth is not None]
    evaluation.window_anomaly = anomaly_metrics(
        np.array([w.truth == ANOMALOUS for w in with_truth], bool),
        np.array([w.result.anomaly_score for w in with_truth], np.float64),
        np.array([w.result.is_anomaly for w in with_truth], bool),
    )
    y, scores = np.concatenate(all_truth), np.concatenate(all_scores).astype(np.float64)
    evaluation.frame_anomaly = anomaly_metrics(y, scores, scores > threshold)
    if not y.any() or y.all():
        evaluation.problems.append(f"the {y.size} frames are all {'anomalous' if y.any() else 'normal'}: "
                                   "frame-level ROC-AUC is undefined")
    return evaluation, summaries
