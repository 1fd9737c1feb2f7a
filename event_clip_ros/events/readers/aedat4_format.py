"""The AEDAT 4.0 container, parsed here (bounds-checked, every loop advancing) instead of by dv-processing.

Layout (iniVation "AEDAT 4.0" docs, dv-processing ``io/`` sources), little-endian:

* ``#!AER-DAT4.0\\r\\n``, then int32 ``n`` and ``n`` bytes of the IOHeader flatbuffer
  (identifier ``IOHE``): compression (int32: 0 none, 1 LZ4, 2 LZ4 high, 3 Zstd, 4 Zstd
  high), ``dataTablePosition`` (int64 byte offset of the packet index, -1 when the
  recorder did not finish) and ``infoNode``, an XML text naming each stream (its id,
  ``typeIdentifier`` -- ``EVTS`` for events -- and ``sizeX`` / ``sizeY``);
* packets, back to back: int32 stream id, int32 size, then ``size`` bytes: one
  size-prefixed flatbuffer, compressed as a whole (one LZ4 or Zstd frame);
* at ``dataTablePosition``, the packet index (a compressed flatbuffer ``FTAB``), which
  is not needed: packets are read in file order, so a file cut short (no index)
  still gives every packet before the cut.

An event packet (identifier ``EVTS``) is one vector of 16-byte structs: int64 time
(us), int16 x, int16 y, uint8 polarity and 3 padding bytes.

dv-processing's reader trusts the index and the sizes in the file: on damaged
files it can loop for ever inside C++ (no timeout can stop it from Python), which
is why the container is parsed here. Damage is met as :class:`PacketError` (one
packet is skipped) or, in the header, :class:`EventFileError`.
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..limits import DEFAULT_LIMITS
from ..types import SensorSize
from .base import EventFileError
from .compression import CompressionError
from .compression import decompress as decompress_frame

MAGIC = b"#!AER-DAT4"
VERSION_LINE = b"#!AER-DAT4.0\r\n"
COMPRESSIONS = {0: "none", 1: "lz4", 2: "lz4", 3: "zstd", 4: "zstd"}
EVENT_TYPE = "EVTS"
#: One event as stored in an event packet (flatbuffers struct, 16 bytes with padding).
EVENT_RECORD = np.dtype({"names": ["t", "x", "y", "p"], "formats": ["<i8", "<i2", "<i2", "u1"],
                         "offsets": [0, 8, 10, 12], "itemsize": 16})
#: Largest IOHeader accepted (the XML stream description is a few KB).
MAX_HEADER_BYTES = 16 << 20
#: Largest decompressed packet accepted (4 Mi events); a bigger claim is damage.
MAX_PACKET_BYTES = 64 << 20
#: First bytes of a compressed packet, by compression (an uncompressed one has no fixed bytes).
_FRAME_MAGIC = {"lz4": b"\x04\x22\x4d\x18", "zstd": b"\x28\xb5\x2f\xfd"}
_PACKET_HEAD = struct.Struct("<ii")
_RESYNC_WINDOW = 1 << 20


class PacketError(ValueError):
    """One packet that cannot be decoded (bad compression or flatbuffer); the next one can be."""


@dataclass(frozen=True)
class Aedat4Header:
    """What the file header says: compression, index position, streams, and where packets start."""

    compression: str  #: "none", "lz4" or "zstd"
    data_table_position: int  #: byte offset of the packet index, -1 when absent
    event_stream: int  #: id of the (first) event stream
    size: SensorSize  #: its sensor size
    data_offset: int  #: byte offset of the first packet
    stream_ids: frozenset[int] = field(default_factory=frozenset)  #: ids of every declared stream


def read_header(path: Path) -> Aedat4Header:
    """Parse the version line and IOHeader; EventFileError (one line, naming ``path``) when damaged."""
    with open(path, "rb") as f:
        line = f.read(len(VERSION_LINE))
        if line != VERSION_LINE:
            raise EventFileError(f"{path}: not an AEDAT 4.0 file (first line {line[:16]!r})")
        raw_n = f.read(4)
        n = struct.unpack("<i", raw_n)[0] if len(raw_n) == 4 else -1
        if not 8 <= n <= MAX_HEADER_BYTES:
            raise EventFileError(f"{path}: AEDAT4 header size {n} is not plausible (damaged or cut short)")
        buf = f.read(n)
    if len(buf) < n:
        raise EventFileError(f"{path}: AEDAT4 file cut short inside its header")
    try:
        compression_code, table_pos, info = _io_header(buf)
    except (PacketError, struct.error) as exc:
        raise EventFileError(f"{path}: damaged AEDAT4 header ({exc})") from None
    if compression_code not in COMPRESSIONS:
        raise EventFileError(f"{path}: AEDAT4 compression {compression_code} is unknown (damaged header)")
    streams = _streams(path, info)
    events = sorted(sid for sid, (kind, _) in streams.items() if kind == EVENT_TYPE)
    if not events:
        raise EventFileError(f"{path}: AEDAT4 recording has no event stream")
    size = streams[events[0]][1]
    if size is None:
        raise EventFileError(f"{path}: AEDAT4 event stream {events[0]} states no sensor size (sizeX / sizeY)")
    return Aedat4Header(COMPRESSIONS[compression_code], table_pos, events[0], size,
                        len(VERSION_LINE) + 4 + n, frozenset(streams))


def _io_header(buf: bytes) -> tuple[int, int, str]:
    """(compression, dataTablePosition, infoNode) of an IOHeader flatbuffer."""
    if buf[4:8] != b"IOHE":
        raise PacketError("no IOHE identifier")
    table, fields = _table(buf, _u32(buf, 0))
    compression = struct.unpack_from("<i", buf, table + fields[0])[0] if len(fields) > 0 and fields[0] else 0
    table_pos = struct.unpack_from("<q", buf, table + fields[1])[0] if len(fields) > 1 and fields[1] else -1
    info = ""
    if len(fields) > 2 and fields[2]:
        at = table + fields[2]
        start = at + _u32(buf, at)
        length = _u32(buf, start)
        if start + 4 + length > len(buf):
            raise PacketError("infoNode string runs past the header")
        info = buf[start + 4 : start + 4 + length].decode("utf-8", errors="replace")
    return compression, table_pos, info


_SIZE_KEYS = ("sizeX", "sizeY")


def _streams(path: Path, info: str) -> dict[int, tuple[str, SensorSize | None]]:
    """Stream id -> (type identifier, sensor size or None) from the infoNode XML."""
    if not info:
        raise EventFileError(f"{path}: AEDAT4 header has no stream description")
    try:
        root = ET.fromstring(info)
    except ET.ParseError as exc:
        raise EventFileError(f"{path}: damaged AEDAT4 stream description ({exc})") from None
    streams: dict[int, tuple[str, SensorSize | None]] = {}
    for node in root.iterfind("./node[@name='outInfo']/node"):
        name = node.get("name", "")
        if not re.fullmatch(r"\d{1,9}", name):
            continue
        attrs = {a.get("key"): (a.text or "").strip() for a in node.iterfind("attr")}
        info_attrs = {a.get("key"): (a.text or "").strip() for a in node.iterfind("./node[@name='info']/attr")}
        size = None
        if all(re.fullmatch(r"\d{1,5}", info_attrs.get(k, "")) for k in _SIZE_KEYS):
            width, height = int(info_attrs["sizeX"]), int(info_attrs["sizeY"])
            try:
                size = SensorSize(width, height)
                DEFAULT_LIMITS.check_size(size, "AEDAT4 event stream")
            except ValueError as exc:
                raise EventFileError(f"{path}: implausible sensor size in the AEDAT4 header ({exc})") from None
        streams[int(name)] = (attrs.get("typeIdentifier", ""), size)
    return streams


def _u32(buf: bytes | memoryview, at: int) -> int:
    if not 0 <= at <= len(buf) - 4:
        raise PacketError(f"offset {at} outside the {len(buf)}-byte buffer")
    return struct.unpack_from("<I", buf, at)[0]


def _table(buf: bytes | memoryview, table: int) -> tuple[int, tuple[int, ...]]:
    """A flatbuffer table's position and the field offsets of its vtable (bounds-checked)."""
    if not 0 <= table <= len(buf) - 4:
        raise PacketError("table offset outside the buffer")
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    if not 0 <= vtable <= len(buf) - 4:
        raise PacketError("vtable offset outside the buffer")
    vt_len, table_len = struct.unpack_from("<HH", buf, vtable)
    if vt_len < 4 or vt_len % 2 or vtable + vt_len > len(buf) or table + table_len > len(buf):
        raise PacketError("vtable or table runs past the buffer")
    fields = struct.unpack_from(f"<{(vt_len - 4) // 2}H", buf, vtable + 4)
    if any(f and not 4 <= f <= table_len - 4 for f in fields):
        raise PacketError("field offset outside its table")
    return table, fields


