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
fitted size is the smallest sensor that holds every event, not the camera's;
coordinates beyond :data:`~event_clip_ros.events.limits.DEFAULT_LIMITS` (no
DAT-era sensor has them: damaged records) do not count, and those events are
dropped as outside the sensor.

Damage: a header line damaged or cut short, an implausible geometry or a file
ending before the type/size bytes is an :class:`EventFileError`; in the data,
events outside the sensor and events whose time is negative, going back or
jumping ahead (:class:`~.streaming.FileTimeGuard`) are dropped and counted, so
what the reader yields is always in time order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..limits import DEFAULT_LIMITS
from ..types import EVENT_DTYPE, SensorSize
from .base import EventFileError, EventReader
from .percent_header import check_header_end, read_percent_header
from .streaming import DEFAULT_BLOCK_BYTES, FileTimeGuard, TimeUnwrapper, account_block, iter_record_blocks, split_chunks

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
        # after header lines come the type byte (0 or 12, never '%'); a header-less file starts with a time
        check_header_end(self.path, header, data_starts_with_percent=not header.lines)
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
        try:
            geometry = header.geometry()
        except ValueError as exc:
            raise EventFileError(f"{self.path}: implausible DAT header ({exc})") from None
        self.size = size or geometry or self._fit_size()

    def _fit_size(self) -> SensorSize:
        """Smallest sensor holding every event within the limits (first pass over the file)."""
        max_x = max_y = -1
        limit_x, limit_y = DEFAULT_LIMITS.max_width, DEFAULT_LIMITS.max_height
        for block in iter_record_blocks(self.path, self._data_offset, 8, self._block_bytes, None, self.format):
            addr = block.view(_RECORD)[:, 0]["addr"]
            x, y = addr & 0x3FFF, (addr >> 14) & 0x3FFF
            inside = (x < limit_x) & (y < limit_y)
            if inside.any():
                max_x = max(max_x, int(x[inside].max()))
                max_y = max(max_y, int(y[inside].max()))
        return SensorSize(max_x + 1, max_y + 1) if max_x >= 0 else SensorSize(1, 1)

    def chunks(self) -> Iterator[np.ndarray]:
        unwrap = TimeUnwrapper(32, self.stats, self.format)
        guard = FileTimeGuard(self.stats, self.format)
        for block in iter_record_blocks(self.path, self._data_offset, 8, self._block_bytes, self.stats, self.format):
            rec = block.view(_RECORD)[:, 0]
            addr = rec["addr"]
            events = np.empty(rec.shape[0], dtype=EVENT_DTYPE)
            events["t"] = unwrap(rec["t"])
            events["x"] = addr & 0x3FFF
            events["y"] = (addr >> 14) & 0x3FFF
            events["p"] = (addr >> 28) & 1
            yield from split_chunks(account_block(events, self.size, self.stats, self.format, guard))
