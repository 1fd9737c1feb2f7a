"""Items in batches: the one batching mechanism of the project (a base module every layer may use).

Event windows, video segments, texts, images and dataset items all reach the
model in batches of at most ``batch_size``; :func:`batched` cuts any iterable
lazily, so a recording or a video is read as it is embedded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], batch_size: int) -> Iterator[list[T]]:
    """Consecutive ``items`` in lists of at most ``batch_size`` (an integer >= 1), in order, never empty."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
