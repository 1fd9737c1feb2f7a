"""Batching of :class:`~event_clip_ros.train.data.sample.Sample` items and DataLoader seeding.

Events stay a list of per-sample arrays: frames are built on the training
device from the whole batch at once
(:func:`event_clip_ros.events.frames.build_frames_torch` with the model's
FrameConfig), and windows differ in length.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from ...events.types import SensorSize
from .sample import Sample


def collate_samples(samples: Sequence[Sample]) -> dict:
    """A batch dict with the item keys: ``events`` (list of arrays), ``size`` (the one SensorSize they share),
    ``image`` (list of arrays or None), ``label`` (LongTensor (B,)), ``caption`` (list of str).

    Raises ValueError for an empty batch or items of different sensor sizes
    (frames of one batch are built on one canvas).
    """
    if not samples:
        raise ValueError("cannot collate an empty batch")
    sizes = {s["size"] for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"items of one batch must share a sensor size, got {sorted(sizes, key=str)}")
    size: SensorSize = sizes.pop()
    return {
        "events": [s["events"] for s in samples],
        "size": size,
        "image": [s["image"] for s in samples],
        "label": torch.tensor([s["label"] for s in samples], dtype=torch.long),
        "caption": [s["caption"] for s in samples],
    }


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that seeds numpy's and Python's global generators from the worker's torch seed.

    The datasets here draw from keyed generators and do not need it; it makes
    any third-party code in a worker that uses the global generators
    reproducible (PyTorch seeds each worker's torch generator from the
    loader's ``generator``, e.g. the one ``train.engine.build_loader`` re-seeds
    per epoch).
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)

