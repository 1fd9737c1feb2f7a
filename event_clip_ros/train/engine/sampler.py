"""Deterministic, resumable data order: a batch sampler fixed by (seed, epoch) and the loader built on it.

Each epoch's order is a permutation drawn from ``seed + epoch`` (the same on
every rank), split across ranks like :class:`torch.utils.data.DistributedSampler`
(rank ``r`` takes positions ``r, r + world_size, ...``), then cut into batches.
So the batches of an epoch are a pure function of (seed, epoch, rank,
world_size), and a run resumed at batch ``b`` of an epoch starts there without
loading the ``b`` batches before it.

Randomness inside ``dataset[i]`` (augmentations) is reproduced on resume as
follows: with ``num_workers=0`` it draws from the main process's global RNGs,
which the training checkpoint restores, so a resumed run is bit-identical. With
worker processes each worker seeds its RNGs from the loader's base seed
(re-seeded here per epoch and rank) and its worker id, but which batches a worker
has produced before a resume point is not restored; for bit-identical resumes
with workers, a dataset must draw its per-item randomness from a generator seeded
by (seed, epoch, index) instead of global state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class DeterministicBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for one rank; the order depends only on (seed, epoch).

    ``drop_last=True`` drops the samples that do not divide evenly among ranks and
    the last incomplete batch (every rank then sees the same number of full
    batches, which DDP and the losses' gathers need). ``drop_last=False`` pads the
    sample list by repeating its start so every rank has the same count, and keeps
    a final smaller batch.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        if num_samples < 1 or batch_size < 1:
            raise ValueError(f"need num_samples >= 1 and batch_size >= 1, got {num_samples}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        if drop_last:
            self.per_rank = num_samples // world_size
        else:
            self.per_rank = -(-num_samples // world_size)
        if self.per_rank == 0 or (drop_last and self.per_rank < batch_size):
            raise ValueError(
                f"{num_samples} samples give no full batch of {batch_size} per rank on {world_size} rank(s) with drop_last"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order and the first batch the next iteration yields (for resuming)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch}, {start_batch}")
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        """Batches in a whole epoch (independent of ``start_batch``)."""
        return self.per_rank // self.batch_size if self.drop_last else -(-self.per_rank // self.batch_size)

    def epoch_indices(self) -> list[int]:
        """This rank's sample indices for the current epoch, in order."""
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.num_samples))
        total = self.per_rank * self.world_size
        if total > len(order):  # pad (drop_last=False): repeat from the start
            order = (order * (-(-total // len(order))))[:total]
        return order[:total][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.epoch_indices()
        for b in range(self.start_batch, len(self)):
            yield indices[b * self.batch_size : (b + 1) * self.batch_size]


def worker_base_seed(seed: int, epoch: int, rank: int) -> int:
    """The loader generator's seed for an epoch on a rank (workers derive their seeds from it)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def build_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
) -> DataLoader:
    """A DataLoader over :class:`DeterministicBatchSampler` with its own generator.

    The private generator (re-seeded per epoch by the trainer via
    :func:`prepare_epoch`) keeps the loader from drawing its worker base seed from
    the global torch RNG, which would shift the training RNG stream whenever an
    epoch is (re)started.
    """
    if not isinstance(dataset, Sized):
        raise TypeError(f"build_loader needs a dataset with a length, got {type(dataset).__name__}")
    sampler = DeterministicBatchSampler(
        len(dataset), batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        generator=torch.Generator(),
    )


def prepare_epoch(loader: DataLoader, epoch: int, start_batch: int = 0) -> None:
    """Set a :func:`build_loader` loader to yield ``epoch``'s batches from ``start_batch`` on."""
    sampler = resumable_sampler(loader)
    sampler.set_epoch(epoch, start_batch)
    loader.generator.manual_seed(worker_base_seed(sampler.seed, epoch, sampler.rank))


def resumable_sampler(loader: DataLoader) -> DeterministicBatchSampler:
    """The loader's :class:`DeterministicBatchSampler`; TypeError for a loader not made by :func:`build_loader`."""
    sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(sampler, DeterministicBatchSampler) or getattr(loader, "generator", None) is None:
        raise TypeError(
            "the training loader must come from event_clip_ros.train.engine.build_loader (a DeterministicBatchSampler "
            "and a private generator), so epochs are reproducible and a resume can start mid-epoch"
        )
    return sampler
