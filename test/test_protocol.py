"""The evaluation protocol of training/: the headline zero-shot figure ranks held-out items among every class
prompt (the official get_acc), the N-way figure is secondary, and model selection never sees a test item or a
held-out class.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from event_clip_ros.events.types import SensorSize
from event_clip_ros.train.data import SyntheticGlyphs
from event_clip_ros.train.engine import Trainer
from event_clip_ros.train.finetune import build_data
from event_clip_ros.train.finetune import evaluation as ft_eval
from event_clip_ros.train.finetune.data import FinetuneData
from event_clip_ros.train.finetune.evaluation import MethodComparison
from event_clip_ros.train.pretrain import load_config, run
from event_clip_ros.train.pretrain.data import build_run_data
from event_clip_ros.train.pretrain.evaluation import HEADLINE_METRIC, held_out_metrics
from event_clip_ros.train.pretrain.report import markdown
from event_clip_ros.train.pretrain.run import RunOptions
from event_clip_ros.train.selection import resolve_selection

from event_files import random_events, write_atis_bin

# ------------------------------------------------------------------------------------ a tiny 5-class space
#: Classes 0-2 seen, 3-4 held out; the class prompts are the axes of R^5.
SEEN, UNSEEN = [0, 1, 2], [3, 4]
WEIGHTS = torch.eye(5)


def _held_out_items() -> tuple[torch.Tensor, torch.Tensor]:
    """Four held-out items, each closest to its own class among the held-out prompts; two of them are closer still
    to a seen class. So the N-way (2-way) top-1 is 100% and the top-1 among all 5 prompts 50%."""
    emb = torch.tensor([
        [0.0, 0.0, 0.0, 1.0, 0.2],   # class 3, right among all
        [0.0, 0.0, 0.0, 0.2, 1.0],   # class 4, right among all
        [0.9, 0.0, 0.0, 0.5, 0.1],   # class 3, but seen class 0 wins among all
        [0.0, 0.9, 0.0, 0.1, 0.5],   # class 4, but seen class 1 wins among all
    ])
    return emb, torch.tensor([3, 4, 3, 4])


def test_headline_ranks_held_out_items_among_all_classes():
    emb, labels = _held_out_items()
    metrics = held_out_metrics(emb, labels, WEIGHTS, SEEN, UNSEEN)
    assert HEADLINE_METRIC == "unseen_vs_all_top1"
    assert metrics["unseen_vs_all_top1"] == pytest.approx(0.5)  # the official get_acc: argmax over all 5 prompts
    assert metrics["unseen_vs_unseen_top1"] == pytest.approx(1.0)  # the N-way figure, secondary
    assert "unseen_top1" not in metrics  # no ambiguous name
    report = {"name": "t", "classes": {"count": 5, "seen": ["a", "b", "c"], "unseen": ["d", "e"]}, "test_items": 4,
              "wall_s": 1.0, "device": "cpu", "world_size": 1, "threads": 1, "completed": True, "deviations": [],
              "rows": [{"name": "f_E", "input": "events", "metrics": metrics}]}
    table = [line for line in markdown(report).splitlines() if line.startswith("|")]
    assert "headline" in table[0].split("|")[3]  # the first accuracy column is the headline ...
    assert table[2].split("|")[3].strip() == "50.0"  # ... with the all-class value
    assert "N-way" in table[0] and "100.0" in table[2]  # the N-way figure is there, as a named secondary column


class _Items:
    """Stands for a dataset: only its classes, prompts and labels are read by MethodComparison's bookkeeping."""

    kind, seed = "fake", 0
    classes = ["a", "b", "c", "d", "e"]

    def prompts(self):
        return list(self.classes)


def test_finetune_eval_ranks_targets_among_all_classes(monkeypatch):
    emb, labels = _held_out_items()
    monkeypatch.setattr(ft_eval, "embed_items", lambda *a, **k: (emb, labels))
    monkeypatch.setattr(ft_eval, "ensemble_text_weights", lambda model, prompts: WEIGHTS)
    items = _Items()
    data = FinetuneData(train=None, shots=None, val=None, test=items, classes=list(items.classes),
                        prompts=items.prompts(), classes_mode="held-out", targets=UNSEEN, train_indices=np.empty(0, int),
                        val_indices=np.empty(0, int), eval_indices=np.arange(4), batch_size=0)
    report = MethodComparison(data, progress=False).zero_and_few_shot(model=None, alpha=0.5)
    zero = report["zero_shot"]
    assert zero["top1"] == pytest.approx(0.5) and zero["nway"]["top1"] == pytest.approx(1.0)
    assert zero["nway"]["classes"] == 2 and list(zero["per_class"]) == ["d", "e"]
    assert "few_shot" not in report  # zero-shot only: no shots


