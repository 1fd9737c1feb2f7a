"""Fine-tuning (training/finetune.py, event_clip_ros.train.finetune) on synthetic glyphs with a tiny model.

The model is EventCLIP-Tiny with random weights, except that its text projection is solved so that the
class prompts of the task map to orthonormal embeddings: a random f_T maps every prompt to nearly the
same direction (pairwise cosines 0.85-0.99), which makes L_pred's targets indistinguishable, while a
trained f_T keeps class prompts apart. f_E stays random, so zero-shot accuracy starts at chance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from event_clip_ros.events.types import SensorSize
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import load_checkpoint, save_checkpoint
from event_clip_ros.sim.glyphs import class_prompt
from event_clip_ros.train.config import ConfigError
from event_clip_ros.train.finetune import FinetuneConfig, build_data, cli, load_config, load_preset, parse_override
from event_clip_ros.train.finetune.evaluation import MethodComparison

from event_files import random_events, write_atis_bin

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "training" / "finetune.py"
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
HELD_OUT = ("circle", "square", "triangle", "star")  # 4-way: chance 0.25

#: A small, quick task: 32 x 32 glyph sensors, 50 training and 20 validation / 40 test instances per class.
TASK = [
    "data.classes=[circle, square, triangle, star, cross, diamond]", "data.image_size=32",
    "data.train_samples_per_class=50", "data.val_samples_per_class=20", "data.test_samples_per_class=40",
    "runtime.progress=false", "runtime.tensorboard=false",
    "runtime.threads=1",  # tiny ops: one thread is fastest, and far faster when other processes share the cores
]
#: Peak LR 1e-3 at batch 20 (the official 5e-6 x 20 / 256 would not move a random f_E in 100 steps).
TRAINING = ["optim.epochs=10", "optim.batch_size=20", "optim.base_lr=1.28e-2", "optim.warmup_epochs=1"]




def run_cli(*args: str) -> int:
    return cli.main([str(a) for a in args])


def sets(*assignments: str) -> list[str]:
    return [item for a in assignments for item in ("--set", a)]


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def checkpoint(workdir) -> Path:
    """Tiny random model whose f_T maps the six shape prompts to orthonormal embeddings (see module doc)."""
    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))
    clip = model.clip
    projection = clip.text_projection
    clip.text_projection = None  # encode_text then returns the pooled features
    with torch.no_grad():
        pooled = clip.encode_text(model.tokenizer([class_prompt(c) for c in SHAPES]))
    q, _ = torch.linalg.qr(torch.randn(projection.shape[1], len(SHAPES), generator=torch.Generator().manual_seed(1)))
    clip.text_projection = torch.nn.Parameter(torch.linalg.pinv(pooled) @ q.T, requires_grad=False)
    path = workdir / "start.safetensors"
    save_checkpoint(model, path)
    return path


@pytest.fixture(scope="module")
def split(workdir) -> Path:
    path = workdir / "split.yaml"
    path.write_text(f"unseen: [{', '.join(HELD_OUT)}]\n")
    return path


@pytest.fixture(scope="module")
def finetuned(workdir, checkpoint, split) -> Path:
    """One fine-tuning run on all 50 training items of each held-out class (the shared result of several tests)."""
    out = workdir / "all"
    assert run_cli("--checkpoint", checkpoint, "--data", "synthetic", "--shots", "all", "--classes", "held-out",
                   "--out", out, *sets(f"data.split={split}", *TASK, *TRAINING)) == 0
    return out


def task_config(checkpoint: Path, split: Path, *extra: str) -> FinetuneConfig:
    preset = load_preset(REPO_ROOT / "training" / "presets" / "finetune" / "synthetic.yaml")
    overrides = [parse_override(a) for a in (f"checkpoint={checkpoint}", f"data.split={split}", *TASK, *extra)]
    return load_config(preset, overrides)


# ------------------------------------------------------------------------------------------ training
def test_finetuning_raises_accuracy_above_zero_shot_and_chance(finetuned):
    report = json.loads((finetuned / "eval.json").read_text())
    assert report["split"] == "test" and report["eval_items"] == 4 * 40 and report["train_items"] == 4 * 50
    # the 4 held-out classes' items are ranked among all 6 class prompts (headline), and 4-way ("nway")
    assert report["class_names"] == list(HELD_OUT) and report["ranked_among"] == len(SHAPES)
    assert report["chance_top1"] == pytest.approx(1 / 6) and report["chance_top1_nway"] == 0.25
    assert report["selection"]["mode"] == "validation" and report["val_items"] == 4 * 20
    zero, few, tuned = report["zero_shot"], report["few_shot"], report["fine_tuned"]
    print(f"top-1: zero-shot {zero['top1']:.3f}, few-shot prototypes {few['top1']:.3f}, fine-tuned {tuned['top1']:.3f}")
    assert zero["top1"] <= 0.3  # random f_E
    # measured 0.41-0.48 over training seeds 0-2 and 50-80 items per class; the standard error is ~0.04
    assert tuned["top1"] >= zero["top1"] + 0.1 and tuned["top1"] >= report["chance_top1"] + 0.1
    assert tuned["mean_per_class"] == pytest.approx(np.mean(list(tuned["per_class"].values())))
    assert set(tuned["per_class"]) == set(HELD_OUT) and tuned["count"] == 160
    assert tuned["nway"]["top5"] == 1.0 and tuned["nway"]["classes"] == 4  # 4-way: top-min(5, 4) always hits
    assert tuned["nway"]["top1"] >= tuned["top1"]  # other classes' prompts only compete in the headline


def test_only_the_event_encoder_changes(finetuned, checkpoint):
    start = safetensors.torch.load_file(str(checkpoint))
    best = safetensors.torch.load_file(str(finetuned / "best.safetensors"))
    assert start.keys() == best.keys()
    changed = {k for k in start if not torch.equal(start[k], best[k])}
    assert changed and all(k.startswith("event_tower.") for k in changed)
    assert len(changed) > 0.5 * sum(k.startswith("event_tower.") for k in start)


def test_best_checkpoint_is_the_best_validation_epoch(finetuned, checkpoint, split):
    rows = [json.loads(line) for line in (finetuned / "metrics.jsonl").read_text().splitlines()]
    val = [(r["step"], r["val/top1"]) for r in rows if "val/top1" in r]
    assert len(val) == 10  # one validation per epoch
    best_value = max(v for _, v in val)
    first_best_step = next(s for s, v in val if v == best_value)
    model = load_checkpoint(finetuned / "best.safetensors")
    record = model.meta.training
    assert record["best"]["value"] == best_value and record["best"]["step"] == first_best_step
    assert record["stage"] == "finetune" and record["config"]["optim"]["epochs"] == 10
    assert record["best"]["selection"] == "validation" and record["selection"]["mode"] == "validation"
    assert record["base_checkpoint"] == str(checkpoint)
    # the exported weights are that epoch's: they reproduce its validation top-1
    cfg = task_config(checkpoint, split, "shots=all", "classes=held-out")
    data = build_data(cfg, model.meta.input_size)
    assert MethodComparison(data, progress=False).zero_shot(model, "val").top1 == pytest.approx(best_value)
    report = json.loads((finetuned / "eval.json").read_text())
    assert report["fine_tuned"]["best"]["step"] == first_best_step


def test_run_outputs_and_no_silent_overwrite(finetuned, checkpoint, split, capsys):
    for name in ("config.yaml", "kshot.json", "metrics.csv", "summary.json", "checkpoints/best.pt"):
        assert (finetuned / name).is_file(), name
    kshot = json.loads((finetuned / "kshot.json").read_text())
    assert kshot["shots"] == "all" and kshot["per_class"] == {c: 50 for c in HELD_OUT} and "indices" not in kshot
    # a second fresh run into the same folder is refused before it changes anything there; --resume auto finds
    # the run complete and reports again
    config = (finetuned / "config.yaml").read_text()
    assert run_cli("--checkpoint", checkpoint, "--data", "synthetic", "--shots", "all", "--out", finetuned,
                   *sets(f"data.split={split}", "classes=held-out", *TASK, *TRAINING, "optim.epochs=11")) == 1
    assert "--resume auto" in capsys.readouterr().err
    assert (finetuned / "config.yaml").read_text() == config
    before = json.loads((finetuned / "eval.json").read_text())
    assert run_cli("--checkpoint", checkpoint, "--data", "synthetic", "--shots", "all", "--out", finetuned,
                   "--resume", "auto", *sets(f"data.split={split}", "classes=held-out", *TASK, *TRAINING)) == 0
    after = json.loads((finetuned / "eval.json").read_text())
    assert after["fine_tuned"]["top1"] == before["fine_tuned"]["top1"]
    assert "fine_tuned" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- k-shot, eval-only
def test_kshot_subsets_have_k_per_held_out_class_and_are_deterministic(checkpoint, split):
    for k in (1, 2, 5):
        data = build_data(task_config(checkpoint, split, f"shots={k}"), (64, 64))
        assert data.classes_mode == "held-out"  # the default for k shots with a split
        labels = data.train.labels()[data.train_indices]
        assert sorted(np.unique(labels)) == sorted(data.targets)
        assert np.bincount(labels, minlength=len(SHAPES))[data.targets].tolist() == [k] * len(HELD_OUT)
        again = build_data(task_config(checkpoint, split, f"shots={k}"), (64, 64))
        assert np.array_equal(again.train_indices, data.train_indices)
        assert data.batch_size == min(20 * k, 4 * k)  # official 20 per shot, capped at the subset
    other = build_data(task_config(checkpoint, split, "shots=5", "kshot_seed=1"), (64, 64))
    assert not np.array_equal(other.train_indices, build_data(task_config(checkpoint, split, "shots=5"), (64, 64)).train_indices)
    every = build_data(task_config(checkpoint, split, "shots=2", "classes=all"), (64, 64))
    assert every.targets == list(range(len(SHAPES)))
    assert np.bincount(every.train.labels()[every.train_indices]).tolist() == [2] * len(SHAPES)


def test_eval_only_writes_the_comparison(workdir, checkpoint, split, capsys):
    out = workdir / "eval_only"
    assert run_cli("--checkpoint", checkpoint, "--data", "synthetic", "--shots", "5", "--out", out, "--eval-only",
                   *sets(f"data.split={split}", *TASK)) == 0
    report = json.loads((out / "eval.json").read_text())
    assert {"checkpoint", "data", "split", "shots", "kshot_seed", "classes", "class_names", "chance_top1", "eval_items",
            "train_items", "frame", "zero_shot", "few_shot"} <= report.keys()
    assert "fine_tuned" not in report and not (out / "best.safetensors").exists()
    assert report["shots"] == 5 and report["classes"] == "held-out" and report["train_items"] == 20
    for method in ("zero_shot", "few_shot"):
        assert {"top1", "top5", "mean_per_class", "count", "per_class"} <= report[method].keys()
        assert report[method]["count"] == 160 and list(report[method]["per_class"]) == list(HELD_OUT)
    assert report["few_shot"]["alpha"] == 0.5
    assert report["frame"]["representation"] == "paper"  # the synthetic dataset's recommended frames
    kshot = json.loads((out / "kshot.json").read_text())
    assert kshot["per_class"] == {c: 5 for c in HELD_OUT} and len(kshot["indices"]) == len(kshot["items"]) == 20
    assert kshot["seed"] == 0 and kshot["items"][0].startswith("synthetic:seed=10:index=")
    assert "few_shot" in capsys.readouterr().out


def test_list_dataset_layout(workdir, checkpoint, caplog):
    """N-MNIST lists (EventBind layout: folders 0..9, event<TAB>image): the k-shot items are files, frames are
    the official clamped ones, and a short run trains with the official event augmentation."""
    root = workdir / "nmnist"
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "classes.json").write_text(json.dumps({n: i for i, n in enumerate(names)}))
    for split, per_class in (("train", 3), ("val", 2)):
        lines = []
        for digit in (0, 1, 2):
            for i in range(per_class):
                path = root / "N-MNIST" / split / str(digit) / f"{i:05d}.bin"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atis_bin(path, random_events(3000, SensorSize(34, 34), seed=100 * digit + i))
                lines.append(f"/N-MNIST/{split}/{digit}/{i:05d}.bin\t/MNIST/{split}/{digit}/{i}.png")  # images unused
        (root / "configs" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    files = ["--lists-dir", root / "configs", "--train-list", "train.txt", "--test-list", "val.txt",
             "--labels", "classes.json", "--root", root]
    assert run_cli("--checkpoint", checkpoint, "--data", "n-mnist", "--shots", "2", "--out", root / "eval", "--eval-only",
                   *files, *sets(*TASK)) == 0
    report = json.loads((root / "eval" / "eval.json").read_text())
    assert report["classes"] == "all" and report["class_names"] == names and report["split"] == "test"
    assert report["train_items"] == 6 and report["eval_items"] == 6
    assert report["frame"] == {"representation": "official", "clamp": 10.0, "keep_aspect": False}
    kshot = json.loads((root / "eval" / "kshot.json").read_text())
    assert kshot["per_class"] == {"zero": 2, "one": 2, "two": 2}
    assert all(item.endswith(".bin") and "/N-MNIST/train/" in item for item in kshot["items"])
    assert run_cli("--checkpoint", checkpoint, "--data", "n-mnist", "--shots", "2", "--out", root / "run", *files,
                   *sets(*TASK, "optim.epochs=2", "optim.warmup_epochs=0", "optim.base_lr=1e-3")) == 0
    run_report = json.loads((root / "run" / "eval.json").read_text())
    assert run_report["fine_tuned"]["steps_trained"] == 2
    # no validation list: the last epoch is kept (the official best.pt), and the report says so
    assert run_report["selection"]["mode"] == "last" and run_report["fine_tuned"]["best"]["selection"] == "last"
    assert "no validation set" in run_report["selection"]["statement"]
    assert "batch 6 per device (capped from 40" in caplog.text  # the official 20 per shot > the 6 items


# ------------------------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_torchrun_two_processes(workdir, checkpoint, split):
    """DDP on CPU (gloo): the 20 shots are shared by two ranks, rank 0 validates and writes."""
    out = workdir / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
               "--checkpoint", str(checkpoint), "--data", "synthetic", "--shots", "5", "--out", str(out),
               *sets(f"data.split={split}", *TASK, "optim.epochs=2", "optim.warmup_epochs=1", "optim.base_lr=1e-3")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 10 per device (capped from 100" in result.stderr  # 20 items over 2 ranks
    report = json.loads((out / "eval.json").read_text())
    assert report["fine_tuned"]["steps_trained"] == 2 and report["train_items"] == 20
    assert result.stdout.count("wrote ") == 1  # only rank 0 reports


@pytest.mark.slow
def test_help_runs_as_a_script():
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for text in ("--checkpoint", "--data", "--shots", "--classes", "--eval-only", "--resume", "--set", "--threads", "presets"):
        assert text in result.stdout


def test_missing_checkpoint_is_a_clear_error(workdir, capsys):
    assert run_cli("--checkpoint", workdir / "nope.safetensors", "--data", "synthetic", "--shots", "1",
                   "--out", workdir / "missing", "--eval-only") == 2
    err = capsys.readouterr().err
    assert "nope.safetensors does not exist" in err
    assert run_cli("--data", "synthetic", "--eval-only", "--out", workdir / "missing") == 2
    assert "--checkpoint is required" in capsys.readouterr().err


def test_unknown_data_kind_and_bad_settings_are_clear_errors(workdir, checkpoint, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("--checkpoint", checkpoint, "--data", "n-nope", "--shots", "1")
    assert exc.value.code == 2 and "invalid choice: 'n-nope'" in capsys.readouterr().err
    bad = {
        "data.kind=n-nope": "data.kind",
        "optim.base_lr=fast": "optim.base_lr",
        "optim.lr=1": "unknown key",
        "shots=-1": "shots must be >= 0",
    }
    for assignment, message in bad.items():
        assert run_cli("--checkpoint", checkpoint, "--preset", "synthetic", "--eval-only", "--set", assignment) == 2
        assert message in capsys.readouterr().err, assignment
    assert run_cli("--checkpoint", checkpoint, "--data", "n-imagenet", "--shots", "1", "--eval-only") == 2
    assert "data.train_list" in capsys.readouterr().err  # the official lists must be given


def test_presets_load_with_official_defaults():
    preset_dir = REPO_ROOT / "training" / "presets" / "finetune"
    for name in ("1shot", "2shot", "5shot", "all"):
        raw = load_preset(preset_dir / f"n-imagenet-{name}.yaml")
        cfg = load_config(raw, [("checkpoint", "vitb.pt")])
        assert cfg.data.kind == "n-imagenet" and cfg.data.frame_augment and cfg.data.labels_file == "Labels.json"
        assert cfg.optim.base_lr == 5e-6 and cfg.optim.epochs == 100 and cfg.optim.warmup_epochs == 40
        assert cfg.optim.weight_decay == 0.03 and cfg.runtime.precision == "fp32"
        assert Path(cfg.data.split).is_file()  # made absolute against the preset's folder
    assert load_config(load_preset(preset_dir / "n-imagenet-all.yaml")).shots == "all"
    assert load_config(load_preset(preset_dir / "n-imagenet-2shot.yaml")).data.train_list == "train_list_2_shot.txt"
    for name in ("n-caltech101", "n-mnist"):
        raw = load_preset(preset_dir / f"{name}.yaml")
        with pytest.raises(ConfigError, match="data.test_list"):
            load_config(raw)
        assert load_config(raw, [("data.train_list", "t"), ("data.test_list", "v"), ("data.labels_file", "l")]).classes == "all"
    toy = load_config(load_preset(preset_dir / "synthetic.yaml"))
    assert toy.k == 5 and toy.classes == "held-out" and Path(toy.data.split).is_file()


def test_preset_extends_another(tmp_path):
    (tmp_path / "base.yaml").write_text("shots: 1\ndata:\n  split: split.yaml\n  seed: 3\noptim:\n  epochs: 7\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nshots: 2\ndata:\n  seed: 4\n")
    cfg = load_config(load_preset(tmp_path / "child.yaml"))
    assert (cfg.shots, cfg.data.seed, cfg.optim.epochs) == (2, 4, 7)  # the extending preset wins key by key
    assert cfg.data.split == str(tmp_path / "split.yaml")  # relative to the preset that names it
    (tmp_path / "base.yaml").write_text("extends: child.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_preset(tmp_path / "child.yaml")
