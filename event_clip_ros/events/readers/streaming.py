"""Building blocks shared by the file readers: bounded block reads, time unwrapping and checks, bounds.

Every reader streams its file in blocks of :data:`DEFAULT_BLOCK_BYTES` (a
constructor argument, so tests can force tiny blocks), never the whole file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..limits import DEFAULT_LIMITS
from ..time_guard import TimeGuard
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

    With ``wrap_bits`` set, a step back by more than half the counter range that is a
    small step forward across its top (at most ``max_jump_us`` modulo ``2**wrap_bits``) is a wrap and
    adds ``2**wrap_bits`` to every later time. Any other backward step (one garbage
    time far ahead, then the true ones) is a glitch in the file: it is counted in
    ``stats.time_errors`` (with a warning) and the event keeps its time, for the
    reader's time guard to judge; it never shifts the rest of the file.
    """

    def __init__(self, wrap_bits: int | None, stats: DecodeStats, fmt: str,
                 max_jump_us: int = DEFAULT_LIMITS.max_jump_us) -> None:
        self._period = 1 << wrap_bits if wrap_bits is not None else 0
        self._max_jump_us = max_jump_us
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
            wraps = (step < -(self._period >> 1)) & (step + self._period <= self._max_jump_us)
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


#: Events the time guard of a file reader judges at a time: a file's "packet", small like a
#: driver's, so that a forward jump confirmed by the next packets costs few events.
GUARD_PACKET_EVENTS = 4096


class FileTimeGuard:
    """The time checks of a file reader: a :class:`TimeGuard` fed packets of at most
    ``packet_events``, and time that never goes back.

    The guard drops negative times, times running back and jumps ahead that the
    following packets do not confirm (a confirmed one is a counted restart); a
    jump inside a packet is kept and counted as a restart too. A file holds one
    recording, so time going back is damage (a duplicated or
    spliced span) even when packets agree on it, which a live stream would take
    as a restart: events before the latest time already passed are dropped too
    (``time_dropped``, one ``time_errors`` incident per packet), so what a file
    reader yields is in time order.
    """

    def __init__(self, stats: DecodeStats, fmt: str, packet_events: int = GUARD_PACKET_EVENTS) -> None:
        self._guard = TimeGuard(stats, fmt)
        self._stats = stats
        self._fmt = fmt
        self._packet_events = packet_events
        self._latest: int | None = None

    def __call__(self, events: np.ndarray) -> np.ndarray:
        """The events of ``events`` (in file order) whose time is plausible, in time order."""
        kept = []
        for part in split_chunks(events, self._packet_events):
            part = self._guard(part)
            self._count_jumps(part)
            if self._latest is not None and part.shape[0] and part["t"][0] < self._latest:
                later = part["t"] >= self._latest
                self._stats.time_dropped += int(part.shape[0] - later.sum())
                self._stats.time_errors += 1
                self._stats.warn_once("time:file_back", f"{self._fmt}: dropped events earlier than the file's "
                                                        "latest time (a repeated or spliced span)")
                part = part[later]
            if part.shape[0]:
                self._latest = int(part["t"][-1])
                kept.append(part)
        return concat_events(kept) if kept else events[:0]

    def _count_jumps(self, part: np.ndarray) -> None:
        """Count forward jumps beyond the limit inside one packet (the guard judges jumps between packets
        only): a gap in the recording or a damaged span, kept, but never a silent shift."""
        if part.shape[0] < 2:
            return
        jumps = int((np.diff(part["t"]) > self._guard.limits.max_jump_us).sum())
        if jumps:
            self._stats.time_resets += jumps
            self._stats.warn_once("time:file_jump", f"{self._fmt}: time jumps ahead by more than "
                                                    f"{self._guard.limits.max_jump_us} us inside the file "
                                                    "(a gap or damaged data); counted as a restart")


def drop_out_of_bounds(events: np.ndarray, size: SensorSize, stats: DecodeStats, fmt: str) -> np.ndarray:
    """Drop events outside ``size`` (counted in ``stats.out_of_bounds``, warned once)."""
    inside = (events["x"] < size.width) & (events["y"] < size.height)
    if inside.all():
        return events
    stats.out_of_bounds += int(inside.size - inside.sum())
    stats.warn_once("oob", f"{fmt}: dropped events outside the {size.width}x{size.height} sensor")
    return events[inside]


def account_block(events: np.ndarray, size: SensorSize, stats: DecodeStats, fmt: str,
                  guard: FileTimeGuard | None = None) -> np.ndarray:
    """Drop the events outside ``size`` (:func:`drop_out_of_bounds`) and, with a ``guard``, those
    whose time is implausible (negative, going back, jumping ahead: counted by the guard), then
    count the block as one packet of the events kept; return those."""
    events = drop_out_of_bounds(events, size, stats, fmt)
    if guard is not None:
        events = guard(events)
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
