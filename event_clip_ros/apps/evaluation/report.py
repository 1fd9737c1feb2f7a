"""An evaluation's files: windows.csv, metrics.json, report.md and the plots (PNG), written atomically.

``metrics.json`` holds the run (bag, topic, mode, status, problems, detector
counters, timing) and the metrics; ``windows.csv`` one row per window with its
truth and result; the plots are ``confusion_matrix.png`` (zero-shot) or
``roc.png`` and ``pr.png`` (anomaly; window and frame level on one chart).
Everything is written even when the run was cut short, the input was damaged or
the truth did not fit: the files then say so (``status``, ``problems``), the
report in its first lines.

Videos (``event-clip video-anomaly --annotations``) use the same files: a
window is a segment of a video, :attr:`RunInfo.videos` lists the videos with
their frame-level numbers (``metrics.json`` key ``videos``, a report table), and
``windows.csv`` gets a ``video`` column.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic_files import atomic_write_bytes, atomic_write_text
from ...plotting import pyplot
from .metrics import AnomalyMetrics, ClassificationMetrics
from .scoring import Evaluation

METRICS_FILE, REPORT_FILE, WINDOWS_FILE = "metrics.json", "report.md", "windows.csv"
CONFUSION_PNG, ROC_PNG, PR_PNG = "confusion_matrix.png", "roc.png", "pr.png"


@dataclass
class RunInfo:
    """How the results were produced: source, settings, outcome, counters, timing."""

    bag: str
    topic: str
    msgtype: str
    mode: str
    classes: list[str]
    truth: str  #: the ground-truth source in words
    source: str = "offline"  #: offline (Detector on the bag) or live (the node's outputs)
    #: complete | degraded (input damaged beyond the limit, see .health) | incomplete (bag damaged or node results
    #: missing) | interrupted
    status: str = "complete"
    problems: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: video evaluations: one dict per video (name, frames, anomalous_frames, segments, roc_auc); empty for a bag
    videos: list[dict[str, Any]] = field(default_factory=list)


def write_evaluation(out_dir: str | Path, run: RunInfo, evaluation: Evaluation) -> dict[str, Path]:
    """Write every file of the evaluation into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {**_run_dict(run, evaluation), "metrics": evaluation.metrics_dict()}
    paths = {
        WINDOWS_FILE: atomic_write_text(out / WINDOWS_FILE, windows_csv(evaluation, video_column=bool(run.videos))),
        METRICS_FILE: atomic_write_text(out / METRICS_FILE, json.dumps(_finite(metrics), indent=2) + "\n"),
    }
    if evaluation.classification is not None and evaluation.classification.windows:
        paths[CONFUSION_PNG] = atomic_write_bytes(out / CONFUSION_PNG, confusion_png(evaluation.classification))
    curves = [(name, m) for name, m in (("window", evaluation.window_anomaly), ("frame", evaluation.frame_anomaly))
              if m is not None]
    if any(m.roc is not None for _, m in curves):
        paths[ROC_PNG] = atomic_write_bytes(out / ROC_PNG, curve_png(curves, "roc"))
    if any(m.pr is not None for _, m in curves):
        paths[PR_PNG] = atomic_write_bytes(out / PR_PNG, curve_png(curves, "pr"))
    paths[REPORT_FILE] = atomic_write_text(out / REPORT_FILE, markdown(run, evaluation, sorted(paths)))
    return paths


