"""The data of a pre-training run: the seen-class training set, validation and report sets, and batching.

Training uses only the seen classes' items (the held-out classes of the split
never reach f_E during pre-training). Validation (model selection) and the
report use separate sets without augmentation: for the synthetic glyphs, new
instances of every class drawn with ``data.seed + 1`` and ``data.seed + 2``;
for real data the validation list and the test list (default: the validation
list again).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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

VAL_SEED_OFFSET, TEST_SEED_OFFSET = 1, 2


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

    train: EpochSubset  #: seen-class training items
    val: EventDataset  #: validation (model selection), all classes
    test: EventDataset  #: report set, all classes, with images
    classes: list[str]
    prompts: list[str]  #: one prompt per class, in class order (the dataset's official template)
    seen: list[int]
    unseen: list[int]

    def seen_prompts(self) -> list[str]:
        return [self.prompts[i] for i in self.seen]


def build_run_data(data: DataSection, input_size: tuple[int, int]) -> RunData:
    """The datasets ``data`` describes; synthetic glyphs are drawn at the model's ``input_size``."""
    augment = dataset_defaults(data.kind).augment if data.event_augment else None
    if data.kind == "synthetic":
        if input_size[0] != input_size[1]:
            raise ValueError(f"synthetic glyphs are square; the model input is {input_size[0]} x {input_size[1]}")

        def glyphs(per_class: int, seed: int, train: bool) -> SyntheticGlyphs:
            return SyntheticGlyphs(SyntheticConfig(image_size=input_size[0], classes=data.classes, samples_per_class=per_class,
                                                   seed=seed, augment=augment if train else None, cache=True))

        train = glyphs(data.train_samples_per_class, data.seed, True)
        val = glyphs(data.val_samples_per_class, data.seed + VAL_SEED_OFFSET, False)
        test = glyphs(data.test_samples_per_class, data.seed + TEST_SEED_OFFSET, False)
    else:
        train = _real(data, data.train_list, augment, with_images=True)
        val = _real(data, data.val_list, None, with_images=False)
        test = _real(data, data.test_list or data.val_list, None, with_images=True)
    for name, ds in (("validation", val), ("test", test)):
        if ds.classes != train.classes:
            raise ValueError(f"the {name} set's classes differ from the training set's")
    if data.split is None:
        seen, unseen = list(range(len(train.classes))), []
    else:
        seen, unseen = ClassSplit.from_yaml(data.split).indices(train.classes)
    keep = np.flatnonzero(np.isin(train.labels(), seen))
    if keep.size == 0:
        raise ValueError("the training set has no items of the seen classes")
    return RunData(train=EpochSubset(train, keep), val=val, test=test, classes=list(train.classes),
                   prompts=list(train.prompts()), seen=seen, unseen=unseen)


def _real(data: DataSection, list_file: str, augment, with_images: bool) -> EventDataset:
    if data.kind == "n-imagenet":
        return NImageNetPaired(NImageNetConfig(
            list_file=list_file, labels_file=data.labels_file, root=data.root, path_prefix=data.path_prefix,
            image_root=data.image_root, with_images=with_images, seed=data.seed, augment=augment,
            **({} if data.num_events is None else {"num_events": data.num_events})))
    return ListPaired(ListPairedConfig(
        kind=data.kind, list_file=list_file, classes_file=data.labels_file, root=data.root, path_prefix=data.path_prefix,
        num_events=data.num_events, with_images=with_images, seed=data.seed, augment=augment))


def iterate_items(dataset: Dataset, batch_size: int, workers: int) -> Iterator[Sample]:
    """Every item of ``dataset`` in order, loaded ``batch_size`` at a time by ``workers`` processes."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list, shuffle=False)
    for batch in loader:
        yield from batch