def event_records(buf: bytes) -> np.ndarray:
    """The events of one decompressed event packet (a read-only :data:`EVENT_RECORD` view of ``buf``)."""
    if len(buf) < 12 or _u32(buf, 0) != len(buf) - 4:
        raise PacketError("size prefix does not match the packet")
    body = memoryview(buf)[4:]
    if bytes(body[4:8]) != EVENT_TYPE.encode():
        raise PacketError(f"packet identifier {bytes(body[4:8])!r} is not {EVENT_TYPE}")
    table, fields = _table(body, _u32(body, 0))
    if not fields or not fields[0]:
        return np.empty(0, dtype=EVENT_RECORD)
    at = table + fields[0]
    vector = at + _u32(body, at)
    n = _u32(body, vector)
    if vector + 4 + n * EVENT_RECORD.itemsize > len(body):
        raise PacketError(f"event vector of {n} events runs past the packet")
    return np.frombuffer(body, dtype=EVENT_RECORD, count=n, offset=vector + 4)


def decompress(payload: bytes, compression: str) -> bytes:
    """One packet's flatbuffer, at most :data:`MAX_PACKET_BYTES` (PacketError when damaged or larger)."""
    if compression == "none":
        return payload
    try:
        out, complete = decompress_frame(payload, compression, MAX_PACKET_BYTES)
    except CompressionError as exc:
        raise PacketError(str(exc)) from None
    if not complete:
        raise PacketError(f"{compression} frame incomplete or larger than {MAX_PACKET_BYTES} bytes")
    return out


