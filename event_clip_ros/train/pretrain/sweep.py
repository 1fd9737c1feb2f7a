"""A sweep of one pre-training config over seeds and class splits: the report's table as mean and spread.

``training/pretrain.py --preset toy --seeds 3 --splits 2 [--ablations]`` runs :func:`sweep`: the config once
per (class split, seed), each a complete :func:`~.run.run` in its own folder (with ``ablations``: the full
loss and the paper's Figure 4 ablations, L_zs off and L_kl off, on the same data), then aggregates the rows
of their reports.

Seeds: seed ``i`` (0, 1, ...) sets ``runtime.seed`` to the config's + i (weights, data order, training
windows) and ``data.seed`` to the config's + 3 i (the training, validation and test instances of synthetic
data; the test set uses ``data.seed + 2``, so with a stride of 3 no run's test instances are another run's
training instances), so the spread covers the test sample as well as the training randomness.

Class splits: split 0 is the config's ``data.split``; split ``j`` >= 1 holds out as many classes of each
class group (digits, letters, shapes, others) as split 0 does, drawn with a fixed generator among the
group's classes no earlier split held out (while there are enough; then among the others). The splits are
written to ``splits/split<j>.yaml``.

Teacher (toy preset): ``teacher="shared"`` trains it once, in the first run, and every other run uses
that checkpoint (:func:`~.teacher.use_teacher`): the stand-in for the one pretrained CLIP all of the
paper's runs start from (with ``teacher.classes: all`` it does not depend on the split). ``"per-seed"``
trains one per seed (initialised with that seed's ``runtime.seed``), so the spread includes the teacher's.

Output folder:

``runs/split<j>-seed<i>/``      one pre-training run each (its own report, checkpoints, metrics)
``splits/split<j>.yaml``        the class splits
``<name>_sweep.json``           the setting, the table (per configuration: n, mean, std, min, max of each
                                metric) and the per-run rows
``<name>_sweep_runs.csv``       the per-run rows (one per run and report row)
``<name>_sweep.md`` / ``.png``  the table in Markdown; the chart (mean, std bars, each run as a dot)

Every file is written atomically. With ``resume="auto"`` a run whose report says it completed is kept as
is and an interrupted one continues from its newest checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from tqdm.auto import tqdm

from ...atomic_files import atomic_write_bytes, atomic_write_text
from ...plotting import pyplot
from ...sim.glyphs import CLASS_GROUPS, resolve_classes
from ..data import ClassSplit
from .config import ConfigError, PretrainConfig
from .evaluation import HEADLINE_METRIC, chance_metrics
from .report import json_finite
from .run import RunOptions, run
from .teacher import TEACHER_FILE, teacher_record

log = logging.getLogger(__name__)

#: data.seed stride between seeds (module docstring).
DATA_SEED_STRIDE = 3
#: Seed of the generator that draws class splits 1, 2, ...
SPLIT_SEED = 0x5B1175
#: Metrics the table aggregates: (key, Markdown column title); the first is the headline.
TABLE_METRICS: tuple[tuple[str, str], ...] = (
    ("unseen_vs_all_top1", "**held-out top-1 among all {count} classes** (headline)"),
    ("unseen_vs_unseen_top1", "held-out top-1, {unseen}-way among held-out (secondary)"),
    ("seen_vs_all_top1", "seen top-1 among all {count}"),
)
#: Per-run row columns (CSV order).
RUN_FIELDS: tuple[str, ...] = (
    "split", "held_out", "seed", "runtime_seed", "data_seed", "config", "checkpoint", "selected", "step",
    "unseen_vs_all_top1", "unseen_vs_all_top5", "unseen_vs_unseen_top1", "unseen_vs_unseen_top5", "seen_vs_all_top1",
    "run_wall_s", "threads", "teacher", "run_dir",
)
_UPPER, _BEFORE = "f_I on the images (upper bound)", "f_E before event pre-training"
FULL_LOSS = "full loss"  #: the report's label of the run without ablation (run.py)


@dataclass(frozen=True)
class SweepOptions:
    """How to sweep a config (see the module docstring)."""

    out_dir: Path
    seeds: int = 3
    splits: int = 2
    ablations: bool = False
    teacher: Literal["shared", "per-seed"] = "shared"
    resume: str | None = None  #: "auto": keep completed runs, continue interrupted ones
    max_steps: int | None = None  #: per run: stop event pre-training after this many optimiser steps
    progress: bool = True  #: a progress bar over the runs (the runs' own bars are off unless the config turns them on)

    def __post_init__(self) -> None:
        if self.seeds < 1 or self.splits < 1:
            raise ConfigError("a sweep needs --seeds >= 1 and --splits >= 1")
        if self.teacher not in ("shared", "per-seed"):
            raise ConfigError(f"teacher must be 'shared' or 'per-seed', got {self.teacher!r}")


# ------------------------------------------------------------------------------------ splits and seeds
def draw_splits(classes: Sequence[str], base_unseen: Sequence[str], count: int, seed: int = SPLIT_SEED) -> list[list[str]]:
    """``count`` held-out class lists: ``base_unseen`` first, then draws with as many classes of each group
    (digits, letters, shapes, others) as ``base_unseen``, preferring classes no earlier split held out."""
    classes = list(classes)
    unknown = sorted(set(base_unseen) - set(classes))
    if unknown:
        raise ConfigError(f"held-out classes {unknown} are not among the data's classes")
    groups: dict[str, list[str]] = {}
    for name in classes:
        group = next((g for g in ("digits", "letters", "shapes") if name in CLASS_GROUPS[g]), "others")
        groups.setdefault(group, []).append(name)
    wanted = {g: sum(n in members for n in base_unseen) for g, members in groups.items()}
    rng = np.random.default_rng(seed)
    splits = [list(base_unseen)]
    used = set(base_unseen)
    for _ in range(1, count):
        picked: set[str] = set()
        for g, members in groups.items():
            need = wanted[g]
            fresh = [n for n in members if n not in used]
            take = list(rng.choice(fresh, size=min(need, len(fresh)), replace=False)) if need and fresh else []
            if len(take) < need:
                rest = [n for n in members if n not in take]
                take += list(rng.choice(rest, size=need - len(take), replace=False))
            picked.update(str(n) for n in take)
        split = [n for n in classes if n in picked]  # in the data's class order
        splits.append(split)
        used.update(split)
    return splits


def seed_config(cfg: PretrainConfig, index: int) -> PretrainConfig:
    """``cfg`` for seed ``index``: runtime.seed + index, data.seed + DATA_SEED_STRIDE * index."""
    return dataclasses.replace(
        cfg, runtime=dataclasses.replace(cfg.runtime, seed=cfg.runtime.seed + index),
        data=dataclasses.replace(cfg.data, seed=cfg.data.seed + DATA_SEED_STRIDE * index))


def _split_file(folder: Path, index: int, unseen: Sequence[str], base: str) -> Path:
    path = folder / f"split{index}.yaml"
    origin = f"the config's split {base}" if index == 0 else f"drawn by the sweep (generator seed {SPLIT_SEED:#x})"
    atomic_write_text(path, f"# class split {index} of a pre-training sweep: {origin}\n"
                      + yaml.safe_dump({"unseen": list(unseen)}, default_flow_style=True, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------ the sweep
def sweep(cfg: PretrainConfig, options: SweepOptions) -> dict[str, Any]:
    """Run ``cfg`` over ``options.splits`` class splits x ``options.seeds`` seeds; returns the sweep summary (the
    JSON file's content) after writing every output (module docstring)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("a sweep runs in one process (launch it without torchrun)")
    if cfg.data.split is None:
        raise ConfigError("a sweep over class splits needs data.split (the held-out classes of split 0)")
    started = time.monotonic()
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    classes = list(resolve_classes(cfg.data.classes if isinstance(cfg.data.classes, str) else tuple(cfg.data.classes)))
    base_seen, base_unseen = ClassSplit.from_yaml(cfg.data.split).indices(classes)
    if ClassSplit.from_yaml(cfg.data.split).seen is not None and options.splits > 1:
        raise ConfigError(f"{cfg.data.split} lists its seen classes: drawn splits hold out classes, the rest are seen")
    splits = draw_splits(classes, [classes[i] for i in base_unseen], options.splits)
    split_files = [_split_file(out / "splits", j, unseen, str(cfg.data.split)) for j, unseen in enumerate(splits)]
    base = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, progress=False)) \
        if options.progress and cfg.runtime.progress else cfg

    plan = [(j, i) for j in range(options.splits) for i in range(options.seeds)]
    teachers: dict[str, Path] = {}
    runs: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    bar = _bar(len(plan), options.progress)
    try:
        for j, i in plan:
            run_cfg = seed_config(base, i)
            run_cfg = dataclasses.replace(run_cfg, data=dataclasses.replace(run_cfg.data, split=str(split_files[j].resolve())))
            run_dir = out / "runs" / f"split{j}-seed{i}"
            bar.set_postfix_str(f"split {j} seed {i}")
            key = _teacher_key(run_cfg, options.teacher)
            shared = teachers.get(key) if key is not None else None
            report = _completed_report(run_dir, cfg.name) if options.resume == "auto" else None
            if report is None:
                report = run(run_cfg, RunOptions(out_dir=run_dir, resume=options.resume, max_steps=options.max_steps,
                                                 ablations=options.ablations, teacher=shared))
                assert report is not None  # a sweep runs in one process, whose report this is
            if key is not None and key not in teachers:
                teachers[key] = Path(report.get("teacher_file") or run_dir / "teacher" / TEACHER_FILE)
            reports.append(report)
            rows = run_rows(report, split=j, seed=i, runtime_seed=run_cfg.runtime.seed, data_seed=run_cfg.data.seed,
                            run_dir=run_dir.relative_to(out))
            for row in rows:  # paths inside the sweep folder relative to it
                row["teacher"] = row["teacher"] and _relative(Path(row["teacher"]), out)
            runs.extend(rows)
            headline = next((r[HEADLINE_METRIC] for r in rows if r["config"] == FULL_LOSS and r["selected"]), None)
            log.info("split %d seed %d: held-out among all %s (wall %.0f s)", j, i,
                     "n/a" if headline is None else f"{100 * headline:.1f}%", report.get("wall_s", float("nan")))
            bar.update(1)
            if headline is not None:
                bar.set_postfix_str(f"split {j} seed {i}: full loss {100 * headline:.1f}% among all")
    finally:
        bar.close()

    summary = {
        "name": cfg.name,
        "headline": HEADLINE_METRIC,
        "completed": all(r.get("completed", False) for r in reports),
        "wall_s": time.monotonic() - started,
        "runs_wall_s": [r.get("wall_s") for r in reports],
        "threads": sorted({threads for r in reports if (threads := r.get("threads")) is not None}),
        "classes": {"count": len(classes), "held_out_per_split": len(base_unseen), "seen_per_split": len(base_seen)},
        "splits": [{"index": j, "held_out": s, "file": str(split_files[j].relative_to(out))} for j, s in enumerate(splits)],
        "seeds": [{"index": i, "runtime_seed": cfg.runtime.seed + i, "data_seed": cfg.data.seed + DATA_SEED_STRIDE * i}
                  for i in range(options.seeds)],
        "ablations": options.ablations,
        "teacher": options.teacher if cfg.teacher is not None else None,
        "teachers": sorted(_relative(p, out) for p in teachers.values()),
        "selection": reports[0].get("selection") if reports else None,
        "chance": chance_metrics(len(classes), base_seen, base_unseen),
        "table": aggregate(runs),
        "runs": runs,
    }
    write_sweep(out, summary)
    return summary


