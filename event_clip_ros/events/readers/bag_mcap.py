"""MCAP storage files read record by record, in file order, without the summary or index at their end.

An MCAP file (mcap.dev spec) is the magic ``\\x89MCAP0\\r\\n``, then records
(opcode u8, body length u64, body), the data section first and the summary
(indexes, statistics) and footer last. A recorder killed mid-write leaves no
summary or footer, and a damaged summary sends an indexed reader astray; the
data records alone hold every message, so this reader walks them in order:

* Schema (0x03) and Channel (0x04) records name topics and types;
* Message (0x05) records carry the serialised messages (channel id, log time);
* Chunk (0x06) records hold such records, compressed (``zstd``, ``lz4``) or not;
* Message index (0x07) records after a chunk count its messages per channel,
  which spares decompressing the chunk when only the counts are wanted;
* the Data end (0x0F) or Footer (0x02) record ends the data.

Damage (where the format allows, the read goes on):

* a record whose length does not fit (spliced, deleted or garbage bytes) is a
  gap: the scan resumes at the next plausible Chunk or Message record (one whose
  fields check out, see :func:`_plausible`) and reports the gap;
* inside a chunk, the same for its records; a chunk that does not decompress
  is a gap as a whole;
* the file cut short (no plausible record after the damage) ends the read, after
  the messages of a cut uncompressed chunk up to the cut.

Every step moves forward, and each byte is looked at by at most one search, so
a scan is a bounded number of passes over the file.
"""

from __future__ import annotations

import struct
from binascii import crc32
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat

from .bag_parts import SKIP, MessageItem, StorageDamage, StoragePart
from .compression import CompressionError, decompress

MAGIC = b"\x89MCAP0\r\n"
_FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _MESSAGE_INDEX, _DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0F
_ENDS = (_DATA_END, _FOOTER)
_RECORD_HEAD = struct.Struct("<BQ")
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct("<QQQI")  # message start time, end time, uncompressed size, crc
_COMPRESSIONS = ("", "zstd", "lz4")
#: Largest decompressed chunk accepted (rosbag2 writes about 1 MB chunks); a larger claim is damage.
MAX_CHUNK_BYTES = 1 << 30
_SEARCH_WINDOW = 1 << 20
_MSG_FORMATS = {"ros2msg": MessageDefinitionFormat.MSG, "ros2idl": MessageDefinitionFormat.IDL}


class RecordError(ValueError):
    """A record whose body does not parse (damage inside one record)."""


@dataclass
class _Record:
    op: int
    offset: int  #: file offset of the record (of its chunk, for records inside a chunk)
    body: bytes
    partial: bool = False  #: a chunk cut short by the end of the file (body: what is there)


@dataclass
class _Gap:
    offset: int
    nbytes: int
    reason: str


