"""The fine-tuning configuration: dataclass sections read from YAML presets, with dotted-key overrides.

The layout follows ``training/pretrain.py``'s (sections ``data``, ``optim`` and ``runtime``, the same key
names where the meaning is the same; ``optim`` and ``runtime`` share their definition) and is read,
overridden and checked the same way (:mod:`event_clip_ros.train.config`): unknown keys and values of the
wrong type are errors naming the key. A preset (``training/presets/finetune/*.yaml``) may name another
with ``extends:`` (a file relative to it; the extending preset wins key by key), and a relative
``data.split`` in a preset is relative to the preset's folder (list and labels files are relative to
``data.lists_dir``). Defaults are the official fine-tune settings (paper-method.md 1.6); presets state
what differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ...events.noise import NoiseFilterConfig
from ..config import (
    DATA_KINDS,
    DataKind,
    OptimSection,
    RunConfig,
    RuntimeSection,
    check_data_section,
    load,
    parse_override,
    path_field,
    read_preset,
)

#: Dataset kinds read from their distributed folder layout (data.root), not from list files.
FOLDER_KINDS = ("n-cars", "dvs-gesture")

__all__ = [
    "DATA_KINDS", "DataSection", "FinetuneConfig", "FinetuneOptim", "FinetuneRuntime", "load_config", "load_preset",
    "parse_override",
]


@dataclass
class DataSection:
    """Which dataset, where its files are, and how training windows are augmented."""

    kind: DataKind = "synthetic"
    split: str | None = path_field()  #: class-split YAML (``unseen``: the held-out classes); None: no held-out classes
    event_augment: bool = True  #: the dataset's official event augmentation on training windows (none for synthetic)
    noise: NoiseFilterConfig = field(default_factory=NoiseFilterConfig)  #: real datasets: noise filters on each
    #: recording before windows are drawn, as the node's noise_* parameters (event_clip_ros/events/noise.py; off)
    frame_augment: bool = False  #: official RandomResizedCrop (0.45-1) + horizontal flip of training frames (N-ImageNet)
    num_events: int | None = None  #: events per window (None: the dataset's official number)
    # real datasets (event files on disk; paired images are not loaded)
    train_list: str | None = None  #: training list; the k-shot subset is drawn from it (not needed for shots=0)
    val_list: str | None = None  #: validation list (picks the best epoch; must not share a file with test_list);
    #: None: no validation, the last epoch is kept (the official best.pt)
    test_list: str | None = None  #: test list: eval.json reports on it (required; never used for selection)
    labels_file: str | None = None  #: class file: Labels.json (N-ImageNet) / EventBind's class JSON / a name list
    lists_dir: str | None = None  #: folder relative list and labels paths are taken from (None: the working directory)
    root: str | None = None  #: base of relative list entries (None: the list file's folder); n-cars, dvs-gesture and
    #: n-caltech101 without lists: the dataset folder in its distributed layout (event_clip_ros.train.data.labelled)
    test_fraction: float = 0.2  #: n-caltech101 from class folders: the test share of each class (one fixed seeded split)
    path_prefix: tuple[str, str] | None = None  #: (old, new) rewrite of list entries' leading prefix
    template: str | None = None  #: prompt template with one {} (None: the dataset's official prompt)
    # synthetic glyphs (generated, no files)
    classes: str | list[str] = "glyphs"  #: class group (all, glyphs, digits, letters, shapes) or names
    image_size: int | None = None  #: side of the glyph images and sensor (None: the model's input side)
    train_samples_per_class: int = 20  #: the k-shot subset is drawn from these
    val_samples_per_class: int = 20  #: 0: no validation split (the last epoch is kept)
    test_samples_per_class: int = 20
    seed: int = 10  #: synthetic training instances (validation, test: seed + 1, + 2; apart from pre-training's 0-2);
    #: real data: the random windows of the validation and test items

    def __post_init__(self) -> None:
        if self.folder_layout:
            if self.root is None:
                raise ValueError(f"data.kind {self.kind!r} needs data.root (--root): the dataset folder in its "
                                 "distributed layout")
            check_data_section(self, "", required=())
        else:
            check_data_section(self, "--test-list, --labels (or --root with the class folders for n-caltech101)",
                               required=("test_list", "labels_file"))
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")

    @property
    def folder_layout(self) -> bool:
        """Whether the splits come from the dataset's folders (N-Cars, DVS-Gesture, N-Caltech101 without lists)."""
        return self.kind in FOLDER_KINDS or (self.kind == "n-caltech101" and self.root is not None
                                             and self.test_list is None and self.train_list is None)

    def path(self, value: str) -> Path:
        """A list or labels path: a relative one is taken from ``lists_dir`` when that is set."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.lists_dir is None else Path(self.lists_dir).expanduser() / path


@dataclass
class FinetuneOptim(OptimSection):
    """:class:`OptimSection` at the official fine-tuning settings: base_lr 5e-6 x global batch / 256, 100 epochs."""

    base_lr: float = 5e-6  #: LR per 256 samples of global batch
    epochs: int = 100
    batch_size: int | None = None  #: per device; None: 20 per shot (official 20 / 40 / 100), 4 for all data


@dataclass
class FinetuneRuntime(RuntimeSection):
    """:class:`RuntimeSection` with a step budget; validation (with a validation split) runs at every epoch end."""

    eval_every_epochs: int = 1
    max_steps: int | None = None  #: stop after this many optimiser steps in total (continue with --resume auto)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("max_steps must be >= 1 or null")


@dataclass
class FinetuneConfig(RunConfig):
    """One fine-tuning run or evaluation (see the package docstring for the protocol)."""

    checkpoint: str | None = None  #: starting checkpoint: our .safetensors or the paper's vitb.pt / vitl.pt
    shots: int | Literal["all"] = "all"  #: training items per class, or all; 0: zero-shot only (--eval-only)
    classes: Literal["held-out", "all"] | None = None  #: candidate classes; None: held-out for k shots with a split
    kshot_seed: int = 0  #: the k-shot draw
    frame: Literal["dataset", "checkpoint"] = "dataset"  #: frame representation: the dataset's official one or the checkpoint's
    few_shot_alpha: float = 0.5  #: FewShotClassifier blend (0: text only, 1: prototypes only for classes with shots)
    data: DataSection = field(default_factory=DataSection)
    optim: FinetuneOptim = field(default_factory=FinetuneOptim)
    runtime: FinetuneRuntime = field(default_factory=FinetuneRuntime)

    def __post_init__(self) -> None:
        if self.shots != "all" and self.shots < 0:
            raise ValueError(f"shots must be >= 0 or 'all', got {self.shots}")
        if not 0.0 <= self.few_shot_alpha <= 1.0:
            raise ValueError(f"few_shot_alpha must be in [0, 1], got {self.few_shot_alpha}")

    @property
    def k(self) -> int | None:
        """Shots per class (0: zero-shot only); None for all data."""
        return None if self.shots == "all" else int(self.shots)

    def default_out(self, eval_only: bool = False) -> Path:
        """``out/finetune/<kind>-<k>shot`` (``-all``, ``-zeroshot``), with ``-eval`` for an evaluation without training."""
        shots = "all" if self.k is None else "zeroshot" if self.k == 0 else f"{self.k}shot"
        name = f"{self.data.kind}-{shots}{'-eval' if eval_only else ''}"
        return Path("out") / "finetune" / name


def load_preset(path: str | Path) -> dict[str, Any]:
    """A preset as a raw nested mapping, after its ``extends:`` chain, with ``data.split`` made absolute."""
    return read_preset(path, FinetuneConfig)


def load_config(preset: Mapping[str, Any] | None = None, overrides: Iterable[tuple[str, Any]] = ()) -> FinetuneConfig:
    """A checked :class:`FinetuneConfig` from a raw preset mapping and ``(dotted.key, value)`` overrides, in order
    (:func:`parse_override` makes one from ``--set`` text)."""
    return load(FinetuneConfig, preset or {}, overrides)
