"""The data of a pre-training run: the seen-class training set, validation and test sets, and batching.

Training uses only the seen classes' items (the held-out classes of the split
never reach f_E during pre-training). Model selection and the report use
separate sets, without augmentation:

* validation (model selection): seen-class items only, held out of the
  training data. Synthetic glyphs: ``val_samples_per_class`` extra instances of
  each seen class drawn with the training seed (the training instances are the
  same as without validation). Real data: the seen-class items of
  ``data.val_list`` when given (it must not share a file with the test list),
  else ``val_samples_per_class`` items per seen class drawn from the training
  list with ``data.seed`` and removed from training. ``val_samples_per_class: 0``
  and no ``val_list``: no validation set (the run keeps the last epoch).
* test (the report only): new instances of every class (synthetic, ``seed + 2``)
  or ``data.test_list``; never used for selection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..data import (
    ClassSplit,
    EpochSubset,
    EventDataset,
    ListPaired,
    ListPairedConfig,
    NImageNetConfig,
    NImageNetPaired,
    Sample,
    SyntheticConfig,
    SyntheticGlyphs,
    collate_samples,
    dataset_defaults,
)
from .config import DataSection

TEST_SEED_OFFSET = 2

log = logging.getLogger(__name__)


def to_pil(image: np.ndarray) -> Image.Image:
    """A dataset image (uint8 (H, W) or (H, W, 3)) as an RGB PIL image; grayscale is replicated to 3 channels."""
    if image is None:
        raise ValueError("pre-training needs the paired image of every item, got an item without one")
    if image.ndim == 2:
        return Image.fromarray(image, mode="L").convert("RGB")
    return Image.fromarray(image, mode="RGB")


class PairedCollate:
    """:func:`collate_samples` plus ``pixels``: the images through CLIP's preprocessing, (B, 3, H, W).

    Runs in the loader's workers, so image decoding and resizing overlap the training step.
    """

    def __init__(self, preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, samples: Sequence[Sample]) -> dict:
        batch = collate_samples(samples)
        batch["pixels"] = torch.stack([self.preprocess(to_pil(image)) for image in batch["image"]])
        return batch


@dataclass
class RunData:
    """Datasets, class names and prompts of a run."""

    train: EpochSubset  #: seen-class training items (validation items removed)
    val: EpochSubset | None  #: validation (model selection): seen-class items only, without augmentation; None: none
    test: EventDataset  #: report set, all classes, with images
    classes: list[str]
    prompts: list[str]  #: one prompt per class, in class order (the dataset's official template)
    seen: list[int]
    unseen: list[int]
    val_source: str | None = None  #: what the validation set is (for the report); None: no validation set

    def seen_prompts(self) -> list[str]:
        return [self.prompts[i] for i in self.seen]


def build_run_data(data: DataSection, input_size: tuple[int, int]) -> RunData:
    """The datasets ``data`` describes; synthetic glyphs are drawn at the model's ``input_size``."""
    augment = dataset_defaults(data.kind).augment if data.event_augment else None
    per_val = data.val_samples_per_class
    train: EventDataset
    test: EventDataset
    if data.kind == "synthetic":
        if input_size[0] != input_size[1]:
            raise ValueError(f"synthetic glyphs are square; the model input is {input_size[0]} x {input_size[1]}")

        def glyphs(per_class: int, seed: int, train: bool) -> SyntheticGlyphs:
            return SyntheticGlyphs(SyntheticConfig(image_size=input_size[0], classes=data.classes, samples_per_class=per_class,
                                                   seed=seed, augment=augment if train else None, cache=True))

        # instances 0 .. train-1 of each class train, the next val ones of the seen classes validate
        pool = data.train_samples_per_class + per_val
        train = glyphs(pool, data.seed, True)
        plain = glyphs(pool, data.seed, False) if augment is not None else train
        test = glyphs(data.test_samples_per_class, data.seed + TEST_SEED_OFFSET, False)
        instance = np.arange(len(train)) // len(train.classes)
        seen, unseen = _seen_unseen(data, train.classes)
        is_seen = np.isin(train.labels(), seen)
        keep = np.flatnonzero(is_seen & (instance < data.train_samples_per_class))
        val_idx = np.flatnonzero(is_seen & (instance >= data.train_samples_per_class))
        val_source = (f"{per_val} new instances of each of the {len(seen)} seen classes (training seed {data.seed})"
                      if val_idx.size else None)
        val = EpochSubset(plain, val_idx) if val_idx.size else None
    else:
        train = _real(data, data.train_list, augment, with_images=True)
        test = _real(data, data.test_list, None, with_images=True)
        seen, unseen = _seen_unseen(data, train.classes)
        seen_items = np.flatnonzero(np.isin(train.labels(), seen))
        if data.val_list is not None:
            listed = _real(data, data.val_list, None, with_images=False)
            _same_classes(listed, train, "validation")
            val_idx = np.flatnonzero(np.isin(listed.labels(), seen))
            dropped = len(listed) - val_idx.size
            if dropped:
                log.warning("%s: left out %d validation items of held-out classes (selection sees seen classes only)",
                            data.val_list, dropped)
            _refuse_shared_files(listed, val_idx, test, "validation list", "test list")
            val = EpochSubset(listed, val_idx) if val_idx.size else None
            keep = seen_items
            val_source = f"the seen-class items of {data.val_list}" if val_idx.size else None
        else:
            val_idx = holdout_indices(train.labels(), seen, per_val, data.seed) if per_val else np.empty(0, np.int64)
            keep = np.setdiff1d(seen_items, val_idx)
            val = EpochSubset(_real(data, data.train_list, None, with_images=False), val_idx) if val_idx.size else None
            val_source = (f"up to {per_val} items per seen class drawn from {data.train_list} (seed {data.seed}) and "
                          "removed from training" if val_idx.size else None)
            if val is not None:
                _refuse_shared_files(val.dataset, val_idx, test, "validation items", "test list")
        shared = _shared_files(train, keep, test)
        if shared:
            log.warning("%d training files are also in the test list %s (e.g. %s)", len(shared), data.test_list, shared[0])
    _same_classes(test, train, "test")
    if keep.size == 0:
        raise ValueError("the training set has no items of the seen classes")
    return RunData(train=EpochSubset(train, keep), val=val, test=test, classes=list(train.classes),
                   prompts=list(train.prompts()), seen=seen, unseen=unseen, val_source=val_source)