class _Body:
    """Bounds-checked reads from one record body (RecordError past its end)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RecordError(f"a field of {n} bytes runs past its record")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode("utf-8", errors="replace")


class _Source:
    """Random access to the bytes of the file (top level) or of one chunk, the same way."""

    def __init__(self, f: BinaryIO | None = None, data: bytes | None = None) -> None:
        self._f, self._data = f, data

    def read(self, pos: int, n: int) -> bytes:
        if self._data is not None:
            return self._data[pos : pos + n]
        assert self._f is not None
        self._f.seek(pos)
        return self._f.read(n)


def _chunk_header(body: bytes) -> tuple[int, int, str, int]:
    """(uncompressed size, crc, compression, offset of the records) of a Chunk record body."""
    b = _Body(body)
    _, _, size, crc = _CHUNK_HEAD.unpack(b.take(_CHUNK_HEAD.size))
    compression = b.string()
    if compression not in _COMPRESSIONS:
        raise RecordError(f"unknown chunk compression {compression[:16]!r}")
    if size > MAX_CHUNK_BYTES:
        raise RecordError(f"chunk claims {size} bytes uncompressed")
    b.u64()  # length of the records, checked by the caller against what is there
    return size, crc, compression, b.pos


def _plausible(src: _Source, pos: int, end: int, channels: Collection[int], inner: bool) -> bool:
    """Whether a Chunk (top level only) or Message record of a known channel starts at ``pos``, its
    length fitting before ``end`` and, for a message, the next record starting plausibly too."""
    head = src.read(pos, _RECORD_HEAD.size + 48)
    if len(head) < _RECORD_HEAD.size:
        return False
    op, length = _RECORD_HEAD.unpack_from(head)
    after = pos + _RECORD_HEAD.size + length
    if after > end:
        return False
    body = head[_RECORD_HEAD.size :]
    if op == _CHUNK and not inner:
        try:
            start, stop, _, _ = _CHUNK_HEAD.unpack_from(body)
            name_len = struct.unpack_from("<I", body, _CHUNK_HEAD.size)[0]
            name = body[_CHUNK_HEAD.size + 4 : _CHUNK_HEAD.size + 4 + name_len].decode("ascii")
            records = struct.unpack_from("<Q", body, _CHUNK_HEAD.size + 4 + name_len)[0]
        except (struct.error, UnicodeDecodeError):
            return False
        return (start <= stop and name_len <= 8 and name in _COMPRESSIONS
                and records == length - _CHUNK_HEAD.size - 4 - name_len - 8)
    if op != _MESSAGE or length < _MESSAGE_HEAD.size or len(body) < 2:
        return False
    if struct.unpack_from("<H", body)[0] not in channels:
        return False
    if after == end:
        return True
    nxt = src.read(after, _RECORD_HEAD.size)
    if len(nxt) < _RECORD_HEAD.size:
        return not inner  # the file ends inside the next record: truncation, this one is whole
    op2, length2 = _RECORD_HEAD.unpack(nxt)
    return 0x01 <= op2 <= 0x0F and after + _RECORD_HEAD.size + length2 <= end or (not inner and op2 == _CHUNK)


def _search(src: _Source, start: int, end: int, channels: Collection[int], inner: bool,
            chunks_only: bool = False) -> int | None:
    """Offset of the next plausible record at or after ``start`` (None: none before ``end``)."""
    probes: tuple[bytes, ...]
    if inner:
        probes = (bytes([_MESSAGE]),)
    else:
        probes = (bytes([_CHUNK]),) if chunks_only else (bytes([_CHUNK]), bytes([_MESSAGE]))
    base = start
    while base < end:
        window = src.read(base, min(_SEARCH_WINDOW, end - base))
        hits = sorted(i for probe in probes for i in _find_all(window, probe))
        for i in hits:
            if _plausible(src, base + i, end, channels, inner):
                return base + i
        base += len(window)
    return None


def _find_all(data: bytes, probe: bytes) -> Iterator[int]:
    i = data.find(probe)
    while i != -1:
        yield i
        i = data.find(probe, i + 1)


def _records(src: _Source, start: int, end: int, channels: Collection[int], inner: bool,
             base: int = 0, cut: bool = False) -> Iterator[_Record | _Gap]:
    """The records between ``start`` and ``end``, damaged spans as gaps (see the module doc).

    At the top level (``inner`` False) a record running past the end with no
    plausible record after it raises StorageDamage (the file was cut short),
    after yielding what there is of a cut chunk as a partial record (the search
    after a chunk looks for chunks only: the messages inside a cut uncompressed
    chunk are not damage). Inside a chunk it is a gap to the end, not reported
    for a ``cut`` chunk (the StorageDamage after it says so). ``base`` is the
    file offset reported for records inside a chunk.
    """
    pos = start
    while pos < end:
        head = src.read(pos, _RECORD_HEAD.size)
        where = base or pos
        op = -1
        if len(head) == _RECORD_HEAD.size:
            op, length = _RECORD_HEAD.unpack(head)
            if 0x01 <= op <= 0x0F and length <= end - pos - _RECORD_HEAD.size:
                yield _Record(op, where, src.read(pos + _RECORD_HEAD.size, length))
                pos += _RECORD_HEAD.size + length
                if op in _ENDS and not inner:
                    return
                continue
        nxt = _search(src, pos + 1, end, channels, inner, chunks_only=op == _CHUNK)
        if nxt is not None:
            yield _Gap(where, nxt - pos, f"damaged records at byte {where}: skipped {nxt - pos} bytes")
            pos = nxt
            continue
        if inner:
            if not cut:
                yield _Gap(where, end - pos, f"chunk at byte {where} damaged: skipped its last {end - pos} bytes")
            return
        if op == _CHUNK:
            yield _Record(op, pos, src.read(pos + _RECORD_HEAD.size, end - pos), partial=True)
        raise StorageDamage(f"the file ends inside the record at byte {pos} (cut short, or damage up to its end)")


def _chunk_content(record: _Record, channels: Collection[int]) -> Iterator[_Record | _Gap]:
    """The records inside a Chunk record (damage as gaps; a cut chunk up to the cut)."""
    try:
        size, crc, compression, at = _chunk_header(record.body)
    except (RecordError, struct.error) as exc:
        yield _Gap(record.offset, len(record.body), f"chunk at byte {record.offset} unreadable ({exc})")
        return
    data = record.body[at:]
    if compression:
        try:
            data = _decompress(data, compression, size)
        except RecordError as exc:
            yield _Gap(record.offset, len(record.body), f"chunk at byte {record.offset} skipped ({exc})")
            return
    intact = len(data) == size and not record.partial and (not crc or crc32(data) == crc)
    if not intact and compression and not record.partial:
        yield _Gap(record.offset, len(record.body),
                   f"chunk at byte {record.offset} skipped (size or checksum mismatch)")
        return
    yield from _records(_Source(data=data), 0, len(data), channels, inner=True, base=record.offset,
                        cut=record.partial)


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    """A chunk's records, at most ``size`` bytes (a cut frame gives what it holds); RecordError when damaged."""
    try:
        return decompress(data, compression, size)[0]
    except CompressionError as exc:
        raise RecordError(str(exc)) from None


