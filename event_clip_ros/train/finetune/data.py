"""The data of a fine-tuning run: splits, target classes, the k-shot subset and the per-device batch.

Splits: for the synthetic glyphs, instances drawn with ``data.seed`` (training), ``+ 1`` (validation; none
when ``val_samples_per_class`` is 0) and ``+ 2`` (test); for real data the list files or the dataset's own
layout (:mod:`event_clip_ros.train.data.labelled`). All splits share one class list. The test split is only
reported on; the best epoch is chosen on the validation split, which must not share an item with the test
split, or, without one, is the last epoch (the official ``best.pt``). Only the training split is augmented;
a second, plain copy of it gives the few-shot prototypes the same k-shot items without augmentation.

Target classes (``classes``): the classes whose items are trained on and evaluated ("held-out": the split's
held-out classes, the official k-shot protocol; "all": every class). Every method ranks an item among
**all** the dataset's class prompts (the official ``get_acc``, the headline); with held-out targets the
N-way figure among the targets only is reported beside it as ``nway``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import (
    ClassSplit,
    DVSGesture,
    DVSGestureConfig,
    EventDataset,
    ListPaired,
    ListPairedConfig,
    NCaltech101Folders,
    NCaltech101FoldersConfig,
    NCars,
    NCarsConfig,
    NImageNetConfig,
    NImageNetPaired,
    SyntheticConfig,
    SyntheticGlyphs,
    dataset_defaults,
    kshot_indices,
)
from .config import DataSection, FinetuneConfig

#: Official per-device batch: 20 per shot (1 / 2 / 5 shots: 20 / 40 / 100), 4 with all data.
OFFICIAL_BATCH_PER_SHOT = 20
OFFICIAL_BATCH_ALL = 4
VAL_SEED_OFFSET, TEST_SEED_OFFSET = 1, 2


@dataclass
class FinetuneData:
    """Datasets, classes and item subsets of one run."""

    train: EventDataset | None  #: training split, with the training augmentation (None: zero-shot only, 0 shots)
    shots: EventDataset | None  #: the same training split without augmentation (few-shot prototypes)
    val: EventDataset | None  #: validation split (picks the best epoch; None: the last epoch is kept)
    test: EventDataset  #: test split: eval.json reports on it; never used for selection
    classes: list[str]  #: class names, label order
    prompts: list[str]  #: one prompt per class, label order (the dataset's template)
    classes_mode: str  #: "held-out" or "all", resolved
    targets: list[int]  #: the classes trained on and evaluated (the order of per-class results)
    train_indices: np.ndarray  #: training items: the k-shot subset, or every item of the target classes
    val_indices: np.ndarray  #: validation items of target classes (empty without a validation split)
    eval_indices: np.ndarray  #: test items of target classes
    batch_size: int  #: per device (0 without training items)
    val_source: str | None = None  #: what the validation split is (None: none)

    eval_split = "test"

    @property
    def eval_dataset(self) -> EventDataset:
        return self.test

    @property
    def target_names(self) -> list[str]:
        return [self.classes[c] for c in self.targets]

    @property
    def nway(self) -> bool:
        """Whether the targets are a subset of the classes (then the N-way figure is reported too)."""
        return len(self.targets) < len(self.classes)

    def kshot_record(self, cfg: FinetuneConfig) -> dict[str, Any]:
        """The training subset: shots, seed, items per class and, for k shots, indices and item names."""
        record: dict[str, Any] = {
            "shots": cfg.shots,
            "seed": cfg.kshot_seed if cfg.k else None,
            "classes": self.classes_mode,
            "count": int(self.train_indices.size),
            "per_class": {},
        }
        if self.train is None:
            return record
        labels = self.train.labels()[self.train_indices]
        record["per_class"] = {self.classes[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True))}
        if cfg.k:
            record["indices"] = [int(i) for i in self.train_indices]
            record["items"] = item_ids(self.train, self.train_indices)
        return record


def item_ids(dataset: EventDataset, indices: Sequence[int] | np.ndarray) -> list[str]:
    """Stable names of items: the event file of a list dataset, ``<kind>:seed=<s>:index=<i>`` otherwise."""
    entries = getattr(dataset, "entries", None)
    if entries is not None:
        return [str(entries[int(i)].events) for i in indices]
    return [f"{dataset.kind}:seed={dataset.seed}:index={int(i)}" for i in indices]


def build_data(cfg: FinetuneConfig, input_size: tuple[int, int], world_size: int = 1) -> FinetuneData:
    """The splits, classes, k-shot subset and per-device batch of ``cfg`` (synthetic glyphs at ``input_size``)."""
    d = cfg.data
    train, shots, val, test = _splits(d, input_size, with_train=cfg.shots != 0)
    classes = list(test.classes)
    for name, other in (("training", train), ("validation", val)):
        if other is not None and list(other.classes) != classes:
            raise ValueError(f"the {name} split's classes differ from the test split's: use one class file")
    mode = cfg.classes or ("held-out" if cfg.k and d.split is not None else "all")
    if mode == "held-out":
        if d.split is None:
            raise ValueError("classes 'held-out' needs a class split (data.split) naming the held-out classes")
        targets = sorted(ClassSplit.from_yaml(d.split).indices(classes)[1])
    else:
        targets = list(range(len(classes)))

    if train is None:
        indices = np.empty(0, np.int64)
    elif cfg.k is not None:  # held-out: k of each target; all: k of every class the training split has
        indices = kshot_indices(train.labels(), cfg.k, cfg.kshot_seed, classes=targets if mode == "held-out" else None)
    else:
        indices = np.flatnonzero(np.isin(train.labels(), targets))
    val_indices = np.flatnonzero(np.isin(val.labels(), targets)) if val is not None else np.empty(0, np.int64)
    eval_indices = np.flatnonzero(np.isin(test.labels(), targets))
    checks = [("test", eval_indices)] + ([("training", indices)] if train is not None else [])
    for name, found in checks + ([("validation", val_indices)] if val is not None else []):
        if found.size == 0:
            raise ValueError(f"the {name} split has no items of the {mode} classes")
    if val is not None:
        _refuse_shared_items(val, val_indices, test, eval_indices)
    val_source = None
    if val is not None:
        val_source = (f"{d.val_samples_per_class} instances per class drawn with seed {d.seed + VAL_SEED_OFFSET}"
                      if d.kind == "synthetic" else f"{d.val_list or 'the validation split'}")
    batch = 0
    if train is not None:
        per_rank = indices.size // world_size
        if per_rank < 1:
            raise ValueError(f"{indices.size} training items cannot be shared by {world_size} ranks")
        batch = min(requested_batch_size(cfg), per_rank)
    return FinetuneData(train=train, shots=shots, val=val, test=test, classes=classes, prompts=list(test.prompts()),
                        classes_mode=mode, targets=targets, train_indices=indices, val_indices=val_indices,
                        eval_indices=eval_indices, batch_size=batch, val_source=val_source)


def _refuse_shared_items(val: EventDataset, val_indices: np.ndarray, test: EventDataset, eval_indices: np.ndarray) -> None:
    """Model selection must not see a test item: validation and test items are compared by :func:`item_ids`."""
    if getattr(val, "entries", None) is None:
        if val.seed == test.seed and type(val) is type(test):
            raise ValueError("the validation and test splits are drawn with the same seed: they share items")
        return
    shared = sorted(set(item_ids(val, val_indices)) & set(item_ids(test, eval_indices)))
    if shared:
        raise ValueError(f"the validation and test splits share {len(shared)} items (e.g. {shared[0]}): the best "
                         "epoch must not be chosen on test items; give a separate --val-list, or none (the last "
                         "epoch is kept, as the official code does)")


def requested_batch_size(cfg: FinetuneConfig) -> int:
    """``optim.batch_size``, or the official per-device batch: 20 per shot, 4 with all data.

    :func:`build_data` caps it at the training items per rank (drop_last needs one full batch).
    """
    if cfg.optim.batch_size is not None:
        return cfg.optim.batch_size
    return OFFICIAL_BATCH_PER_SHOT * cfg.k if cfg.k is not None else OFFICIAL_BATCH_ALL


def _splits(d: DataSection, input_size: tuple[int, int], with_train: bool = True
            ) -> tuple[EventDataset | None, EventDataset | None, EventDataset | None, EventDataset]:
    """(training split with augmentation, the same without, validation or None, test); no training split for
    zero-shot only (``with_train`` False)."""
    augment = dataset_defaults(d.kind).augment if d.event_augment else None
    val: EventDataset | None
    test: EventDataset
    if d.kind == "synthetic":
        if d.image_size is None and input_size[0] != input_size[1]:
            raise ValueError(f"synthetic glyphs are square; the model input is {input_size[0]} x {input_size[1]}: "
                             "set data.image_size")
        side = d.image_size or input_size[0]

        def glyphs(per_class: int, seed: int, augmented: bool = False, cache: bool = False) -> SyntheticGlyphs:
            return SyntheticGlyphs(SyntheticConfig(image_size=side, classes=d.classes, samples_per_class=per_class,
                                                   seed=seed, augment=augment if augmented else None, cache=cache))

        val = glyphs(d.val_samples_per_class, d.seed + VAL_SEED_OFFSET) if d.val_samples_per_class else None
        test = glyphs(d.test_samples_per_class, d.seed + TEST_SEED_OFFSET)
        if not with_train:
            return None, None, val, test
        return (glyphs(d.train_samples_per_class, d.seed, augmented=True, cache=True),
                glyphs(d.train_samples_per_class, d.seed), val, test)
    if d.folder_layout:
        test = _folder_split(d, "test", None)
        if not with_train:
            return None, None, None, test
        return _folder_split(d, "train", augment), _folder_split(d, "train", None), None, test
    for name in ("train_list", "val_list", "test_list", "labels_file"):
        value = getattr(d, name)
        if value is not None and not d.path(value).is_file():
            raise ValueError(f"data.{name}: {d.path(value)} does not exist")
    if with_train and d.train_list is None:
        raise ValueError(f"data.kind {d.kind!r} needs data.train_list (--train-list) for shots; shots=0 evaluates "
                         "zero-shot only")
    val = _listed(d, d.val_list, None) if d.val_list is not None else None
    test = _listed(d, d.test_list, None)
    if not with_train:
        return None, None, val, test
    return _listed(d, d.train_list, augment), _listed(d, d.train_list, None), val, test


def _folder_split(d: DataSection, split: str, augment) -> EventDataset:
    """A split of a dataset in its distributed layout (:mod:`event_clip_ros.train.data.labelled`)."""
    optional = {k: v for k, v in (("num_events", d.num_events), ("template", d.template)) if v is not None}
    common = dict(root=d.root, split=split, seed=d.seed, augment=augment, noise=d.noise, **optional)
    if d.kind == "n-cars":
        return NCars(NCarsConfig(**common))
    if d.kind == "dvs-gesture":
        return DVSGesture(DVSGestureConfig(**common))
    return NCaltech101Folders(NCaltech101FoldersConfig(
        test_fraction=d.test_fraction, split_seed=0,  # one fixed split, whatever the k-shot draw
        classes_file=d.path(d.labels_file) if d.labels_file is not None else None, **common))


def _listed(d: DataSection, list_file: str | None, augment) -> EventDataset:
    # DataSection requires test_list and labels_file of a dataset given by lists; _splits checks train_list
    assert list_file is not None and d.labels_file is not None
    optional = {k: v for k, v in (("num_events", d.num_events), ("template", d.template)) if v is not None}
    common = dict(list_file=d.path(list_file), root=d.root, path_prefix=d.path_prefix, with_images=False, seed=d.seed,
                  augment=augment, noise=d.noise, **optional)
    if d.kind == "n-imagenet":
        return NImageNetPaired(NImageNetConfig(labels_file=d.path(d.labels_file), **common))
    if d.kind not in ("n-caltech101", "n-mnist"):
        raise ValueError(f"data.kind {d.kind!r} is not given by list files")
    return ListPaired(ListPairedConfig(kind=d.kind, classes_file=d.path(d.labels_file), **common))
