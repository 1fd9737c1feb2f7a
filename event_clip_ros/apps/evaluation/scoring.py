"""Detector results against ground truth: the numbers of an evaluation.

Each window with a result takes its true label from the :class:`GroundTruth`.
Zero-shot: the true label names a class either exactly or by the class name's
last word (``2`` names ``digit 2``, as the glyph scene's ground truth does),
when exactly one class ends so; top-1/top-5, per-class accuracy, confusion.
Anomaly: P(anomaly) against anomalous/normal truth per window, and per frame:
instants ``frame_step_ns`` apart on the truth's clock, each scored by the latest
window that covers it (UCF-Crime's frame-level protocol; 30 frames/s by default).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..detector import DetectionResult
from .metrics import AnomalyMetrics, ClassificationMetrics, anomaly_metrics, classification_metrics
from .truth import ANOMALOUS, NORMAL, GroundTruth, TimeRanges, anomaly_truth, window_span_ns

#: Frame-level anomaly metrics sample the timeline at 30 frames per second (UCF-Crime's videos).
DEFAULT_FRAME_STEP_NS = 1_000_000_000 // 30


def resolve_label(label: str, classes: Sequence[str]) -> str:
    """The class a true label names: itself, or the one class whose last word it is; else the label unchanged."""
    if label in classes:
        return label
    matches = [c for c in classes if c.split()[-1] == label]
    return matches[0] if len(matches) == 1 else label


@dataclass(frozen=True)
class Scored:
    """One window's result with its truth (None: the truth says nothing about it)."""

    result: DetectionResult
    truth: str | None
    correct: bool | None  #: top-1 hit (zero-shot) or right decision (anomaly); None without truth


@dataclass
class Evaluation:
    mode: str
    windows: list[Scored]
    classification: ClassificationMetrics | None = None
    window_anomaly: AnomalyMetrics | None = None
    frame_anomaly: AnomalyMetrics | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def scored(self) -> int:
        return sum(w.truth is not None for w in self.windows)

    def metrics_dict(self) -> dict:
        out: dict = {"windows": len(self.windows), "windows_with_truth": self.scored,
                     "windows_without_truth": len(self.windows) - self.scored}
        if self.classification is not None:
            out["classification"] = self.classification.as_dict()
        if self.window_anomaly is not None:
            out["anomaly_window"] = self.window_anomaly.as_dict()
        if self.frame_anomaly is not None:
            out["anomaly_frame"] = self.frame_anomaly.as_dict()
        return out


def score_results(
    results: Sequence[DetectionResult],
    truth: GroundTruth | None,
    mode: str,
    classes: Sequence[str],
    top_k: int,
    frame_step_ns: int = DEFAULT_FRAME_STEP_NS,
) -> Evaluation:
    """Match every result with its truth and compute the mode's metrics (problems listed, never raised)."""
    if truth is None:
        return Evaluation(mode, [Scored(r, None, None) for r in results], problems=["no ground truth given"])
    if mode == "zero_shot":
        return _score_zero_shot(results, truth, classes, top_k)
    return _score_anomaly(results, truth, frame_step_ns)


def _overlap_problem(results: Sequence[DetectionResult], truth: GroundTruth) -> str:
    text = "the ground truth does not overlap the recording's windows"
    if isinstance(truth, TimeRanges) and truth.span_ns is not None and results:
        spans = [window_span_ns(r, truth.clock) for r in results]
        lo, hi = truth.span_ns
        text += (f": truth spans [{lo}, {hi}) ns, windows [{min(s for s, _ in spans)}, {max(e for _, e in spans)}) ns "
                 f"on the {truth.clock} clock")
    return text


def _score_zero_shot(results: Sequence[DetectionResult], truth: GroundTruth, classes: Sequence[str], top_k: int) -> Evaluation:
    windows = []
    for r in results:
        label = truth.label_of(r)
        label = None if label is None else resolve_label(label, classes)
        hit = None if label is None else bool(r.labels) and r.labels[0].label == label
        windows.append(Scored(r, label, hit))
    ev = Evaluation("zero_shot", windows)
    with_truth = [w for w in windows if w.truth is not None]
    if results and not with_truth:
        ev.problems.append(_overlap_problem(results, truth))
    unknown = Counter(w.truth for w in with_truth if w.truth not in classes)
    if unknown:
        ev.problems.append("true labels that are not classes (counted as misses): "
                           + ", ".join(f"{label} ({n})" for label, n in sorted(unknown.items())))
    ev.classification = classification_metrics(
        classes, [w.truth for w in with_truth if w.truth is not None], [[s.label for s in w.result.labels] for w in with_truth], top_k)
    return ev


def _score_anomaly(results: Sequence[DetectionResult], truth: GroundTruth, frame_step_ns: int) -> Evaluation:
    windows = []
    for r in results:
        is_anomalous = anomaly_truth(truth.label_of(r))
        windows.append(Scored(r, None if is_anomalous is None else (ANOMALOUS if is_anomalous else NORMAL),
                              None if is_anomalous is None else bool(r.is_anomaly) == is_anomalous))
    ev = Evaluation("anomaly", windows)
    with_truth = [w for w in windows if w.truth is not None]
    if results and not with_truth:
        ev.problems.append(_overlap_problem(results, truth))
    ev.window_anomaly = anomaly_metrics(
        np.array([w.truth == ANOMALOUS for w in with_truth], dtype=bool),
        np.array([w.result.anomaly_score for w in with_truth], dtype=np.float64),
        np.array([bool(w.result.is_anomaly) for w in with_truth], dtype=bool),
    )
    if isinstance(truth, TimeRanges) and results:
        ev.frame_anomaly = _frame_level(results, truth, frame_step_ns)
    return ev


def _frame_level(results: Sequence[DetectionResult], truth: TimeRanges, frame_step_ns: int) -> AnomalyMetrics:
    """Frames every ``frame_step_ns`` over the windows' span, each scored by the latest window covering it."""
    if frame_step_ns <= 0:
        raise ValueError(f"frame_step_ns must be positive, got {frame_step_ns}")
    spans = np.array([window_span_ns(r, truth.clock) for r in results], dtype=np.int64)
    order = np.argsort(spans[:, 0], kind="stable")
    starts, ends = spans[order, 0], spans[order, 1]
    scores = np.array([results[i].anomaly_score for i in order], dtype=np.float64)
    decided = np.array([bool(results[i].is_anomaly) for i in order], dtype=bool)
    frames = np.arange(starts[0], ends.max(), frame_step_ns, dtype=np.int64)
    which = np.searchsorted(starts, frames, side="right") - 1
    covered = ends[which] > frames
    labels = [anomaly_truth(truth.label_at(int(t), truth.clock)) for t in frames[covered]]
    keep = np.array([label is not None for label in labels], dtype=bool)
    picked = which[covered][keep]
    y = np.array([label for label in labels if label is not None], dtype=bool)
    return anomaly_metrics(y, scores[picked], decided[picked])