def _run_dict(run: RunInfo, evaluation: Evaluation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bag": run.bag, "topic": run.topic, "msgtype": run.msgtype, "mode": run.mode, "source": run.source,
        "status": run.status, "problems": run.problems + evaluation.problems, "truth": run.truth,
        "classes": run.classes, "settings": run.settings, "counters": run.counters, "timing": run.timing,
    }
    if run.videos:
        out["videos"] = run.videos
    return out


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def windows_csv(evaluation: Evaluation, video_column: bool = False) -> str:
    """One row per window: where it is, its truth, what the detector said, whether that was right.

    ``video_column``: a first column ``video`` with each window's ``frame_id`` (video segments).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = (["video"] if video_column else []) + ["index", "t_start_us", "t_end_us", "stamp_ns", "n_events", "truth"]
    if evaluation.mode == "zero_shot":
        writer.writerow(head + ["top1", "top1_score", "correct", "labels"])
    else:
        writer.writerow(head + ["anomaly_score", "is_anomaly", "correct"])
    for w in evaluation.windows:
        r = w.result
        row = ([r.frame_id] if video_column else []) + [r.index, r.t_start_us, r.t_end_us, r.stamp_ns, r.n_events, w.truth or ""]
        correct = "" if w.correct is None else int(w.correct)
        if evaluation.mode == "zero_shot":
            top = r.labels[0] if r.labels else None
            row += [top.label if top else "", f"{top.score:.6f}" if top else "", correct,
                    ";".join(f"{s.label}:{s.score:.6f}" for s in r.labels)]
        else:
            row += [f"{r.anomaly_score:.6f}", int(bool(r.is_anomaly)), correct]
        writer.writerow(row)
    return buf.getvalue()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    pyplot().close(fig)
    return buf.getvalue()


def confusion_png(m: ClassificationMetrics) -> bytes:
    """Confusion matrix, rows normalised to the share of each true class, counts written in the cells."""
    plt = pyplot()

    counts = m.confusion
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = 2.5 + 0.45 * max(len(m.rows), len(m.columns))
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(m.columns)), m.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(m.rows)), m.rows, fontsize=7)
    ax.set_xlabel("top-1 prediction")
    ax.set_ylabel("true class")
    top1 = "n/a" if m.top1 is None else f"{100 * m.top1:.1f}%"
    ax.set_title(f"{m.windows} windows, top-1 {top1}", fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _png(fig)


def curve_png(curves: list[tuple[str, AnomalyMetrics]], kind: str) -> bytes:
    """ROC (kind "roc") or precision-recall ("pr") curves of the window- and frame-level scores."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4), layout="constrained")
    for name, m in curves:
        curve = m.roc if kind == "roc" else m.pr
        if curve is None:
            continue
        area = m.roc_auc if kind == "roc" else m.average_precision
        label = f"{name} level ({'AUC' if kind == 'roc' else 'AP'} {area:.3f}, n={m.samples})"
        ax.plot(curve.x, curve.y, drawstyle="default" if kind == "roc" else "steps-post", label=label)
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
    else:
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
    ax.set_title("anomaly ROC" if kind == "roc" else "anomaly precision-recall", fontsize=9)
    return _png(fig)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


#: What a status means for the numbers, after the status line of the report.
_STATUS_NOTES = {
    "degraded": ": the input was damaged (below); the numbers describe what survived",
    "incomplete": ": part of the input or of the results is missing (below)",
    "interrupted": ": the run was stopped; the numbers cover the part evaluated",
}


def markdown(run: RunInfo, evaluation: Evaluation, files: list[str]) -> str:
    """The report: what was evaluated, the headline numbers, per-class table, problems, timing, files."""
    problems = run.problems + evaluation.problems
    source = (f"- videos: {len(run.videos)} from `{run.bag}`" if run.videos
              else f"- bag: `{run.bag}`, topic `{run.topic}` ({run.msgtype})")
    lines = [f"# Evaluation: {Path(run.bag).name}", "", f"**Status: {run.status}**" + _STATUS_NOTES.get(run.status, "")]
    lines += [f"- {p}" for p in problems] + [""]
    lines += [
        source,
        f"- detector: {run.mode}, {run.source} results",
        f"- ground truth: {run.truth}",
        f"- windows: {len(evaluation.windows)} with results, {evaluation.scored} with ground truth",
        "",
    ]
    c = evaluation.classification
    if c is not None:
        lines += ["## Zero-shot classification", "", f"- top-1 accuracy: {_pct(c.top1)}",
                  f"- top-5 accuracy: {_pct(c.top5)}", "", "| class | windows | accuracy |", "|---|---:|---:|"]
        lines += [f"| {name} | {c.support[name]} | {_pct(c.per_class[name])} |" for name in c.per_class]
        lines.append("")
    for title, m in (("window", evaluation.window_anomaly), ("frame", evaluation.frame_anomaly)):
        if m is not None:
            lines += [f"## Anomaly, {title} level", "",
                      f"- {m.samples} {title}s, {m.positives} anomalous",
                      f"- ROC-AUC {_num(m.roc_auc)}, average precision {_num(m.average_precision)}, "
                      f"decision accuracy {_pct(m.accuracy)}", ""]
    if run.videos:
        lines += ["## Videos", "", "| video | frames | anomalous frames | segments | frame ROC-AUC |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {v['name']} | {v['frames']} | {v['anomalous_frames']} | {v['segments']} | {_num(v['roc_auc'])} |"
                  for v in run.videos]
        lines.append("")
    if run.counters:
        lines += ["## Counters", "", ", ".join(f"{k} {v}" for k, v in run.counters.items()), ""]
    if run.timing:
        lines += ["## Timing", "", ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in run.timing.items()), ""]
    lines += ["## Files", ""] + [f"- [{name}]({name})" for name in files + [REPORT_FILE]] + [""]
    return "\n".join(lines)
