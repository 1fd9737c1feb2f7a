"""What every training dataset returns, and the seeding and augmentation they share.

A dataset item is a :class:`Sample` dict (the training contract):
``events`` (one sample's :data:`EVENT_DTYPE` array, t in us), ``size`` (its
:class:`SensorSize`), ``image`` (the paired uint8 (H, W) or (H, W, 3) image,
or None), ``label`` (class index into ``dataset.classes``) and ``caption``
(the text a CLIP is trained with on the image; may equal the class prompt).
Treat items as read-only: cached arrays are flagged non-writeable.

Randomness is keyed, not streamed: the generator of item ``i`` is
``numpy.random.default_rng([seed, epoch, i])``, so an item is the same
whatever the worker, process or order that loads it. Call
:meth:`EventDataset.set_epoch` at the start of each epoch (as with
``DistributedSampler.set_epoch``) to draw new windows and augmentations; the
DataLoader's workers must be re-created per epoch for it to reach them
(``persistent_workers=False``, PyTorch's default).

Problems (unreadable files, unknown classes) are counted in ``dataset.stats``
of the process that meets them (each DataLoader worker has its own copy) and
logged once per kind and process.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np
from torch.utils.data import Dataset

from ...events.types import Counters, SensorSize
from ...sim.seeding import keyed_rng
from .augment import EventAugmentConfig, augment_events

log = logging.getLogger("event_clip_ros.train")


class Sample(TypedDict):
    """One dataset item (see the module docstring)."""

    events: np.ndarray
    size: SensorSize
    image: np.ndarray | None
    label: int
    caption: str


@dataclass
class DatasetStats(Counters):
    """Problems a dataset met, counted and logged once per kind."""

    unreadable: int = 0  #: items whose event file or image could not be read (replaced by the next one)
    unknown_class: int = 0  #: list entries whose class is not in the class list (left out)
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)


class EventDataset(Dataset, ABC):
    """Base of the training datasets: class names, keyed randomness, optional event augmentation.

    Subclasses set ``classes``, ``kind`` (a key of
    :data:`~event_clip_ros.train.data.recommended.RECOMMENDED`) and implement
    :meth:`__len__`, :meth:`__getitem__`, :meth:`prompts` and :meth:`labels`, drawing
    all randomness of item ``i`` from :meth:`item_rng`.
    """

    kind: str
    classes: list[str]

    def __init__(self, seed: int, augment: EventAugmentConfig | None) -> None:
        keyed_rng(seed)  # validates the seed
        self.seed = seed
        self.augment = augment
        self.epoch = 0
        self.stats = DatasetStats()

    def set_epoch(self, epoch: int) -> None:
        """Select the random windows and augmentations of ``epoch`` (item contents stay keyed by index)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def item_rng(self, index: int, stream: int = 0) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch; ``stream`` separates independent uses."""
        return keyed_rng(self.seed, self.epoch, index, stream)

    def augment_events(self, events: np.ndarray, size: SensorSize, rng: np.random.Generator) -> np.ndarray:
        """The configured event augmentation (none when ``augment`` is None)."""
        return events if self.augment is None else augment_events(events, size, rng, self.augment)

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    @abstractmethod
    def prompts(self) -> list[str]:
        """The class prompts, in class order (for zero-shot evaluation)."""

    @abstractmethod
    def labels(self) -> np.ndarray:
        """Class index of every item (int64, length ``len(self)``)."""
