"""Classification and anomaly metrics in numpy (the definitions scikit-learn uses, without the dependency).

Classification: top-k accuracy, per-class accuracy (recall of each true class)
and a confusion matrix (rows: true class, columns: top-1 prediction).
Anomaly: ROC curve and its area (trapezoids), precision-recall curve and
average precision ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score
thresholds (no interpolation), as ``sklearn.metrics.average_precision_score``.
Undefined values (no positives or no negatives) are None, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Column of the confusion matrix for windows with no reported label (all below score_threshold).
NO_PREDICTION = "(none)"
#: Row of the confusion matrix for true labels that are not among the classes.
OTHER_TRUTH = "(not a class)"


@dataclass(frozen=True)
class Curve:
    """x, y and the score thresholds of a ROC (fpr, tpr) or PR (recall, precision) curve."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray


def _ranked_counts(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, false positives, threshold) at each distinct score, highest score first."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of one length, got {y.shape} and {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.zeros(0, dtype=np.int64)
    tps = np.cumsum(y)[last_of_each]
    fps = last_of_each + 1 - tps
    return tps, fps, s[last_of_each]


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> Curve | None:
    """False and true positive rates at every threshold (starting at (0, 0)); None without both classes."""
    tps, fps, thresholds = _ranked_counts(y_true, scores)
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        return None
    return Curve(np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, thresholds])


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half); None without both classes."""
    curve = roc_curve(y_true, scores)
    return None if curve is None else _roc_area(curve)


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> Curve | None:
    """Recall and precision at every threshold, highest threshold first; None without positives."""
    tps, fps, thresholds = _ranked_counts(y_true, scores)
    if tps.size == 0 or tps[-1] == 0:
        return None
    return Curve(tps / tps[-1], tps / (tps + fps), thresholds)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision (step-wise area under the PR curve); None without positives."""
    curve = pr_curve(y_true, scores)
    return None if curve is None else _pr_area(curve)


def _roc_area(curve: Curve) -> float:
    return float(np.trapezoid(curve.y, curve.x))


def _pr_area(curve: Curve) -> float:
    return float(np.sum(np.diff(np.r_[0.0, curve.x]) * curve.y))


@dataclass(frozen=True)
class ClassificationMetrics:
    windows: int  #: windows with a true label
    top1: float | None  #: None when no window has a true label
    top5: float | None  #: None when fewer than 5 labels were reported per window (top_k < 5) or no window
    per_class: dict[str, float | None]  #: accuracy of the windows of each true class (None: no window of it)
    support: dict[str, int]  #: windows per true class
    rows: tuple[str, ...]  #: confusion matrix rows: the classes, then OTHER_TRUTH if any truth is not a class
    columns: tuple[str, ...]  #: the classes, then NO_PREDICTION if any window had no label
    confusion: np.ndarray  #: (rows, columns) window counts

    def as_dict(self) -> dict:
        return {
            "windows": self.windows, "top1": self.top1, "top5": self.top5, "per_class": self.per_class,
            "support": self.support,
            "confusion": {"rows": list(self.rows), "columns": list(self.columns), "counts": self.confusion.tolist()},
        }


def classification_metrics(
    classes: Sequence[str], truth: Sequence[str], ranked: Sequence[Sequence[str]], top_k: int
) -> ClassificationMetrics:
    """Metrics of windows with true labels ``truth`` and predicted labels ``ranked`` (best first, at most top_k).

    A true label outside ``classes`` counts as a miss (the detector cannot name it)
    and gets the confusion row OTHER_TRUTH.
    """
    if len(truth) != len(ranked):
        raise ValueError(f"{len(truth)} true labels for {len(ranked)} predictions")
    classes = tuple(classes)
    index = {c: i for i, c in enumerate(classes)}
    other = any(t not in index for t in truth)
    none = any(not r for r in ranked)
    rows = classes + ((OTHER_TRUTH,) if other else ())
    columns = classes + ((NO_PREDICTION,) if none else ())
    confusion = np.zeros((len(rows), len(columns)), dtype=np.int64)
    hits1 = np.array([bool(r) and r[0] == t for t, r in zip(truth, ranked)], dtype=bool)
    hits5 = np.array([t in list(r)[:5] for t, r in zip(truth, ranked)], dtype=bool)
    for t, r in zip(truth, ranked):
        confusion[index.get(t, len(classes)), index[r[0]] if r else len(classes)] += 1
    truth_arr = np.asarray(truth, dtype=object)
    support = {c: int(np.count_nonzero(truth_arr == c)) for c in rows[: len(classes)]}
    per_class = {c: (float(hits1[truth_arr == c].mean()) if support[c] else None) for c in classes}
    n = len(truth)
    return ClassificationMetrics(
        windows=n,
        top1=float(hits1.mean()) if n else None,
        top5=float(hits5.mean()) if n and top_k >= 5 else None,
        per_class=per_class,
        support=support,
        rows=rows,
        columns=columns,
        confusion=confusion,
    )


@dataclass(frozen=True)
class AnomalyMetrics:
    samples: int  #: windows (or frames) with a truth
    positives: int  #: anomalous ones
    roc_auc: float | None
    average_precision: float | None
    accuracy: float | None  #: of the detector's decisions (score > threshold)
    roc: Curve | None
    pr: Curve | None

    def as_dict(self) -> dict:
        return {"samples": self.samples, "positives": self.positives, "roc_auc": self.roc_auc,
                "average_precision": self.average_precision, "accuracy": self.accuracy}


def anomaly_metrics(y_true: np.ndarray, scores: np.ndarray, decisions: np.ndarray) -> AnomalyMetrics:
    """ROC-AUC, AP and decision accuracy of anomaly scores against boolean truth."""
    y = np.asarray(y_true, dtype=bool)
    roc = roc_curve(y, scores)
    pr = pr_curve(y, scores)
    return AnomalyMetrics(
        samples=int(y.size),
        positives=int(np.count_nonzero(y)),
        roc_auc=None if roc is None else _roc_area(roc),
        average_precision=None if pr is None else _pr_area(pr),
        accuracy=float(np.mean(np.asarray(decisions, dtype=bool) == y)) if y.size else None,
        roc=roc,
        pr=pr,
    )
