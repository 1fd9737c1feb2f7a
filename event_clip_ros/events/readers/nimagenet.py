"""N-ImageNet ``.npz`` files, ``format = "nimagenet"``.

Key ``event_data``: a structured array with fields ``x, y, t, p`` (or
``x_pos, y_pos, timestamp, polarity`` in the "uncompressed" variant), ``t`` an
integer in us, ``p`` bool / {0, 1} / {-1, 1} (any value > 0 is ON). The sensor
is 640x480 (the ``size`` argument overrides it; events outside are dropped and
counted). Events are sorted by time (stable) when the file is not.

A compressed npz member cannot be read in parts, so the array is loaded whole
(an N-ImageNet sample holds at most a few million events, tens of MB) and then
yielded in chunks of ``chunk_events``.
"""

from __future__ import annotations

import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import EVENT_DTYPE, SensorSize
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import FileTimeGuard, split_chunks

#: Sensor of N-ImageNet (Prophesee Gen3).
NIMAGENET_SIZE = SensorSize(640, 480)
_KEY = "event_data"
#: What numpy and zipfile raise on a damaged npz (a bad zip directory, a damaged deflate stream, a bad .npy header).
_DAMAGE = (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error, KeyError, struct.error, SyntaxError,
           tokenize.TokenError)
_FIELD_NAMES = (("x", "y", "t", "p"), ("x_pos", "y_pos", "timestamp", "polarity"))


class NImageNetReader(EventReader):
    """N-ImageNet npz reader; ``size`` overrides 640x480, ``chunk_events`` bounds the chunks."""

    format = "nimagenet"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 chunk_events: int = CHUNK_EVENTS) -> None:
        super().__init__(path)
        self.size = size or NIMAGENET_SIZE
        self._chunk_events = chunk_events
        with self._open() as npz:  # reads the zip directory only, not the events
            if _KEY not in npz.files:
                raise EventFileError(f"{self.path}: npz has no {_KEY!r} array (keys: {', '.join(npz.files)})")

    def _open(self) -> np.lib.npyio.NpzFile:
        try:
            return np.load(self.path, allow_pickle=False)
        except _DAMAGE as exc:
            raise EventFileError(f"{self.path}: not a readable npz file ({_one_line(exc)})") from exc

    def _load(self) -> np.ndarray:
        with self._open() as npz:
            try:
                data = npz[_KEY]
            except _DAMAGE as exc:
                raise EventFileError(f"{self.path}: cannot read {_KEY!r} ({_one_line(exc)})") from exc
            except MemoryError:  # a damaged .npy header claiming an absurd shape
                raise EventFileError(f"{self.path}: {_KEY!r} claims more events than fit in memory") from None
        names = data.dtype.names or ()
        for fx, fy, ft, fp in _FIELD_NAMES:
            if {fx, fy, ft, fp} <= set(names):
                break
        else:
            raise EventFileError(f"{self.path}: {_KEY!r} has fields {names}, expected x, y, t, p")
        if not np.issubdtype(data[ft].dtype, np.integer):
            raise EventFileError(f"{self.path}: {_KEY!r}[{ft!r}] is {data[ft].dtype}, expected integer microseconds")
        x, y, t = data[fx].astype(np.int64), data[fy].astype(np.int64), data[ft].astype(np.int64)
        inside = (x >= 0) & (x < self.size.width) & (y >= 0) & (y < self.size.height)
        events = np.empty(int(inside.sum()), dtype=EVENT_DTYPE)
        events["t"] = t[inside]
        events["x"] = x[inside]
        events["y"] = y[inside]
        events["p"] = data[fp][inside] > 0
        if events.shape[0] < inside.shape[0]:
            self.stats.out_of_bounds += inside.shape[0] - events.shape[0]
            w, h = self.size.width, self.size.height
            self.stats.warn_once("oob", f"nimagenet: dropped events outside the {w}x{h} sensor")
        if events.shape[0] and np.any(events["t"][1:] < events["t"][:-1]):
            events = events[np.argsort(events["t"], kind="stable")]
        return events

    def chunks(self) -> Iterator[np.ndarray]:
        events = FileTimeGuard(self.stats, self.format)(self._load())  # negative times are dropped and counted
        self.stats.packets += 1
        self.stats.events += events.shape[0]
        yield from split_chunks(events, self._chunk_events)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (zipfile quotes raw file names)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
