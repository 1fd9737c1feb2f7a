"""Items in batches: the one batching mechanism of the project (a base module every layer may use).

Event windows, video segments, texts, images and dataset items all reach the
model in batches of at most ``batch_size``; :func:`batched` cuts any iterable
(lazily, so a recording or a video is read as it is embedded) and, with
``key``, starts a new batch where the key changes (windows of one sensor size
per batch).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], batch_size: int, key: Callable[[T], Hashable] | None = None) -> Iterator[list[T]]:
    """Consecutive ``items`` in lists of at most ``batch_size`` (>= 1), in order, never empty.

    With ``key``, a list also ends where ``key(item)`` differs from its first item's.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    batch: list[T] = []
    batch_key: Hashable = None
    for item in items:
        item_key = key(item) if key is not None else None
        if batch and (len(batch) == batch_size or item_key != batch_key):
            yield batch
            batch = []
        if not batch:
            batch_key = item_key
        batch.append(item)
    if batch:
        yield batch
