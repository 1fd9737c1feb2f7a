"""Building blocks shared by the file readers: bounded block reads, time unwrapping, bounds.

Every reader streams its file in blocks of :data:`DEFAULT_BLOCK_BYTES` (a
constructor argument, so tests can force tiny blocks), never the whole file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..types import DecodeStats, SensorSize, concat_events
from .base import CHUNK_EVENTS

#: Bytes read from a file at a time (a few MB: large enough for speed, small enough for memory).
DEFAULT_BLOCK_BYTES = 4 << 20


def iter_record_blocks(
    path: Path,
    offset: int,
    record_bytes: int,
    block_bytes: int,
    stats: DecodeStats | None,
    fmt: str,
) -> Iterator[np.ndarray]:
    """Yield the whole fixed-size records of ``path`` from ``offset`` on, block by block.

    Each block is a read-only ``(n, record_bytes)`` uint8 array. A partial
    record at the end of the file is not yielded: its size is added to
    ``stats.truncated_bytes`` with a warning (``stats=None`` skips the
    accounting, for a pre-pass over the file).
    """
    per_read = max(1, block_bytes // record_bytes) * record_bytes
    with open(path, "rb") as f:
        f.seek(offset)
        while True:
            block = f.read(per_read)
            whole = len(block) - len(block) % record_bytes
            if whole:
                yield np.frombuffer(block, dtype=np.uint8, count=whole).reshape(-1, record_bytes)
            if len(block) < per_read:
                tail = len(block) - whole
                if tail and stats is not None:
                    note_truncated(stats, tail, fmt)
                return


def note_truncated(stats: DecodeStats, nbytes: int, fmt: str) -> None:
    """Count ``nbytes`` of an incomplete last record (a truncated file) and warn once."""
    stats.truncated_bytes += nbytes
    stats.warn_once("truncated", f"{fmt}: file ends inside a record; ignored its last {nbytes} bytes")


class TimeUnwrapper:
    """Turn a file's wrapping time counter into a monotonic int64 time (us).

    With ``wrap_bits`` set, a backward step of more than half the counter range
    is a wrap and adds ``2**wrap_bits`` to every later time. Any other backward
    step is a glitch in the file: it is counted in ``stats.time_errors`` (with a
    warning) and the event keeps its time, so the file's order is kept.
    """

    def __init__(self, wrap_bits: int | None, stats: DecodeStats, fmt: str) -> None:
        self._period = 1 << wrap_bits if wrap_bits is not None else 0
        self._stats = stats
        self._fmt = fmt
        self._offset = 0
        self._last: int | None = None

    def __call__(self, raw_t: np.ndarray) -> np.ndarray:
        t = raw_t.astype(np.int64)
        if t.size == 0:
            return t
        prev = np.empty_like(t)
        prev[0] = t[0] if self._last is None else self._last
        prev[1:] = t[:-1]
        step = t - prev
        self._last = int(t[-1])
        backward = step < 0
        if self._period:
            wraps = step < -(self._period >> 1)
            backward &= ~wraps
            t += self._offset
            if wraps.any():
                t += np.cumsum(wraps, dtype=np.int64) * self._period
                self._offset += int(wraps.sum()) * self._period
        n_back = int(backward.sum())
        if n_back:
            self._stats.time_errors += n_back
            self._stats.warn_once("time", f"{self._fmt}: time steps backwards inside the file (kept in file order)")
        return t


def drop_out_of_bounds(events: np.ndarray, size: SensorSize, stats: DecodeStats, fmt: str) -> np.ndarray:
    """Drop events outside ``size`` (counted in ``stats.out_of_bounds``, warned once)."""
    inside = (events["x"] < size.width) & (events["y"] < size.height)
    if inside.all():
        return events
    stats.out_of_bounds += int(inside.size - inside.sum())
    stats.warn_once("oob", f"{fmt}: dropped events outside the {size.width}x{size.height} sensor")
    return events[inside]


def account_block(events: np.ndarray, size: SensorSize, stats: DecodeStats, fmt: str) -> np.ndarray:
    """Drop the events outside ``size`` (:func:`drop_out_of_bounds`), then count the block
    as one packet of the events kept; return those."""
    events = drop_out_of_bounds(events, size, stats, fmt)
    stats.packets += 1
    stats.events += events.shape[0]
    return events


def split_chunks(events: np.ndarray, max_events: int = CHUNK_EVENTS) -> Iterator[np.ndarray]:
    """Yield ``events`` in slices of at most ``max_events`` (nothing for an empty array)."""
    for start in range(0, events.shape[0], max_events):
        yield events[start : start + max_events]


def rechunk(parts: Iterable[np.ndarray], max_events: int = CHUNK_EVENTS) -> Iterator[np.ndarray]:
    """Regroup a stream of (often small) event arrays into chunks of ``max_events`` (the last may be shorter)."""
    pending: list[np.ndarray] = []
    count = 0
    for part in parts:
        while part.shape[0]:
            take = part[: max_events - count]
            pending.append(take)
            count += take.shape[0]
            part = part[take.shape[0] :]
            if count == max_events:
                yield concat_events(pending)
                pending, count = [], 0
    if count:
        yield concat_events(pending)
