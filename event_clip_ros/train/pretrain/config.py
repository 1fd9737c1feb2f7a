"""The pre-training configuration: dataclass sections read from YAML, with ``--set key=value`` overrides.

A config file (``training/presets/*.yaml``) is a mapping of sections, each a
dataclass below: ``model``, ``data``, ``frames``, ``loss``, ``optim``,
``runtime`` and, for the toy preset, ``teacher``. It is read, overridden and
checked as every run's config is (:mod:`event_clip_ros.train.config`): unknown
keys and values of the wrong type are errors naming the key, and relative paths
in a config file are taken relative to that file's folder (paths given with
``--set``: relative to the working directory).

The defaults are the official pre-training settings (paper-method.md 1.6) where
the paper has them; presets only state what differs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...events.noise import NoiseFilterConfig
from ..config import (
    ConfigError,
    DataKind,
    OptimSection,
    RunConfig,
    RuntimeSection,
    check_data_section,
    load,
    parse_override,
    path_field,
    read_preset,
    set_key,
)
from ..losses import PretrainLossConfig

#: Validation metrics a pre-training run may select by: seen-class items among the seen prompts only.
VALIDATION_METRICS = ("seen_vs_seen_top1", "seen_vs_seen_top5")
#: Dataset kinds without paired images (evaluation and fine-tuning only).
UNPAIRED_KINDS = ("n-cars", "dvs-gesture")

__all__ = [
    "ConfigError", "DataKind", "DataSection", "FramesSection", "LossSection", "ModelSection", "OptimSection",
    "PretrainConfig", "PretrainRuntime", "TeacherConfig", "apply_override", "load_config",
]


@dataclass
class ModelSection:
    """The CLIP whose image tower initialises f_E and whose frozen towers are f_I and f_T."""

    arch: str = "ViT-B-32"  #: open_clip architecture (with a teacher: the architecture the teacher is trained as)
    pretrained: str | None = "openai"  #: open_clip pretrained tag or a weights file; None: random init (unused with a teacher)
    checkpoint: str | None = path_field()  #: start from an EventClip checkpoint (ours or vitb.pt)
    frozen: list[str] = field(default_factory=list)  #: f_E parameters kept at their initial (f_I's) values: names or
    #: dotted prefixes in f_E (ModifiedResNet: ``layer4``, ``attnpool``; ViT: ``transformer.resblocks.11``, ``proj``);
    #: empty (the paper): all of f_E trains

    def __post_init__(self) -> None:
        if isinstance(self.frozen, str) or not all(isinstance(name, str) and name for name in self.frozen):
            raise ValueError(f"model.frozen must be a list of parameter names or prefixes, got {self.frozen!r}")


@dataclass
class DataSection:
    """Paired events and images; which classes are held out of pre-training."""

    kind: DataKind = "n-imagenet"
    split: str | None = path_field()  #: YAML class split (``unseen`` names); None: none held out
    event_augment: bool = True  #: the dataset's official event augmentation on training windows (none for synthetic)
    noise: NoiseFilterConfig = field(default_factory=NoiseFilterConfig)  #: real datasets: noise filters on each
    #: recording before windows are drawn, as the node's noise_* parameters (event_clip_ros/events/noise.py; off)
    num_events: int | None = None  #: events per window (None: the dataset's official number)
    # real datasets (event files and images on disk)
    train_list: str | None = path_field()  #: training list file
    val_list: str | None = path_field()  #: validation list (model selection): only its seen-class items are used, and
    #: it must not share a file with test_list; None: ``val_samples_per_class`` items per seen class are held out of
    #: the training list
    test_list: str | None = path_field()  #: the report's list (required; never used for model selection)
    labels_file: str | None = path_field()  #: class file: Labels.json / EventBind JSON
    root: str | None = path_field()  #: base of relative list entries
    path_prefix: tuple[str, str] | None = None  #: (old, new) rewrite of list entries' leading prefix
    image_root: str | None = path_field()  #: N-ImageNet: ImageNet split folder
    # synthetic glyphs (generated, no files)
    classes: str | list[str] = "glyphs"  #: class group (all, glyphs, digits, letters, shapes) or names
    train_samples_per_class: int = 100
    val_samples_per_class: int = 20  #: validation items per seen class, held out of the training data (synthetic:
    #: extra training instances; real data without val_list: drawn from the training list); 0: no validation set
    test_samples_per_class: int = 50
    seed: int = 0  #: training (and validation) instances; the test set uses seed + 2; real data: the validation draw

    def __post_init__(self) -> None:
        check_data_section(self, "the dataset's list and class files")
        if self.kind in UNPAIRED_KINDS:
            raise ValueError(f"data.kind {self.kind!r} has no paired images: pre-training needs them "
                             "(evaluate on it with training/finetune.py)")


@dataclass
class FramesSection:
    """How a window's events become f_E's input frame (events.frames.FrameConfig at the model's size)."""

    representation: Literal["paper", "official"] = "official"
    clamp: float | None = None  #: cap on per-pixel counts (official: N-Caltech101 20, N-MNIST 10)
    augment: bool = True  #: official RandomResizedCrop + horizontal flip of training frames
    crop_scale: tuple[float, float] = (0.45, 1.0)  #: area range of the crop (official crop_min 0.45)
    hflip_p: float = 0.5
    normalize: Literal["auto", "clip", "none"] = "auto"  #: input statistics of f_E: auto = CLIP's image mean/std
    #: for "paper" frames in [0, 1), none for "official" frames (already in [-1, 1)); see model.event_clip


@dataclass
class LossSection(PretrainLossConfig):
    """PretrainLossConfig (weights, temperatures, switches) plus which prompts enter L_zs."""

    zs_prompts: Literal["seen", "all"] = "seen"  #: "all" feeds the held-out classes' prompts too, as the official code


@dataclass
class PretrainRuntime(RuntimeSection):
    """:class:`RuntimeSection` plus validation and checkpoints within epochs and the metric that picks the best."""

    workers: int = 4  #: DataLoader worker processes (0: load in the training process)
    eval_every_steps: int | None = None  #: also validate every this many optimiser steps
    best_metric: str = "seen_vs_seen_top1"  #: validation metric that picks best.safetensors (higher is better); the
    #: validation set holds seen classes only, ranked among the seen prompts (runtime.selection: validation or last)
    checkpoint_every_steps: int | None = None  #: training states between epoch ends (always at epoch ends)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("eval_every_steps", "checkpoint_every_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or null")


@dataclass
class TeacherConfig:
    """The toy preset's stand-in for pretrained CLIP: a tiny CLIP trained here on glyph images and captions.

    ``classes``: "all" trains it on every class, the held-out ones included, as
    CLIP's own pre-training covered the classes the paper holds out of *event*
    pre-training (its held-out birds are ImageNet classes); "seen" leaves them
    out, which makes every zero-shot number on them chance level (the text tower
    never learnt their names).

    Captions: attribute captions keep the instances of a class apart (the paper's
    instance-level losses need that), but with them the contrastive task is
    mostly solved by size, position and font, and the tiny ViT learns glyph
    identity slowly (26% image zero-shot on 36 classes after 1,000 steps of 128).
    Captioning ``plain_caption_p`` of the items with the bare class prompt, and
    more, smaller steps (2,000 of 64), reached 67% at the same compute.
    """

    classes: Literal["all", "seen"] = "all"
    samples_per_class: int = 600  #: image-caption pairs per class (drawn with ``seed``)
    plain_caption_p: float = 0.3  #: fraction of items captioned with the plain class prompt instead
    val_samples_per_class: int = 10  #: for the image zero-shot accuracy logged per epoch
    seed: int = 1000  #: instances distinct from the event data's (data.seed, + 1, + 2)
    steps: int = 1000
    batch_size: int = 128  #: global batch (split over ranks)
    lr: float = 1e-3  #: peak AdamW LR (not scaled)
    weight_decay: float = 0.1  #: on weight matrices; none on gains, biases, embeddings, logit scale
    warmup_steps: int = 100

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.samples_per_class < 1 or self.val_samples_per_class < 1:
            raise ValueError("teacher needs steps >= 1, batch_size >= 2 and samples per class >= 1")
        if not self.lr > 0 or not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("teacher needs lr > 0 and 0 <= warmup_steps <= steps")
        if not 0.0 <= self.plain_caption_p <= 1.0:
            raise ValueError("teacher.plain_caption_p must be in [0, 1]")


@dataclass
class PretrainConfig(RunConfig):
    """Everything one pre-training run needs (see the module docstring)."""

    name: str = "pretrain"  #: run name (the report is <name>_report.json)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    frames: FramesSection = field(default_factory=FramesSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    runtime: PretrainRuntime = field(default_factory=PretrainRuntime)
    teacher: TeacherConfig | None = None  #: train a tiny CLIP first and use it as f_I / f_T (toy preset)

    def __post_init__(self) -> None:
        if self.teacher is not None and self.data.kind != "synthetic":
            raise ValueError("a teacher (tiny CLIP trained here) needs data.kind 'synthetic': it is trained on glyph captions")
        if self.teacher is not None and self.model.checkpoint is not None:
            raise ValueError("give either a teacher or model.checkpoint, not both: both define f_I and f_T")
        if self.optim.batch_size is None:
            raise ValueError("optim.batch_size must be a number for pre-training (null is for fine-tuning)")
        if self.runtime.best_metric not in VALIDATION_METRICS:
            raise ValueError(f"runtime.best_metric {self.runtime.best_metric!r} is not a validation metric "
                             f"({', '.join(VALIDATION_METRICS)}): model selection sees only seen-class validation items, "
                             "never the held-out classes or the test list")


# ------------------------------------------------------------------------------------ loading
def load_config(path: str | Path, overrides: Iterable[str] = ()) -> PretrainConfig:
    """A :class:`PretrainConfig` from a YAML file and ``key.path=value`` overrides (applied in order)."""
    return load(PretrainConfig, read_preset(path, PretrainConfig), map(parse_override, overrides), source=path)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one ``key.path=value`` in a raw pre-training config mapping (in place); the value is parsed as YAML."""
    set_key(raw, PretrainConfig, *parse_override(item))