class PacketScanner:
    """Walk the packets of a file in order, checking each header before trusting its size.

    A header is plausible when its stream id is declared, its size fits before
    :attr:`end` (the index, or the end of the file) and the payload starts as a
    packet of the file's compression starts. An implausible header (damage) is
    skipped by searching forward for the next plausible one, calling
    ``on_skip(offset, bytes)`` for each such gap. Every step advances, so a scan
    ends after at most about two passes over the file.
    """

    def __init__(self, f: BinaryIO, header: Aedat4Header, file_size: int,
                 on_skip: Callable[[int, int], None] | None = None) -> None:
        self._f = f
        self._on_skip = on_skip
        self._header = header
        self._magic = _FRAME_MAGIC.get(header.compression, b"")
        #: whether the header's index position points at an index (False: cut short, unfinished or damaged)
        self.has_index = self._index_at(header.data_table_position, file_size)
        #: where packets end: the index, else the end of the file
        self.end = header.data_table_position if self.has_index else file_size
        #: bytes after the last whole packet (a file cut inside a packet), known once :meth:`packets` ends
        self.tail = 0

    def _index_at(self, pos: int, file_size: int) -> bool:
        """Whether an index (compressed, or a flatbuffer ``FTAB``) starts at ``pos``."""
        if not self._header.data_offset <= pos <= file_size - 12:
            return False
        self._f.seek(pos)
        start = self._f.read(12)
        return start.startswith(self._magic) if self._magic else start[8:12] == b"FTAB"

    def packets(self) -> Iterator[tuple[int, int, bytes]]:
        """(offset, stream id, payload) of each plausible packet, in file order."""
        pos = self._header.data_offset
        while pos + _PACKET_HEAD.size <= self.end:
            verdict, stream, size = self._judge(pos)
            if verdict == "cut" and not self.has_index:
                break  # the file ends inside this packet
            if verdict != "ok":
                nxt = self._resync(pos + 1)
                if self._on_skip is not None:
                    self._on_skip(pos, (self.end if nxt is None else nxt) - pos)
                if nxt is None:
                    return
                pos = nxt
                continue
            self._f.seek(pos + _PACKET_HEAD.size)
            yield pos, stream, self._f.read(size)
            pos += _PACKET_HEAD.size + size
        self.tail = self.end - pos

    def _judge(self, pos: int) -> tuple[str, int, int]:
        """("ok" | "cut" | "bad", stream id, size) of the packet header at ``pos``.

        "cut": a plausible header whose payload runs past :attr:`end` (in a file
        without index: the file was cut inside this packet).
        """
        self._f.seek(pos)
        head = self._f.read(_PACKET_HEAD.size + 4)
        if len(head) < _PACKET_HEAD.size:
            return "cut", -1, 0
        stream, size = _PACKET_HEAD.unpack_from(head)
        start = head[_PACKET_HEAD.size :]
        if stream not in self._header.stream_ids or size <= 0:
            return "bad", stream, size
        if size > self.end - pos - _PACKET_HEAD.size:
            known = self._magic[: len(start)] if self._magic else start
            return ("cut" if start == known else "bad"), stream, size
        if self._magic:
            return ("ok" if start == self._magic else "bad"), stream, size
        # uncompressed: a size-prefixed flatbuffer whose prefix is the packet size less 4
        ok = len(start) == 4 and struct.unpack("<I", start)[0] == size - 4
        return ("ok" if ok else "bad"), stream, size

    def _resync(self, start: int) -> int | None:
        """Offset of the next plausible packet header at or after ``start`` (None: none before :attr:`end`)."""
        probe = self._magic or EVENT_TYPE.encode()
        # where the probe bytes sit after the packet header: the payload start (compressed), or
        # the flatbuffer identifier after the size prefix and root offset (uncompressed event packets)
        lead = _PACKET_HEAD.size + (0 if self._magic else 8)
        base = start
        while base < self.end:
            self._f.seek(base)
            block = self._f.read(min(_RESYNC_WINDOW + lead + len(probe) + 16, self.end - base))
            i = block.find(probe, lead)
            while i != -1:
                head = base + i - lead
                if head >= start and self._judge(head)[0] == "ok":
                    return head
                i = block.find(probe, i + 1)
            base += _RESYNC_WINDOW
        return None
