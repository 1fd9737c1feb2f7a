"""The fine-tuning configuration: dataclass sections read from YAML presets, with dotted-key overrides.

The layout follows ``training/pretrain.py``'s (sections ``data``, ``optim`` and ``runtime``, the same key
names where the meaning is the same) and is checked by the same builder
(:func:`event_clip_ros.train.pretrain.config.build`): unknown keys and values of the wrong type are errors
naming the key. A preset (``training/presets/finetune/*.yaml``) may name another with ``extends:`` (a
file relative to it; the extending preset wins key by key), and a relative ``data.split`` in a preset is
relative to the preset's folder. Defaults are the official fine-tune settings (paper-method.md 1.6);
presets state what differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ..pretrain.config import ConfigError, build

DataKind = Literal["synthetic", "n-imagenet", "n-caltech101", "n-mnist"]
DATA_KINDS: tuple[str, ...] = get_args(DataKind)


@dataclass
class DataSection:
    """Which dataset, where its files are, and how training windows are augmented."""

    kind: DataKind = "synthetic"
    split: str | None = None  #: class-split YAML (``unseen``: the held-out classes); None: no held-out classes
    event_augment: bool = True  #: the dataset's official event augmentation on training windows (none for synthetic)
    frame_augment: bool = False  #: official RandomResizedCrop (0.45-1) + horizontal flip of training frames (N-ImageNet)
    num_events: int | None = None  #: events per window (None: the dataset's official number)
    # real datasets (event files on disk; paired images are not loaded)
    train_list: str | None = None  #: training list; the k-shot subset is drawn from it
    val_list: str | None = None  #: validation list (picks the best epoch)
    test_list: str | None = None  #: test list for eval.json (None: the validation list)
    labels_file: str | None = None  #: class file: Labels.json (N-ImageNet) / EventBind's class JSON / a name list
    lists_dir: str | None = None  #: folder relative list and labels paths are taken from (None: the working directory)
    root: str | None = None  #: base of relative list entries (None: the list file's folder)
    path_prefix: tuple[str, str] | None = None  #: (old, new) rewrite of list entries' leading prefix
    template: str | None = None  #: prompt template with one {} (None: the dataset's official prompt)
    # synthetic glyphs (generated, no files)
    classes: str | list[str] = "glyphs"  #: class group (all, glyphs, digits, letters, shapes) or names
    image_size: int | None = None  #: side of the glyph images and sensor (None: the model's input side)
    train_samples_per_class: int = 20  #: the k-shot subset is drawn from these
    val_samples_per_class: int = 20
    test_samples_per_class: int = 20  #: 0: no test split (eval.json on the validation split)
    seed: int = 10  #: synthetic training instances (validation, test: seed + 1, + 2; apart from pre-training's 0-2);
    #: real data: the random windows of the validation and test items

    def __post_init__(self) -> None:
        if self.kind != "synthetic":
            missing = [n for n in ("train_list", "val_list", "labels_file") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"data.kind {self.kind!r} needs {', '.join('data.' + m for m in missing)} "
                                 "(--train-list, --val-list, --labels; see training/configs/README.md)")
        for name in ("train_samples_per_class", "val_samples_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.test_samples_per_class < 0:
            raise ValueError("test_samples_per_class must be >= 0")

    def path(self, value: str) -> Path:
        """A list or labels path: a relative one is taken from ``lists_dir`` when that is set."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.lists_dir is None else Path(self.lists_dir).expanduser() / path


@dataclass
class OptimSection:
    """AdamW and the warmup + half-cosine schedule (official fine-tuning: base_lr 5e-6 x global batch / 256)."""

    base_lr: float = 5e-6  #: LR per 256 samples of global batch
    weight_decay: float = 0.03
    exclude_from_decay: bool = False  #: no decay on biases, norms, embeddings (official: decay all)
    warmup_epochs: float = 40.0
    min_lr_ratio: float = 0.0
    epochs: int = 100
    batch_size: int | None = None  #: per device; None: 20 per shot (official 20 / 40 / 100), 4 for all data
    grad_accum_steps: int = 1
    grad_clip_norm: float | None = None

    def __post_init__(self) -> None:
        if not self.base_lr > 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("need base_lr > 0, weight_decay >= 0 and warmup_epochs >= 0")
        if self.epochs < 1 or self.grad_accum_steps < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ValueError("epochs, batch_size and grad_accum_steps must be >= 1")