# ------------------------------------------------------------------------------------ model selection
TINY = """
name: tiny
model: {arch: EventCLIP-Toy48, pretrained: null}
data:
  kind: synthetic
  split: split.yaml
  classes: ["0", "1", "a", "k"]
  train_samples_per_class: 6
  val_samples_per_class: 3
  test_samples_per_class: 4
frames: {representation: paper, augment: false}
loss: {tau_i: 0.1, zs_normalize: true}
optim: {base_lr: 1.0e-3, warmup_epochs: 0, epochs: 2, batch_size: 4}
runtime: {threads: 1, workers: 0, log_every_steps: 2, eval_batch_size: 8, progress: false, tensorboard: false}
"""


def _tiny_config(folder: Path, *overrides: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "split.yaml").write_text('unseen: ["1", "k"]\n')
    (folder / "tiny.yaml").write_text(TINY)
    return load_config(folder / "tiny.yaml", overrides)


def test_pretraining_selects_on_seen_validation_items_only(tmp_path, monkeypatch):
    """Instrumented: every item a validation pass loads is a seen-class item held out of training; the test items
    (seed + 2) are loaded only for the report, after training."""
    cfg = _tiny_config(tmp_path / "cfg")
    loads: list[tuple[str, int, int, int]] = []  # (phase, seed, index, label)
    phase = {"now": "setup"}
    get_item = SyntheticGlyphs.__getitem__

    def spy_item(self, index):
        item = get_item(self, index)
        loads.append((phase["now"], self.seed, int(index), int(item["label"])))
        return item

    validate, fit = Trainer._validate, Trainer.fit

    def spy_validate(self, *args, **kwargs):
        previous, phase["now"] = phase["now"], "validation"
        try:
            return validate(self, *args, **kwargs)
        finally:
            phase["now"] = previous

    def spy_fit(self):
        phase["now"] = "training"
        try:
            return fit(self)
        finally:
            phase["now"] = "report"

    monkeypatch.setattr(SyntheticGlyphs, "__getitem__", spy_item)
    monkeypatch.setattr(Trainer, "_validate", spy_validate)
    monkeypatch.setattr(Trainer, "fit", spy_fit)
    report = run(cfg, RunOptions(out_dir=tmp_path / "out"))

    classes = ["0", "1", "a", "k"]
    seen = {classes.index("0"), classes.index("a")}
    val = [row for row in loads if row[0] == "validation"]
    assert val, "no validation pass ran"
    assert {label for *_, label in val} <= seen  # no held-out class reaches selection
    assert {seed for _, seed, _, _ in val} == {0}  # drawn from the training data ...
    assert all(index // len(classes) >= 6 for _, _, index, _ in val)  # ... but instances training never uses
    assert all(index // len(classes) < 6 for phase_, _, index, _ in loads if phase_ == "training")
    test_seed = cfg.data.seed + 2
    assert all(phase_ in ("setup", "report") for phase_, seed, _, _ in loads if seed == test_seed)
    assert report["selection"]["mode"] == "validation" and report["selection"]["metric"] == "seen_vs_seen_top1"
    assert report["validation_items"] == 2 * 3 and "no test item" in report["selection"]["statement"]
    metrics = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    val_keys = {k for row in metrics for k in row if k.startswith("val/")}
    assert val_keys == {"val/seen_vs_seen_top1", "val/seen_vs_seen_top5"}


def test_pretraining_without_validation_keeps_the_last_epoch_and_says_so(tmp_path, caplog):
    cfg = _tiny_config(tmp_path / "cfg", "data.val_samples_per_class=0", "optim.epochs=1")
    report = run(cfg, RunOptions(out_dir=tmp_path / "out"))
    assert report["selection"]["mode"] == "last" and report["validation_items"] == 0
    assert "no validation set" in report["selection"]["statement"] and "no validation set" in caplog.text
    names = [row["name"] for row in report["rows"]]
    assert any("last epoch, selected" in n for n in names) and not any("selected by validation" in n for n in names)
    assert (tmp_path / "out" / "best.safetensors").is_file()
    with pytest.raises(ValueError, match="needs a validation set"):
        resolve_selection("validation", "seen_vs_seen_top1", None, 0)


def test_selection_metric_must_be_a_seen_class_validation_metric(tmp_path):
    with pytest.raises(ValueError, match="not a validation metric"):
        _tiny_config(tmp_path, "runtime.best_metric=unseen_vs_all_top1")


# ------------------------------------------------------------------------------------ real list layouts
def _caltech_tree(root: Path, classes: list[str], per_class: dict[str, int]) -> dict[str, list[str]]:
    """N-Caltech101-style files (EventBind lists: event.bin<TAB>image) for the splits in ``per_class``."""
    lines: dict[str, list[str]] = {}
    for split, n in per_class.items():
        for c, name in enumerate(classes):
            for i in range(n):
                event = root / "events" / name / f"{split}_{i}.bin"
                image = root / "images" / name / f"{split}_{i}.png"
                event.parent.mkdir(parents=True, exist_ok=True)
                image.parent.mkdir(parents=True, exist_ok=True)
                write_atis_bin(event, random_events(300, SensorSize(240, 180), seed=100 * c + i))
                Image.fromarray(np.full((8, 8, 3), 40 * c, np.uint8)).save(image)
                lines.setdefault(split, []).append(f"{event}\t{image}")
    for split, rows in lines.items():
        (root / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return lines


def test_real_data_validation_is_drawn_from_seen_training_items_apart_from_the_test_list(tmp_path):
    classes = ["ant", "bee", "cat", "dog"]
    _caltech_tree(tmp_path, classes, {"train": 5, "test": 2})
    (tmp_path / "classes.json").write_text(json.dumps({c: i for i, c in enumerate(classes)}))
    (tmp_path / "split.yaml").write_text("unseen: [bee, dog]\n")
    base = ["data.kind=n-caltech101", f"data.train_list={tmp_path / 'train.txt'}", f"data.labels_file={tmp_path / 'classes.json'}",
            f"data.split={tmp_path / 'split.yaml'}", "model.arch=EventCLIP-Toy48", "model.pretrained=null"]
    (tmp_path / "p.yaml").write_text("name: p\n")
    with pytest.raises(Exception, match="data.test_list"):  # no test list: an error, never the validation list again
        load_config(tmp_path / "p.yaml", base)
    cfg = load_config(tmp_path / "p.yaml", [*base, f"data.test_list={tmp_path / 'test.txt'}", "data.val_samples_per_class=2"])
    data = build_run_data(cfg.data, (48, 48))
    val_files = {str(data.val.dataset.entries[i].events) for i in data.val.indices}
    train_files = {str(data.train.dataset.entries[i].events) for i in data.train.indices}
    test_files = {str(e.events) for e in data.test.entries}
    val_labels = {data.val.dataset.entries[i].label for i in data.val.indices}
    assert len(val_files) == 2 * 2 and val_labels == {0, 2}  # 2 per seen class, seen classes only
    assert not val_files & train_files and not val_files & test_files
    assert {data.train.dataset.entries[i].label for i in data.train.indices} == {0, 2} and len(train_files) == 2 * 3
    assert "removed from training" in data.val_source
    # a validation list that shares files with the test list is refused; its held-out items are left out
    cfg = load_config(tmp_path / "p.yaml", [*base, f"data.test_list={tmp_path / 'test.txt'}",
                                             f"data.val_list={tmp_path / 'test.txt'}"])
    with pytest.raises(ValueError, match="share 4 files"):
        build_run_data(cfg.data, (48, 48))


def test_finetune_validation_list_must_not_be_the_test_list(tmp_path):
    from event_clip_ros.train.finetune import load_config as ft_load_config

    classes = ["ant", "bee"]
    _caltech_tree(tmp_path, classes, {"train": 3, "test": 2})
    (tmp_path / "classes.json").write_text(json.dumps({c: i for i, c in enumerate(classes)}))
    common = [("data.kind", "n-caltech101"), ("checkpoint", "x"), ("data.labels_file", str(tmp_path / "classes.json")),
              ("data.train_list", str(tmp_path / "train.txt")), ("shots", 1)]
    with pytest.raises(Exception, match="data.test_list"):
        ft_load_config({}, common)
    cfg = ft_load_config({}, [*common, ("data.test_list", str(tmp_path / "test.txt")), ("data.val_list", str(tmp_path / "test.txt"))])
    with pytest.raises(ValueError, match="share 4 items"):
        build_data(cfg, (48, 48))
    cfg = ft_load_config({}, [*common, ("data.test_list", str(tmp_path / "test.txt"))])
    data = build_data(cfg, (48, 48))
    assert data.val is None and data.val_source is None and data.eval_split == "test"


# ------------------------------------------------------------------------------------ f_E's input statistics
def test_event_frames_enter_f_E_with_the_statistics_its_initialisation_expects(tmp_path):
    """Pre-training records the input normalisation in the checkpoint; every path that embeds events (the node's and
    the CLI's embed_windows, evaluation, training) applies it through EventClip.frames_to_input."""
    from event_clip_ros.events.frames import build_frames_torch
    from event_clip_ros.model.checkpoint import load_checkpoint, save_checkpoint
    from event_clip_ros.model.event_clip import event_input_stats
    from event_clip_ros.train.engine.evaluation import embed_event_items
    from event_clip_ros.train.finetune import load_config as ft_load_config
    from event_clip_ros.train.finetune.run import load_model
    from event_clip_ros.train.pretrain.run import base_model
    from event_clip_ros.train.pretrain.step import PretrainStep

    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    assert event_input_stats("official", clip_mean, clip_std) == ([0.0] * 3, [1.0] * 3)  # already [-1, 1)
    assert event_input_stats("paper", clip_mean, clip_std) == (clip_mean, clip_std)  # [0, 1) like image pixels

    cfg = _tiny_config(tmp_path / "cfg")
    model = base_model(cfg, None, type("Env", (), {"device": torch.device("cpu")})())
    assert model.meta.frame["representation"] == "paper"
    assert model.meta.event_mean == pytest.approx(clip_mean) and model.meta.event_std == pytest.approx(clip_std)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path).place("cpu", "fp32")
    assert loaded.meta.event_mean == pytest.approx(clip_mean)

    events = random_events(500, SensorSize(48, 48), seed=1)
    frames = build_frames_torch([events], SensorSize(48, 48), loaded.frame_config, loaded.device)
    expected_input = (frames[:, None].expand(-1, 3, -1, -1) - torch.tensor(clip_mean).view(1, 3, 1, 1)) \
        / torch.tensor(clip_std).view(1, 3, 1, 1)
    torch.testing.assert_close(loaded.frames_to_input(frames), expected_input)
    with torch.no_grad():
        direct = torch.nn.functional.normalize(loaded.event_tower(expected_input).float(), dim=-1)
    node_path = loaded.embed_windows([events], SensorSize(48, 48))  # what the node and the CLI call
    eval_path, _ = embed_event_items(loaded, [{"events": events, "size": SensorSize(48, 48), "label": 0}])
    torch.testing.assert_close(node_path, direct, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(eval_path, direct, rtol=1e-5, atol=1e-6)
    step = PretrainStep(loaded, None, None, torch.Generator())  # training feeds f_E through frames_to_input too
    seen = {}

    def module(x, *rest):
        seen["input"] = x
        return torch.zeros(()), {}

    step(module, {"events": [events], "size": SensorSize(48, 48), "pixels": torch.zeros(1, 3, 48, 48)})
    torch.testing.assert_close(seen["input"], expected_input)

    # fine-tuning on a dataset with "official" frames switches to their statistics; the same representation keeps
    official = load_model(ft_load_config({}, [("checkpoint", str(path)), ("data.kind", "n-mnist"),
                                              ("data.test_list", "t"), ("data.labels_file", "l")]), "cpu")
    assert official.meta.frame["representation"] == "official" and official.meta.event_mean == [0.0] * 3
    same = load_model(ft_load_config({}, [("checkpoint", str(path))]), "cpu")  # synthetic: "paper" frames
    assert same.meta.event_mean == pytest.approx(clip_mean)