class McapScan(StoragePart):
    """One MCAP file read in record order (see the module doc); ROS 2 CDR messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "rb")
        try:
            self._size = path.stat().st_size
            if self._f.read(len(MAGIC)) != MAGIC:
                raise StorageDamage("not an MCAP file (bad magic)")
            self._schemas: dict[int, tuple[str, str, str]] = {}  # id -> (name, encoding, definition)
            self._channels: dict[int, tuple[str, int, str]] = {}  # id -> (topic, schema id, message encoding)
            #: why the data section ended early (None: read to its end)
            self.damage: str | None = None
            counts = self._scan_meta()
        except BaseException:
            self._f.close()
            raise
        self.connections = self._connections(counts)

    # --- metadata pass -------------------------------------------------------------------------

    def _scan_meta(self) -> dict[int, int]:
        """Schemas, channels, message counts per channel and the log-time span, in one pass.

        A chunk is decompressed only when the message index records after it do
        not give its counts or name a channel not seen yet.
        """
        counts: dict[int, int] = defaultdict(int)
        times = [2**63 - 1, -1]
        pending: _Record | None = None  # the last chunk, until the message indexes after it are seen
        indexed: dict[int, int] = {}  # channel id -> messages, from those indexes

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                if indexed and all(cid in self._channels for cid in indexed):
                    for cid, n in indexed.items():
                        counts[cid] += n
                    start, stop = struct.unpack_from("<QQ", pending.body)
                    times[0], times[1] = min(times[0], start), max(times[1], stop)
                else:
                    for inner in _chunk_content(pending, self._channels):
                        if isinstance(inner, _Record):
                            self._note(inner, counts, times)
            pending = None
            indexed.clear()

        try:
            for record in _records(_Source(self._f), len(MAGIC), self._size, self._channels, inner=False):
                if isinstance(record, _Gap):
                    settle()
                elif record.op == _MESSAGE_INDEX and pending is not None:
                    try:
                        b = _Body(record.body)
                        cid = b.u16()
                        indexed[cid] = indexed.get(cid, 0) + b.u32() // 16
                    except RecordError:
                        indexed[-1] = 0  # an unreadable index: count the chunk's messages instead
                else:
                    settle()
                    if record.op == _CHUNK:
                        pending = record
                        if record.partial:
                            settle()
                    else:
                        self._note(record, counts, times)
        except StorageDamage as err:
            self.damage = str(err)
        settle()
        if times[1] >= 0:
            self.start_time, self.end_time = times[0], times[1] + 1
        return counts

    def _note(self, record: _Record, counts: dict[int, int], times: list[int]) -> None:
        """Take in a Schema, Channel or Message record (damaged ones are left out)."""
        try:
            b = _Body(record.body)
            if record.op == _SCHEMA:
                sid = b.u16()
                self._schemas.setdefault(sid, (b.string(), b.string(), b.take(b.u32()).decode("utf-8", "replace")))
            elif record.op == _CHANNEL:
                cid, sid = b.u16(), b.u16()
                self._channels.setdefault(cid, (b.string(), sid, b.string()))
            elif record.op == _MESSAGE:
                cid, _, log_time, _ = _MESSAGE_HEAD.unpack(b.take(_MESSAGE_HEAD.size))
                counts[cid] += 1
                times[0], times[1] = min(times[0], log_time), max(times[1], log_time)
        except (RecordError, struct.error):
            pass

    def _connections(self, counts: dict[int, int]) -> list[Connection]:
        out = []
        for cid, (topic, sid, encoding) in sorted(self._channels.items()):
            name, schema_encoding, text = self._schemas.get(sid, ("", "", ""))
            fmt = _MSG_FORMATS.get(schema_encoding, MessageDefinitionFormat.NONE)
            msgdef = MessageDefinition(fmt, "" if fmt is MessageDefinitionFormat.NONE else text)
            out.append(Connection(cid, topic, name, msgdef, "", counts.get(cid, 0),
                                  ConnectionExtRosbag2(encoding, []), self))
        return out

    # --- message pass --------------------------------------------------------------------------

    def messages(self, connections: Collection[Connection]) -> Iterator[MessageItem]:
        """(connection, log time ns, CDR) of ``connections``, in file order (by log time inside a chunk).

        A damaged span gives a ``(SKIP, offset, reason)`` item and the read goes
        on; the end of a cut-short data section raises :class:`StorageDamage`.
        """
        wanted = {c.id: c for c in connections if c.owner is self}
        for record in _records(_Source(self._f), len(MAGIC), self._size, self._channels, inner=False):
            if isinstance(record, _Gap):
                yield SKIP, record.offset, record.reason
            elif record.op == _MESSAGE:
                yield from self._messages([record], wanted)
            elif record.op == _CHUNK:
                yield from self._messages(_chunk_content(record, self._channels), wanted, by_time=True)

    @staticmethod
    def _messages(records, wanted: dict[int, Connection], by_time: bool = False) -> Iterator[MessageItem]:
        found: list[MessageItem] = []
        for record in records:
            if isinstance(record, _Gap):
                yield SKIP, record.offset, record.reason
            elif record.op == _MESSAGE:
                if len(record.body) < _MESSAGE_HEAD.size:
                    yield SKIP, record.offset, f"message record of {len(record.body)} bytes at byte {record.offset}"
                    continue
                cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(record.body)
                if cid in wanted:
                    found.append((wanted[cid], log_time, record.body[_MESSAGE_HEAD.size :]))
        if by_time:
            found.sort(key=lambda m: m[1])  # a chunk holds messages in arrival order (stable sort)
        yield from found

    def close(self) -> None:
        self._f.close()
