"""training/pretrain.py --seeds N --splits M: a sweep of the pre-training config over seeds and class splits.

A tiny configuration (6 glyph classes, 2 held out; a teacher of a few steps; one short epoch of event
pre-training) is swept over 2 seeds x 2 class splits with the Figure 4 ablations, once per module, in
process through the script's ``main`` (about 20 s in all; marked slow, as training runs are). The tests
check the plan (splits, seeds, one shared teacher), that the table is the aggregate of the per-run rows, and
that the files exist.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import yaml

from event_clip_ros.train.pretrain import cli
from event_clip_ros.train.pretrain.sweep import aggregate, cell, describe, draw_splits

CLASSES = ["0", "1", "3", "7", "a", "k"]
HELD_OUT = ["3", "k"]
TINY = f"""
name: tiny
model: {{arch: EventCLIP-Toy48}}
teacher: {{samples_per_class: 4, val_samples_per_class: 1, steps: 2, batch_size: 8, warmup_steps: 1}}
data:
  kind: synthetic
  split: split.yaml
  classes: {json.dumps(CLASSES)}
  train_samples_per_class: 4
  val_samples_per_class: 1
  test_samples_per_class: 2
frames: {{representation: paper, augment: false}}
loss: {{tau_i: 0.1, zs_prompts: seen, zs_normalize: true}}
optim: {{warmup_epochs: 0, epochs: 1, batch_size: 8}}
runtime: {{threads: 1, workers: 0, log_every_steps: 1, eval_batch_size: 16, tensorboard: false}}
"""
METRICS = ("unseen_vs_all_top1", "unseen_vs_unseen_top1", "seen_vs_all_top1")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(output folder, sweep JSON) of 2 seeds x 2 splits with ablations."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "split.yaml").write_text(f"unseen: {json.dumps(HELD_OUT)}\n")
    (root / "tiny.yaml").write_text(TINY)
    out = root / "out"
    assert cli.main(["--config", str(root / "tiny.yaml"), "--out", str(out), "--seeds", "2", "--splits", "2",
                     "--ablations"]) == 0
    return out, json.loads((out / "tiny_sweep.json").read_text())


@pytest.mark.slow  # training runs: not in the quick tier (scripts/test.sh --quick)
def test_the_sweep_runs_every_seed_and_split_with_one_shared_teacher(swept):
    out, summary = swept
    assert summary["completed"] and summary["ablations"] and summary["headline"] == "unseen_vs_all_top1"
    splits = [s["held_out"] for s in summary["splits"]]
    assert splits[0] == HELD_OUT
    assert sorted(splits[1]) != sorted(HELD_OUT) and len(splits[1]) == 2
    assert sum(c.isdigit() for c in splits[1]) == 1  # as many digits and letters as split 0
    for j, held_out in enumerate(splits):
        assert yaml.safe_load((out / "splits" / f"split{j}.yaml").read_text())["unseen"] == held_out
    assert [(s["runtime_seed"], s["data_seed"]) for s in summary["seeds"]] == [(0, 0), (1, 3)]
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["split0-seed0", "split0-seed1", "split1-seed0", "split1-seed1"]
    for name in runs:  # each a complete run with its report, the ablations included
        report = json.loads((out / "runs" / name / "tiny_report.json").read_text())
        assert report["classes"]["unseen"] == splits[int(name[5])]
        assert (out / "runs" / name / "ablations" / "no_zs" / "best.safetensors").is_file()
    assert len(list(out.glob("runs/*/teacher/teacher.safetensors"))) == 1  # trained once, shared
    assert summary["teachers"] == ["runs/split0-seed0/teacher/teacher.safetensors"]
    # 4 runs x (f_I, f_E before, 3 losses x (validation-selected, last epoch))
    assert len(summary["runs"]) == 4 * 8


@pytest.mark.slow  # training runs: not in the quick tier (scripts/test.sh --quick)
def test_the_table_aggregates_the_per_run_rows(swept):
    out, summary = swept
    with open(out / "tiny_sweep_runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(summary["runs"])
    table = {(r["config"], r["checkpoint"]): r for r in summary["table"]}
    assert list(table) == [
        ("f_I on the images (upper bound)", ""), ("f_E before event pre-training", ""),
        ("full loss", "validation"), ("full loss", "last"), ("without L_zs", "validation"), ("without L_zs", "last"),
        ("without L_kl", "validation"), ("without L_kl", "last"),
    ]
    for (config, checkpoint), entry in table.items():
        mine = [r for r in rows if (r["config"], r["checkpoint"]) == (config, checkpoint)]
        assert entry["runs"] == len(mine) == 4
        assert sorted((int(r["split"]), int(r["seed"])) for r in mine) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        for key in METRICS:
            values = np.array([float(r[key]) for r in mine])
            stats = entry["metrics"][key]
            assert stats["n"] == 4
            assert stats["mean"] == pytest.approx(values.mean())
            assert stats["std"] == pytest.approx(values.std(ddof=1))
            assert (stats["min"], stats["max"]) == pytest.approx((values.min(), values.max()))
        by_split = {j: [float(r["unseen_vs_all_top1"]) for r in mine if int(r["split"]) == j] for j in (0, 1)}
        for j, values in by_split.items():
            assert entry["by_split"][str(j)]["mean"] == pytest.approx(np.mean(values))
        if config in ("without L_zs", "without L_kl"):  # paired with the full loss of the same run and checkpoint
            full = {(r["split"], r["seed"]): float(r["unseen_vs_all_top1"]) for r in rows
                    if (r["config"], r["checkpoint"]) == ("full loss", checkpoint)}
            deltas = [float(r["unseen_vs_all_top1"]) - full[(r["split"], r["seed"])] for r in mine]
            assert entry["delta_vs_full_loss"]["mean"] == pytest.approx(np.mean(deltas))
            assert entry["delta_vs_full_loss"]["std"] == pytest.approx(np.std(deltas, ddof=1))
        else:
            assert entry["delta_vs_full_loss"] is None
    md = (out / "tiny_sweep.md").read_text()
    full = table[("full loss", "validation")]["metrics"]["unseen_vs_all_top1"]
    assert f"| f_E after, full loss (selected by validation) | 4 | {cell(full)} |" in md
    assert "among all 6 classes** (headline)" in md and "2-way among held-out" in md
    assert (out / "tiny_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.slow  # training runs: not in the quick tier (scripts/test.sh --quick)
def test_resume_keeps_the_completed_runs(swept, capsys):
    out, summary = swept
    config = out.parent / "tiny.yaml"
    args = ["--config", str(config), "--out", str(out), "--seeds", "2", "--splits", "2", "--ablations"]
    assert cli.main(args) == 1  # a fresh start over the finished sweep is refused
    assert "--resume auto" in capsys.readouterr().err
    assert cli.main([*args, "--resume", "auto"]) == 0
    again = json.loads((out / "tiny_sweep.json").read_text())
    assert again["table"] == summary["table"] and again["runs"] == summary["runs"]


def test_statistics_and_cells():
    assert describe([0.5, None, 0.7, float("nan")]) == pytest.approx(
        {"n": 2, "mean": 0.6, "std": math.sqrt(0.02), "min": 0.5, "max": 0.7})
    assert describe([0.25]) == {"n": 1, "mean": 0.25, "std": 0.0, "min": 0.25, "max": 0.25}
    assert describe([])["n"] == 0
    assert cell({"n": 3, "mean": 0.75, "std": 0.02, "min": 0.731, "max": 0.772}) == "75.0 ± 2.0 (73.1-77.2)"
    assert cell({"n": 1, "mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}) == "50.0"
    rows = [{"config": c, "checkpoint": "last", "selected": True, "split": j, "seed": 0, "unseen_vs_all_top1": v}
            for c, j, v in (("full loss", 0, 0.1), ("full loss", 1, 0.3), ("without L_kl", 0, 0.2), ("without L_kl", 1, 0.2))]
    full, ablation = aggregate(rows)
    assert full["runs"] == 2 and full["metrics"]["unseen_vs_all_top1"]["mean"] == pytest.approx(0.2)
    assert full["by_split"]["1"]["mean"] == pytest.approx(0.3) and full["delta_vs_full_loss"] is None
    assert ablation["delta_vs_full_loss"] == pytest.approx({"n": 2, "mean": 0.0, "std": math.sqrt(0.02), "min": -0.1,
                                                            "max": 0.1})


def test_drawn_splits_keep_the_group_sizes_and_avoid_earlier_held_out_classes():
    classes = list("0123456789") + list("abcdefghijklmnopqrstuvwxyz")
    base = ["2", "4", "7", "b", "e", "h", "k", "n", "s", "w"]
    splits = draw_splits(classes, base, 3)
    assert splits[0] == base and draw_splits(classes, base, 3) == splits  # deterministic
    for split in splits[1:]:
        assert len(split) == 10 and sum(c.isdigit() for c in split) == 3
    assert not set(splits[1]) & set(base) and not set(splits[2]) & (set(base) | set(splits[1]))


def test_a_sweep_needs_a_class_split_and_positive_counts(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(TINY.replace("split: split.yaml", "split: null"))
    assert cli.main(["--config", str(config), "--out", str(tmp_path / "o"), "--seeds", "2"]) == 2
    assert "needs data.split" in capsys.readouterr().err
    (tmp_path / "split.yaml").write_text(f"unseen: {json.dumps(HELD_OUT)}\n")
    config.write_text(TINY)
    assert cli.main(["--config", str(config), "--out", str(tmp_path / "o"), "--seeds", "0"]) == 2
    assert "--seeds >= 1" in capsys.readouterr().err


@pytest.mark.slow  # training runs: not in the quick tier (scripts/test.sh --quick)
def test_a_per_seed_teacher_is_trained_once_per_seed_and_shared_across_splits(tmp_path):
    (tmp_path / "split.yaml").write_text(f"unseen: {json.dumps(HELD_OUT)}\n")
    (tmp_path / "tiny.yaml").write_text(TINY)
    out = tmp_path / "out"
    assert cli.main(["--config", str(tmp_path / "tiny.yaml"), "--out", str(out), "--seeds", "2", "--splits", "2",
                     "--teacher", "per-seed", "--max-steps", "1"]) == 0
    summary = json.loads((out / "tiny_sweep.json").read_text())
    assert summary["teachers"] == ["runs/split0-seed0/teacher/teacher.safetensors",
                                   "runs/split0-seed1/teacher/teacher.safetensors"]
    assert sorted(p.parent.parent.name for p in out.glob("runs/*/teacher/teacher.safetensors")) == \
        ["split0-seed0", "split0-seed1"]
    used = {(r["split"], r["seed"]): r["teacher"] for r in summary["runs"]}
    assert used[(1, 0)] == used[(0, 0)] != used[(0, 1)] == used[(1, 1)]
    assert not summary["completed"]  # --max-steps cut every run short, and the sweep says so
