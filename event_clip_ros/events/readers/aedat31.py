"""iniVation AEDAT 3.1 files (DVS128 Gesture), ``format = "aedat31"``.

Layout (inivation AEDAT 3.1 docs; spikingjelly ``load_aedat_v3``): ASCII
header lines starting with ``#`` (the first is ``#!AER-DAT3.1``), closed by
``#!END-HEADER\\r\\n``; then packets, each a 28-byte little-endian header
(eventType u16, eventSource u16, eventSize u32, eventTSOffset u32,
eventTSOverflow u32, eventCapacity u32, eventNumber u32, eventValid u32) and
``eventCapacity * eventSize`` bytes of events. Polarity events (type 1) are
8 bytes: u32 data with ``x = (d >> 17) & 0x7FFF``, ``y = (d >> 2) & 0x7FFF``,
``p = (d >> 1) & 1`` and bit 0 the valid flag (events the source invalidated
are left out), then u32 time, ``t = ts | (eventTSOverflow << 31)`` us. Other
packet types (frames, IMU, special events) are skipped.

Sensor size: the ``size`` argument, else ``sizeX`` / ``sizeY`` (or
``dvsSizeX`` / ``dvsSizeY``) in the header, else the camera named in
``#Source N: <camera>`` (:data:`SOURCE_SIZES`), else DVS128's 128x128.

Damage: packet sizes are checked against the file (a cut is ``truncated_bytes``),
events outside the sensor are dropped and counted, and events whose time is
negative, going back or jumping ahead are dropped and counted
(:class:`~.streaming.FileTimeGuard`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..types import EVENT_DTYPE, SensorSize
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import DEFAULT_BLOCK_BYTES, FileTimeGuard, TimeUnwrapper, drop_out_of_bounds, note_truncated, rechunk

MAGIC = b"#!AER-DAT3"
_END_HEADER = b"#!END-HEADER"
_MAX_HEADER_BYTES = 16 << 20
_PACKET_HEADER = struct.Struct("<HHIIIIII")
_POLARITY_TYPE = 1
_POLARITY = np.dtype([("data", "<u4"), ("ts", "<u4")])

#: Default sensor (DVS128, the DVS Gesture camera).
DVS128_SIZE = SensorSize(128, 128)
#: Sensor size by the camera named in ``#Source N: <camera>`` (first match wins).
SOURCE_SIZES: tuple[tuple[str, SensorSize], ...] = (
    ("DVS128", DVS128_SIZE),
    ("DAVIS240", SensorSize(240, 180)),
    ("DAVIS346", SensorSize(346, 260)),
)
_SIZE_KEYS = (("dvsSizeX", "dvsSizeY"), ("sizeX", "sizeY"))


def _header_size(text: str) -> SensorSize | None:
    for key_x, key_y in _SIZE_KEYS:
        mx = re.search(rf"\b{key_x}\D{{0,40}}?(\d+)", text)
        my = re.search(rf"\b{key_y}\D{{0,40}}?(\d+)", text)
        if mx and my:
            return SensorSize(int(mx.group(1)), int(my.group(1)))
    source = re.search(r"^#Source \d+:\s*(\S+)", text, re.MULTILINE)
    if source:
        for name, size in SOURCE_SIZES:
            if source.group(1).upper().startswith(name):
                return size
    return None


class Aedat31Reader(EventReader):
    """AEDAT 3.1 reader (polarity events only); ``size`` overrides the header's geometry."""

    format = "aedat31"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES, chunk_events: int = CHUNK_EVENTS) -> None:
        super().__init__(path)
        self._block_bytes = block_bytes
        self._chunk_events = chunk_events
        self.header, self._data_offset = self._read_header()
        self.size = size or _header_size(self.header) or DVS128_SIZE

    def _read_header(self) -> tuple[str, int]:
        lines: list[bytes] = []
        offset = 0
        with open(self.path, "rb") as f:
            first = f.readline(256)
            if not first.startswith(MAGIC):
                raise EventFileError(f"{self.path}: not an AEDAT 3.x file (no {MAGIC.decode()} line)")
            offset += len(first)
            while offset < _MAX_HEADER_BYTES:
                line = f.readline(1 << 16)
                if not line.startswith(b"#"):
                    break
                offset += len(line)
                if line.startswith(_END_HEADER):
                    return b"".join([first, *lines]).decode("latin-1"), offset
                lines.append(line)
        raise EventFileError(f"{self.path}: AEDAT 3.x header has no #!END-HEADER line")

    def chunks(self) -> Iterator[np.ndarray]:
        yield from rechunk(self._packets(), self._chunk_events)

    def _packets(self) -> Iterator[np.ndarray]:
        """Yield the events of each polarity packet (big packets in blocks of ``block_bytes``)."""
        stats = self.stats
        unwrap = TimeUnwrapper(None, stats, self.format)
        guard = FileTimeGuard(stats, self.format)
        file_bytes = self.path.stat().st_size
        with open(self.path, "rb") as f:
            f.seek(self._data_offset)
            while head := f.read(_PACKET_HEADER.size):
                if len(head) < _PACKET_HEADER.size:
                    note_truncated(stats, len(head), self.format)
                    return
                ev_type, _src, ev_size, _ts_off, ts_overflow, capacity, number, _valid = _PACKET_HEADER.unpack(head)
                payload = capacity * ev_size
                available = file_bytes - f.tell()
                if ev_type != _POLARITY_TYPE or ev_size != _POLARITY.itemsize:
                    if ev_type == _POLARITY_TYPE:
                        stats.bad_packets += 1
                        stats.warn_once("size", f"aedat31: skipped polarity packets with event size {ev_size} (not 8)")
                    if payload > available:
                        note_truncated(stats, available, self.format)
                        return
                    f.seek(payload, 1)
                    continue
                stats.packets += 1
                present = min(number, capacity, available // ev_size)  # whole records in the file
                for raw in self._read_records(f, present):
                    yield self._decode(raw, ts_overflow, unwrap, guard)
                if payload > available:
                    note_truncated(stats, available - present * ev_size, self.format)
                    return
                f.seek(payload - present * ev_size, 1)

    def _read_records(self, f: BinaryIO, n: int) -> Iterator[np.ndarray]:
        """Yield ``n`` polarity records from ``f`` in reads of at most ``block_bytes``."""
        per_read = max(1, self._block_bytes // _POLARITY.itemsize)
        while n > 0:
            k = min(n, per_read)
            yield np.frombuffer(f.read(k * _POLARITY.itemsize), dtype=_POLARITY)
            n -= k

    def _decode(self, raw: np.ndarray, ts_overflow: int, unwrap: TimeUnwrapper, guard: FileTimeGuard) -> np.ndarray:
        data = raw["data"]
        valid = (data & 1).astype(bool)
        if not valid.all():
            raw, data = raw[valid], data[valid]
        events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
        events["t"] = unwrap(raw["ts"].astype(np.int64) | (ts_overflow << 31))
        events["x"] = (data >> 17) & 0x7FFF
        events["y"] = (data >> 2) & 0x7FFF
        events["p"] = (data >> 1) & 1
        events = guard(drop_out_of_bounds(events, self.size, self.stats, self.format))
        self.stats.events += events.shape[0]
        return events