@dataclass
class RuntimeSection:
    """Device, precision, data loading, seeding, and the cadence of validation, logging and checkpoints."""

    device: str = "auto"  #: auto | cpu | cuda (each torchrun rank takes cuda:LOCAL_RANK)
    precision: str = "fp32"  #: fp32 (official) | bf16 | fp16 | auto
    threads: int | None = None  #: torch CPU threads (None: torch's default)
    workers: int = 0  #: DataLoader worker processes (0: load in the training process)
    seed: int = 0  #: weights' RNG streams, data order, training windows and augmentation
    eval_every_epochs: int = 1
    eval_batch_size: int = 64
    log_every_steps: int = 10
    keep_last: int = 2  #: resumable training states kept (plus the best)
    max_steps: int | None = None  #: stop after this many optimiser steps in total (continue with --resume auto)
    progress: bool = True  #: tqdm bars
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for name in ("eval_every_epochs", "eval_batch_size", "log_every_steps", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.workers < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError("workers must be >= 0 and max_steps >= 1 or null")


@dataclass
class FinetuneConfig:
    """One fine-tuning run or evaluation (see the package docstring for the protocol)."""

    checkpoint: str | None = None  #: starting checkpoint: our .safetensors or the paper's vitb.pt / vitl.pt
    shots: int | Literal["all"] = "all"  #: training items per class, or all
    classes: Literal["held-out", "all"] | None = None  #: candidate classes; None: held-out for k shots with a split
    kshot_seed: int = 0  #: the k-shot draw
    frame: Literal["dataset", "checkpoint"] = "dataset"  #: frame representation: the dataset's official one or the checkpoint's
    few_shot_alpha: float = 0.5  #: FewShotClassifier blend (0: text only, 1: prototypes only for classes with shots)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    runtime: RuntimeSection = field(default_factory=RuntimeSection)

    def __post_init__(self) -> None:
        if self.shots != "all" and self.shots < 1:
            raise ValueError(f"shots must be >= 1 or 'all', got {self.shots}")
        if not 0.0 <= self.few_shot_alpha <= 1.0:
            raise ValueError(f"few_shot_alpha must be in [0, 1], got {self.few_shot_alpha}")

    @property
    def k(self) -> int | None:
        """Shots per class; None for all data."""
        return None if self.shots == "all" else int(self.shots)

    def default_out(self, eval_only: bool = False) -> Path:
        """``out/finetune/<kind>-<k>shot`` (or ``-all``), with ``-eval`` for an evaluation without training."""
        name = f"{self.data.kind}-{'all' if self.k is None else f'{self.k}shot'}{'-eval' if eval_only else ''}"
        return Path("out") / "finetune" / name

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as written to config.yaml and into checkpoints."""
        return _plain(dataclasses.asdict(self))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def load_preset(path: str | Path) -> dict[str, Any]:
    """A preset as a raw nested mapping, after its ``extends:`` chain, with ``data.split`` made absolute."""
    merged: dict[str, Any] = {}
    seen: list[Path] = []
    current: Path | None = Path(path)
    while current is not None:
        current = current.resolve()
        if current in seen:
            raise ConfigError(f"preset {seen[0]}: 'extends' loops back to {current}")
        seen.append(current)
        try:
            raw = yaml.safe_load(current.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read preset {current}: {exc}") from exc
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise ConfigError(f"preset {current}: expected a YAML mapping of sections, got {type(raw).__name__}")
        data = raw.get("data")
        if isinstance(data, dict) and isinstance(data.get("split"), str) and not Path(data["split"]).expanduser().is_absolute():
            data["split"] = str((current.parent / data["split"]).resolve())
        parent = raw.pop("extends", None)
        merged = _merge(merged, raw)  # the files read so far extend this one: they win
        current = None if parent is None else current.parent / str(parent)
    return merged


def load_config(preset: Mapping[str, Any] | None = None, overrides: Iterable[tuple[str, Any]] = ()) -> FinetuneConfig:
    """A checked :class:`FinetuneConfig` from a raw preset mapping and ``(dotted.key, value)`` overrides, in order."""
    raw = _merge(preset or {}, {})
    for key, value in overrides:
        node = raw
        *sections, leaf = key.split(".")
        for section in sections:
            child = node.get(section)
            if child is None:
                child = node[section] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key}: {section} is a value, not a section")
            node = child
        node[leaf] = value
    return build(FinetuneConfig, raw, "config")


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.base_lr=1e-5"`` -> ``("optim.base_lr", "1e-5")``: the value read as YAML (null, true, [a, b], 5)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. optim.epochs=20), got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {value!r} ({exc})") from exc


def _merge(top: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top`` recursively (mappings merged key by key), as new dicts."""
    out = {k: _merge(v, {}) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in top.items():
        if isinstance(value, Mapping):
            out[key] = _merge(value, out[key] if isinstance(out.get(key), Mapping) else {})
        else:
            out[key] = value
    return out
