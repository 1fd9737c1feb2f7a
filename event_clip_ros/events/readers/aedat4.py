"""iniVation AEDAT 4.0 files, ``format = "aedat4"``.

The container is parsed by :mod:`.aedat4_format` (not by dv-processing, whose
reader can hang on damaged files): packets are read one at a time in file order,
so memory stays bounded and a file cut short (no packet index at its end) gives
every event before the cut, with a warning. Event times are int64 us as stored
(often Unix time). The sensor size is the event stream's ``sizeX`` x ``sizeY``
unless ``size`` overrides it (events outside are dropped and counted).

Damage is counted in ``stats``, never raised from the middle of the file: a
packet that does not decompress or parse is skipped (``bad_packets``); damaged
packet framing is skipped up to the next plausible packet header
(``bad_packets``); a cut inside the last packet is ``truncated_bytes``; times
going back or jumping are kept out by the stream's
:class:`~.streaming.FileTimeGuard` (``time_dropped``). A file
whose header is damaged, or with no complete event packet before a cut, is an
:class:`EventFileError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import EVENT_DTYPE, SensorSize
from .aedat4_format import MAGIC, Aedat4Header, PacketError, PacketScanner, decompress, event_records, read_header
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import FileTimeGuard, account_block, note_truncated, rechunk

__all__ = ["MAGIC", "Aedat4Reader"]


class Aedat4Reader(EventReader):
    """AEDAT 4.0 reader (the first event stream of the recording)."""

    format = "aedat4"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 chunk_events: int = CHUNK_EVENTS) -> None:
        super().__init__(path)
        self._chunk_events = chunk_events
        self.header: Aedat4Header = read_header(self.path)
        self.size = size or self.header.size
        self._check_readable()

    def _check_readable(self) -> None:
        """EventFileError for a file without index that holds no complete event packet (cut in its first one)."""
        with open(self.path, "rb") as f:
            scanner = PacketScanner(f, self.header, self.path.stat().st_size)
            if scanner.has_index:
                return
            for _, stream, _ in scanner.packets():
                if stream == self.header.event_stream:
                    return
        raise EventFileError(f"{self.path}: AEDAT4 file cut short before its first complete event packet")

    def chunks(self) -> Iterator[np.ndarray]:
        yield from rechunk(self._packets(), self._chunk_events)

    def _packets(self) -> Iterator[np.ndarray]:
        """The events of each event packet, in file order (damage counted and skipped)."""
        stats = self.stats
        guard = FileTimeGuard(stats, self.format)

        def skipped(offset: int, nbytes: int) -> None:
            stats.bad_packets += 1
            stats.warn_once("framing", f"aedat4: damaged packet framing at byte {offset}; skipped {nbytes} bytes "
                                       "to the next plausible packet")

        with open(self.path, "rb") as f:
            scanner = PacketScanner(f, self.header, self.path.stat().st_size, skipped)
            for offset, stream, payload in scanner.packets():
                if stream != self.header.event_stream:
                    continue
                try:
                    records = event_records(decompress(payload, self.header.compression))
                except (PacketError, struct.error) as exc:
                    stats.bad_packets += 1
                    stats.warn_once("packet", f"aedat4: skipped an undecodable event packet at byte {offset} ({exc})")
                    continue
                events = np.empty(records.shape[0], dtype=EVENT_DTYPE)
                events["t"] = records["t"]
                events["x"] = records["x"]  # int16: a negative x wraps to >= 32768, outside any sensor
                events["y"] = records["y"]
                events["p"] = records["p"] != 0
                yield account_block(events, self.size, stats, self.format, guard)
        if scanner.tail:
            note_truncated(stats, scanner.tail, self.format)
        if not scanner.has_index:
            stats.warn_once("index", "aedat4: no packet index at the end of the file (recording cut short or not "
                                     "closed); read the packets before the end")