def holdout_indices(labels: np.ndarray, classes: Sequence[int], per_class: int, seed: int) -> np.ndarray:
    """Up to ``per_class`` items of each of ``classes`` drawn with ``seed``, sorted; a class keeps at least one
    item for training (a class of n items gives min(per_class, n - 1))."""
    rng = np.random.default_rng([seed, 0x5E1EC7])
    labels = np.asarray(labels)
    picked = []
    for c in classes:
        items = np.flatnonzero(labels == c)
        take = min(per_class, max(items.size - 1, 0))
        if take:
            picked.append(rng.choice(items, size=take, replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, np.int64)


def _seen_unseen(data: DataSection, classes: Sequence[str]) -> tuple[list[int], list[int]]:
    if data.split is None:
        return list(range(len(classes))), []
    return ClassSplit.from_yaml(data.split).indices(classes)


def _same_classes(ds: EventDataset, train: EventDataset, name: str) -> None:
    if ds.classes != train.classes:
        raise ValueError(f"the {name} set's classes differ from the training set's")


def _files(ds: EventDataset, indices: Sequence[int] | np.ndarray | None = None) -> list[str]:
    entries = getattr(ds, "entries", None)
    if entries is None:
        return []
    rows = range(len(entries)) if indices is None else indices
    return [str(Path(entries[int(i)].events).resolve()) for i in rows]


def _shared_files(ds: EventDataset, indices: np.ndarray, test: EventDataset) -> list[str]:
    return sorted(set(_files(ds, indices)) & set(_files(test)))


def _refuse_shared_files(ds: EventDataset, indices: np.ndarray, test: EventDataset, name: str, test_name: str) -> None:
    shared = _shared_files(ds, indices, test)
    if shared:
        raise ValueError(f"the {name} and the {test_name} share {len(shared)} files (e.g. {shared[0]}): model selection "
                         "must not see test items; give a validation list apart from the test list, or none")


def _real(data: DataSection, list_file: str | None, augment, with_images: bool) -> EventDataset:
    # DataSection requires the list and class files of a real dataset (val_list is passed only when given)
    assert list_file is not None and data.labels_file is not None
    if data.kind == "n-imagenet":
        config = NImageNetConfig(
            list_file=list_file, labels_file=data.labels_file, root=data.root, path_prefix=data.path_prefix,
            image_root=data.image_root, with_images=with_images, seed=data.seed, augment=augment, noise=data.noise)
        return NImageNetPaired(config if data.num_events is None else replace(config, num_events=data.num_events))
    if data.kind not in ("n-caltech101", "n-mnist"):
        raise ValueError(f"data.kind {data.kind!r} has no paired images")
    return ListPaired(ListPairedConfig(
        kind=data.kind, list_file=list_file, classes_file=data.labels_file, root=data.root, path_prefix=data.path_prefix,
        num_events=data.num_events, with_images=with_images, seed=data.seed, augment=augment, noise=data.noise))


def iterate_items(dataset: Dataset, batch_size: int, workers: int) -> Iterator[Sample]:
    """Every item of ``dataset`` in order, loaded ``batch_size`` at a time by ``workers`` processes."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list, shuffle=False)
    for batch in loader:
        yield from batch
