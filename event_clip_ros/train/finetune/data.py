"""The data of a fine-tuning run: splits, candidate classes, the k-shot subset and the per-device batch.

Splits: for the synthetic glyphs, instances drawn with ``data.seed`` (training), ``+ 1`` (validation) and
``+ 2`` (test; none when ``test_samples_per_class`` is 0); for real data the list files (no test list:
the validation list is also the evaluation split, as in the official protocol). All splits share one class
list. Only the training split is augmented; a second, plain copy of it gives the few-shot prototypes the
same k-shot items without augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data import (
    ClassSplit,
    EventDataset,
    ListPaired,
    ListPairedConfig,
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

    train: EventDataset  #: training split, with the training augmentation
    shots: EventDataset  #: the same training split without augmentation (few-shot prototypes)
    val: EventDataset  #: validation split (picks the best epoch)
    test: EventDataset | None  #: test split (None: eval.json on the validation split)
    classes: list[str]  #: class names, label order
    prompts: list[str]  #: one prompt per class, label order (the dataset's template)
    classes_mode: str  #: "held-out" or "all", resolved
    candidates: list[int]  #: class indices a sample may be assigned (the order of per-class results)
    train_indices: np.ndarray  #: training items: the k-shot subset, or every item of the training classes
    val_indices: np.ndarray  #: validation items of candidate classes
    eval_indices: np.ndarray  #: evaluation-split items of candidate classes
    batch_size: int  #: per device

    @property
    def eval_split(self) -> str:
        """Name of the split eval.json reports on."""
        return "val" if self.test is None else "test"

    @property
    def eval_dataset(self) -> EventDataset:
        return self.val if self.test is None else self.test

    @property
    def candidate_names(self) -> list[str]:
        return [self.classes[c] for c in self.candidates]

    def kshot_record(self, cfg: FinetuneConfig) -> dict[str, Any]:
        """The training subset: shots, seed, items per class and, for k shots, indices and item names."""
        labels = self.train.labels()[self.train_indices]
        record: dict[str, Any] = {
            "shots": cfg.shots,
            "seed": cfg.kshot_seed if cfg.k is not None else None,
            "classes": self.classes_mode,
            "count": int(self.train_indices.size),
            "per_class": {self.classes[c]: int(n) for c, n in zip(*np.unique(labels, return_counts=True))},
        }
        if cfg.k is not None:
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
    train, shots, val, test = _splits(d, input_size)
    for name, other in (("validation", val), ("test", test)):
        if other is not None and list(other.classes) != list(train.classes):
            raise ValueError(f"the {name} split's classes differ from the training split's: use one class file")
    classes = list(train.classes)
    mode = cfg.classes or ("held-out" if cfg.k is not None and d.split is not None else "all")
    if mode == "held-out":
        if d.split is None:
            raise ValueError("classes 'held-out' needs a class split (data.split) naming the held-out classes")
        candidates = sorted(ClassSplit.from_yaml(d.split).indices(classes)[1])
    else:
        candidates = list(range(len(classes)))

    labels = train.labels()
    if cfg.k is not None:  # held-out: k of each candidate; all: k of every class the training split has
        indices = kshot_indices(labels, cfg.k, cfg.kshot_seed, classes=candidates if mode == "held-out" else None)
    else:
        indices = np.flatnonzero(np.isin(labels, candidates))
    val_indices = np.flatnonzero(np.isin(val.labels(), candidates))
    eval_indices = val_indices if test is None else np.flatnonzero(np.isin(test.labels(), candidates))
    for name, found in (("training", indices), ("validation", val_indices), ("evaluation", eval_indices)):
        if found.size == 0:
            raise ValueError(f"the {name} split has no items of the {mode} classes")

    per_rank = indices.size // world_size
    if per_rank < 1:
        raise ValueError(f"{indices.size} training items cannot be shared by {world_size} ranks")
    return FinetuneData(train=train, shots=shots, val=val, test=test, classes=classes, prompts=list(train.prompts()),
                        classes_mode=mode, candidates=candidates, train_indices=indices, val_indices=val_indices,
                        eval_indices=eval_indices, batch_size=min(requested_batch_size(cfg), per_rank))


def requested_batch_size(cfg: FinetuneConfig) -> int:
    """``optim.batch_size``, or the official per-device batch: 20 per shot, 4 with all data.

    :func:`build_data` caps it at the training items per rank (drop_last needs one full batch).
    """
    if cfg.optim.batch_size is not None:
        return cfg.optim.batch_size
    return OFFICIAL_BATCH_PER_SHOT * cfg.k if cfg.k is not None else OFFICIAL_BATCH_ALL


def _splits(d: DataSection, input_size: tuple[int, int]) -> tuple[EventDataset, EventDataset, EventDataset, EventDataset | None]:
    """(training split with augmentation, the same without, validation, test or None)."""
    augment = dataset_defaults(d.kind).augment if d.event_augment else None
    if d.kind == "synthetic":
        if d.image_size is None and input_size[0] != input_size[1]:
            raise ValueError(f"synthetic glyphs are square; the model input is {input_size[0]} x {input_size[1]}: "
                             "set data.image_size")
        side = d.image_size or input_size[0]

        def glyphs(per_class: int, seed: int, augmented: bool = False, cache: bool = False) -> SyntheticGlyphs:
            return SyntheticGlyphs(SyntheticConfig(image_size=side, classes=d.classes, samples_per_class=per_class,
                                                   seed=seed, augment=augment if augmented else None, cache=cache))

        test = glyphs(d.test_samples_per_class, d.seed + TEST_SEED_OFFSET) if d.test_samples_per_class else None
        return (glyphs(d.train_samples_per_class, d.seed, augmented=True, cache=True),
                glyphs(d.train_samples_per_class, d.seed), glyphs(d.val_samples_per_class, d.seed + VAL_SEED_OFFSET), test)
    for name in ("train_list", "val_list", "test_list", "labels_file"):
        value = getattr(d, name)
        if value is not None and not d.path(value).is_file():
            raise ValueError(f"data.{name}: {d.path(value)} does not exist")
    test = _listed(d, d.test_list, None) if d.test_list is not None else None
    return _listed(d, d.train_list, augment), _listed(d, d.train_list, None), _listed(d, d.val_list, None), test


def _listed(d: DataSection, list_file: str, augment) -> EventDataset:
    optional = {k: v for k, v in (("num_events", d.num_events), ("template", d.template)) if v is not None}
    common = dict(list_file=d.path(list_file), root=d.root, path_prefix=d.path_prefix, with_images=False, seed=d.seed,
                  augment=augment, **optional)
    if d.kind == "n-imagenet":
        return NImageNetPaired(NImageNetConfig(labels_file=d.path(d.labels_file), **common))
    return ListPaired(ListPairedConfig(kind=d.kind, classes_file=d.path(d.labels_file), **common))
