"""A training subset that follows the training loader's epoch, so per-epoch randomness survives resumes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Dataset

from .sample import EventDataset, Sample

if TYPE_CHECKING:
    from ..engine.sampler import DeterministicBatchSampler


class EpochSubset(Dataset):
    """The items of ``dataset`` at ``indices``, drawn in the epoch of the training loader's sampler.

    The engine's trainer sets each epoch on the loader's sampler (``prepare_epoch``), not on the dataset;
    this view passes it on (:meth:`EventDataset.set_epoch`), so random windows and augmentations change
    per epoch and a resumed run draws the same ones. Worker processes get a copy of the view, sampler
    included, when the epoch's iteration starts, after the sampler's epoch is set.
    """

    def __init__(self, dataset: EventDataset, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.sampler: DeterministicBatchSampler | None = None

    def follow(self, sampler: DeterministicBatchSampler) -> None:
        """Take the epoch from ``sampler`` (the training loader's) from now on."""
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        if self.sampler is not None and self.dataset.epoch != self.sampler.epoch:
            self.dataset.set_epoch(self.sampler.epoch)
        return self.dataset[int(self.indices[index])]
