"""Prophesee DAT files (N-Cars and other ATIS / Gen1 recordings), ``format = "dat"``.

Layout (Prophesee ``dat_events_tools``): ASCII ``%`` header lines; when there
is a header, 2 bytes follow (event type, event size = 8); then one record per
event, two little-endian uint32: ``t`` (us) and ``addr`` with
``x = addr & 0x3FFF``, ``y = (addr >> 14) & 0x3FFF``, ``p = (addr >> 28) & 1``.
Event types 0 (Event2D) and 12 (EventCD) are CD events; other types (triggers)
are refused. The 32-bit time wraps after 71.6 min and is unwrapped.

Sensor size: the ``size`` argument, else ``% geometry WxH`` or ``% Width`` /
``% Height`` from the header, else (N-Cars files have none) the largest x and
y in the file plus one, found by a first pass over the file in blocks. That
fitted size is the smallest sensor that holds every event, not the camera's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import EVENT_DTYPE, SensorSize
from .base import EventFileError, EventReader
from .percent_header import read_percent_header
from .streaming import DEFAULT_BLOCK_BYTES, TimeUnwrapper, account_block, iter_record_blocks, split_chunks

_RECORD = np.dtype([("t", "<u4"), ("addr", "<u4")])
_CD_TYPES = (0, 12)  # Event2D, EventCD: both (t, addr) with the layout above


class DatReader(EventReader):
    """Prophesee DAT reader; ``size`` overrides the geometry, ``block_bytes`` the read size."""

    format = "dat"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(path)
        self._block_bytes = block_bytes
        header = read_percent_header(self.path)
        self.header = header
        self._data_offset = header.data_offset
        if header.lines:  # files with a header state the event type and size
            with open(self.path, "rb") as f:
                f.seek(header.data_offset)
                type_size = f.read(2)
            if len(type_size) < 2:
                raise EventFileError(f"{self.path}: DAT file ends after its header (no event type/size bytes)")
            ev_type, ev_size = type_size
            if ev_size != _RECORD.itemsize:
                raise EventFileError(f"{self.path}: DAT event size {ev_size} is not supported (only 8-byte CD events)")
            if ev_type not in _CD_TYPES:
                raise EventFileError(f"{self.path}: DAT event type {ev_type} is not CD events (types 0 and 12 are)")
            self._data_offset += 2
        self.size = size or header.geometry() or self._fit_size()

    def _fit_size(self) -> SensorSize:
        """Smallest sensor holding every event (first pass over the file)."""
        max_x = max_y = -1
        for block in iter_record_blocks(self.path, self._data_offset, 8, self._block_bytes, None, self.format):
            addr = block.view(_RECORD)[:, 0]["addr"]
            max_x = max(max_x, int((addr & 0x3FFF).max()))
            max_y = max(max_y, int(((addr >> 14) & 0x3FFF).max()))
        return SensorSize(max_x + 1, max_y + 1) if max_x >= 0 else SensorSize(1, 1)

    def chunks(self) -> Iterator[np.ndarray]:
        unwrap = TimeUnwrapper(32, self.stats, self.format)
        for block in iter_record_blocks(self.path, self._data_offset, 8, self._block_bytes, self.stats, self.format):
            rec = block.view(_RECORD)[:, 0]
            addr = rec["addr"]
            events = np.empty(rec.shape[0], dtype=EVENT_DTYPE)
            events["t"] = unwrap(rec["t"])
            events["x"] = addr & 0x3FFF
            events["y"] = (addr >> 14) & 0x3FFF
            events["p"] = (addr >> 28) & 1
            yield from split_chunks(account_block(events, self.size, self.stats, self.format))
