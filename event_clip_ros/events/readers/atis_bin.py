"""N-MNIST / N-Caltech101 ATIS ``.bin`` files, ``format = "atis_bin"``.

No header; 5-byte records (Orchard et al.): byte 0 = x, byte 1 = y, byte 2
bit 7 = polarity (1 = ON), then a 23-bit big-endian time in us from byte 2
bits 6-0, byte 3 and byte 4. The 23-bit time wraps after 8.4 s and is
unwrapped (dataset samples last about 0.3 s, so it normally never does).

Sensor size: the ``size`` argument, else N-MNIST's 34x34, grown to the largest
x / y in the file plus one when the file has coordinates beyond it (found by a
first pass over the file in blocks). N-Caltech101 samples are each cropped
differently (up to 240x180), so pass ``size=SensorSize(240, 180)`` to put every
N-Caltech101 sample on the same canvas.

Damage cannot be told from data in a format without header or checksum, except
in time: events whose time is going back or jumping ahead are dropped and
counted (:class:`~.streaming.FileTimeGuard`), so what the
reader yields is always in time order; a partial last record is counted in
``truncated_bytes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import EVENT_DTYPE, DecodeStats, SensorSize
from .base import EventReader
from .streaming import DEFAULT_BLOCK_BYTES, FileTimeGuard, TimeUnwrapper, account_block, iter_record_blocks, split_chunks

#: Sensor of N-MNIST, the default when every coordinate fits it.
NMNIST_SIZE = SensorSize(34, 34)
_RECORD_BYTES = 5
_TIME_BITS = 23


class AtisBinReader(EventReader):
    """ATIS ``.bin`` reader; ``size`` overrides the fitted size, ``block_bytes`` the read size."""

    format = "atis_bin"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(path)
        self._block_bytes = block_bytes
        self.size = size or self._fit_size()

    def _blocks(self, stats: DecodeStats | None) -> Iterator[np.ndarray]:
        return iter_record_blocks(self.path, 0, _RECORD_BYTES, self._block_bytes, stats, self.format)

    def _fit_size(self) -> SensorSize:
        """34x34, or larger when the file has coordinates beyond it (first pass over the file)."""
        width, height = NMNIST_SIZE.width, NMNIST_SIZE.height
        for rec in self._blocks(None):
            width = max(width, int(rec[:, 0].max()) + 1)
            height = max(height, int(rec[:, 1].max()) + 1)
        return SensorSize(width, height)

    def chunks(self) -> Iterator[np.ndarray]:
        unwrap = TimeUnwrapper(_TIME_BITS, self.stats, self.format)
        guard = FileTimeGuard(self.stats, self.format)
        for rec in self._blocks(self.stats):
            b2 = rec[:, 2].astype(np.uint32)
            raw_t = ((b2 & 0x7F) << 16) | (rec[:, 3].astype(np.uint32) << 8) | rec[:, 4]
            events = np.empty(rec.shape[0], dtype=EVENT_DTYPE)
            events["t"] = unwrap(raw_t)
            events["x"] = rec[:, 0]
            events["y"] = rec[:, 1]
            events["p"] = b2 >> 7
            yield from split_chunks(account_block(events, self.size, self.stats, self.format, guard))