def _relative(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _bar(total: int, enabled: bool):
    return tqdm(total=total, desc="sweep", unit="run", dynamic_ncols=True, disable=not enabled)


def _teacher_key(cfg: PretrainConfig, mode: str) -> str | None:
    """Runs with the same key share a teacher: same settings (and, per-seed, the same runtime seed)."""
    if cfg.teacher is None:
        return None
    record = teacher_record(cfg)
    if mode == "shared":
        record = {**record, "seed": None}
    return json.dumps(record, sort_keys=True, default=list)


def _completed_report(run_dir: Path, name: str) -> dict[str, Any] | None:
    path = run_dir / f"{name}_report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not report.get("completed"):
        return None
    log.info("keeping the completed run %s", run_dir)
    return report


def run_rows(report: dict[str, Any], *, split: int, seed: int, runtime_seed: int, data_seed: int,
             run_dir: Path | str) -> list[dict[str, Any]]:
    """The per-run rows of one run's report: one per report row, with the sweep's coordinates."""
    held_out = " ".join(report.get("classes", {}).get("unseen", []))
    out = []
    for row in report["rows"]:
        stage = row.get("stage")
        if stage is None:
            raise ValueError(f"report row {row.get('name')!r} has no stage (a report written before sweeps existed)")
        config = {"upper bound": _UPPER, "before": _BEFORE}.get(stage, row.get("loss"))
        metrics = row["metrics"]
        out.append({
            "split": split, "held_out": held_out, "seed": seed, "runtime_seed": runtime_seed, "data_seed": data_seed,
            "config": config, "checkpoint": row.get("checkpoint") or "", "selected": bool(row.get("selected", stage != "after")),
            "step": row.get("step"),
            **{key: metrics.get(key) for key in RUN_FIELDS if "_vs_" in key},
            "run_wall_s": report.get("wall_s"), "threads": report.get("threads"), "teacher": report.get("teacher_file"),
            "run_dir": str(run_dir),
        })
    return out


# ------------------------------------------------------------------------------------ aggregation
def describe(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """n, mean, sample standard deviation (0 for one value), min and max of ``values`` (None / NaN left out)."""
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if xs.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {"n": int(xs.size), "mean": float(xs.mean()), "std": float(xs.std(ddof=1)) if xs.size > 1 else 0.0,
            "min": float(xs.min()), "max": float(xs.max())}


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per (configuration, checkpoint), in order of first appearance: the statistics
    (:func:`describe`) of every :data:`TABLE_METRICS` metric over the runs, the headline's per class split
    (``by_split``), and for an ablation the paired difference of its headline from the full loss's in the same
    run (same split, seed and checkpoint kind; ``delta_vs_full_loss``, None for the other rows)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in runs:
        groups.setdefault((row["config"], row["checkpoint"]), []).append(row)
    full = {(r["split"], r["seed"], r["checkpoint"]): r.get(HEADLINE_METRIC) for r in runs if r["config"] == FULL_LOSS}
    table = []
    for (config, checkpoint), rows in groups.items():
        delta = None
        if checkpoint and config != FULL_LOSS:
            pairs = [(r.get(HEADLINE_METRIC), full.get((r["split"], r["seed"], checkpoint))) for r in rows]
            delta = describe([a - b for a, b in pairs if a is not None and b is not None])
        splits = sorted({r["split"] for r in rows})
        table.append({
            "config": config, "checkpoint": checkpoint, "selected": all(r["selected"] for r in rows), "runs": len(rows),
            "metrics": {key: describe([r.get(key) for r in rows]) for key, _ in TABLE_METRICS},
            "by_split": {str(j): describe([r.get(HEADLINE_METRIC) for r in rows if r["split"] == j]) for j in splits},
            "delta_vs_full_loss": delta,
        })
    return table


# ------------------------------------------------------------------------------------ outputs
def write_sweep(out_dir: Path, summary: dict[str, Any]) -> tuple[Path, Path, Path, Path]:
    """``<name>_sweep.json``, ``_sweep_runs.csv``, ``_sweep.md`` and ``_sweep.png`` in ``out_dir``."""
    name = summary["name"]
    paths = tuple(out_dir / f"{name}_{suffix}" for suffix in ("sweep.json", "sweep_runs.csv", "sweep.md", "sweep.png"))
    atomic_write_text(paths[0], json.dumps(json_finite(summary), indent=2) + "\n")
    atomic_write_text(paths[1], runs_csv(summary["runs"]))
    atomic_write_text(paths[2], markdown(summary))
    atomic_write_bytes(paths[3], chart(summary))
    return paths  # type: ignore[return-value]


def runs_csv(runs: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RUN_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in runs:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in RUN_FIELDS})
    return buf.getvalue()


def cell(stats: dict[str, Any], signed: bool = False) -> str:
    """Percent "mean ± std (min-max)"; one run: its value. ``signed``: a difference, in points with signs."""
    if not stats.get("n"):
        return ""
    sign = "+" if signed else ""
    mean = f"{100 * stats['mean']:{sign}.1f}"
    if stats["n"] == 1:
        return mean
    low, high = f"{100 * stats['min']:{sign}.1f}", f"{100 * stats['max']:{sign}.1f}"
    return f"{mean} ± {100 * stats['std']:.1f} ({low}{' to ' if signed else '-'}{high})"


def _config_label(row: dict[str, Any], selection_mode: str | None) -> str:
    if not row["checkpoint"]:
        return row["config"]
    kind = "selected by validation" if row["checkpoint"] == "validation" else "last epoch"
    if row["checkpoint"] == "last" and selection_mode == "last":
        kind += ", selected"
    return f"f_E after, {row['config']} ({kind})"


def _selection_line(selection: dict[str, Any] | None) -> str:
    if not selection:
        return "not recorded"
    if selection.get("mode") == "validation":
        return (f"best validation {selection.get('metric')} on each run's validation items of the seen classes "
                f"({selection.get('validation_items')} per run); no test item and no held-out class selects")
    return "the last epoch of each run (the official best.pt); no test item selects"


def markdown(summary: dict[str, Any]) -> str:
    """The sweep's table: mean ± sample std (min-max) over the runs, in percent."""
    count, unseen = summary["classes"]["count"], summary["classes"]["held_out_per_split"]
    mode = (summary.get("selection") or {}).get("mode")
    n_seeds, n_splits = len(summary["seeds"]), len(summary["splits"])
    walls = [w for w in summary["runs_wall_s"] if w is not None]
    lines = [
        f"# Pre-training sweep: {summary['name']}, {n_seeds} seed(s) x {n_splits} class split(s)"
        + (" with the Figure 4 ablations" if summary["ablations"] else ""),
        "",
        "- class splits (held out of event pre-training): "
        + "; ".join(f"{s['index']}: {', '.join(s['held_out'])}" for s in summary["splits"]),
        "- seeds: " + "; ".join(f"{s['index']}: runtime.seed {s['runtime_seed']}, data.seed {s['data_seed']}"
                                for s in summary["seeds"]),
        f"- teacher: {summary['teacher']}" + (f" ({', '.join(summary['teachers'])})" if summary["teachers"] else "")
        if summary["teacher"] else "- teacher: none (pretrained CLIP)",
        f"- model selection: {_selection_line(summary.get('selection'))}",
        "- wall time: the runs " + (f"{sum(walls):.0f} s in all, {min(walls):.0f}-{max(walls):.0f} s each" if walls else "n/a")
        + f" ({', '.join(map(str, summary['threads'])) or '?'} torch thread(s)); this invocation {summary['wall_s']:.0f} s; "
        f"completed: {summary['completed']}",
        "",
        "| model | runs | " + " | ".join(t.format(count=count, unseen=unseen) for _, t in TABLE_METRICS) + " |",
        "|---|---:|" + "---:|" * len(TABLE_METRICS),
    ]
    for row in summary["table"]:
        lines.append(f"| {_config_label(row, mode)} | {row['runs']} | "
                     + " | ".join(cell(row["metrics"][key]) for key, _ in TABLE_METRICS) + " |")
    lines += ["", f"Held-out zero-shot top-1 in percent: mean ± sample standard deviation (min-max) over the runs "
              f"(seeds x class splits). Headline: held-out items ranked among all {count} class prompts (the official "
              f"get_acc; chance {100 / count:.1f}%); secondary: {unseen}-way among the held-out prompts only "
              f"(chance {100 / unseen:.1f}%). Per-run rows: {summary['name']}_sweep_runs.csv.", ""]
    splits = summary["splits"]
    lines += ["Headline by class split (mean ± std over the seeds), and each ablation's paired difference from the full "
              "loss of the same run (same split, seed and checkpoint kind), over all runs:", "",
              "| model | " + " | ".join(f"split {s['index']} ({' '.join(s['held_out'])})" for s in splits)
              + " | ablation - full loss, paired |",
              "|---|" + "---:|" * (len(splits) + 1)]
    for row in summary["table"]:
        if not row["selected"]:
            continue
        delta = row.get("delta_vs_full_loss")
        lines.append(f"| {_config_label(row, mode)} | "
                     + " | ".join(cell(row["by_split"].get(str(s["index"]), {})) for s in splits)
                     + f" | {cell(delta, signed=True) if delta else ''} |")
    lines.append("")
    return "\n".join(lines)


def chart(summary: dict[str, Any]) -> bytes:
    """PNG: per configuration (selected checkpoints), the mean of the headline and of the N-way figure as bars with
    std error bars, each run as a dot, chance dashed."""
    plt = pyplot()

    mode = (summary.get("selection") or {}).get("mode")
    table = [row for row in summary["table"] if row["selected"]]
    runs = summary["runs"]
    count, unseen = summary["classes"]["count"], summary["classes"]["held_out_per_split"]
    keys = (("unseen_vs_all_top1", f"among all {count} (headline)"), ("unseen_vs_unseen_top1", f"{unseen}-way among held-out"))
    fig, ax = plt.subplots(figsize=(2.0 + 1.5 * len(table), 4.4), layout="constrained")
    width = 0.38
    jitter = np.random.default_rng(0)
    for j, (key, title) in enumerate(keys):
        means = [100 * (row["metrics"][key]["mean"] or 0.0) for row in table]
        stds = [100 * (row["metrics"][key]["std"] or 0.0) for row in table]
        xs = [i + (j - 0.5) * width for i in range(len(table))]
        bars = ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{title}: mean ± std", alpha=0.85)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=4)
        for x, row in zip(xs, table):
            values = [100 * r[key] for r in runs
                      if (r["config"], r["checkpoint"]) == (row["config"], row["checkpoint"]) and r.get(key) is not None]
            ax.scatter(x + jitter.uniform(-0.08, 0.08, len(values)), values, s=9, color="black", zorder=3,
                       label="runs" if j == 0 and x == xs[0] else None)
        chance = summary.get("chance", {}).get(key)
        if chance is not None:
            ax.hlines(100 * chance, -0.5, len(table) - 0.5, colors=bars.patches[0].get_facecolor(), linestyles="dashed",
                      linewidth=1, label=f"chance ({title})")
    ax.set_xticks(range(len(table)), [textwrap.fill(_config_label(row, mode), 20) for row in table], fontsize=7)
    ax.set_ylabel("held-out zero-shot top-1 (%)")
    ax.set_ylim(0, 125)
    ax.set_title(f"{summary['name']}: {len(summary['seeds'])} seeds x {len(summary['splits'])} class splits "
                 f"({len(summary['runs_wall_s'])} runs)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()
