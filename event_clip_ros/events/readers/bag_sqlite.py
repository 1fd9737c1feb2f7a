"""A damaged rosbag2 SQLite3 file that rosbags refuses, read row by row up to the damage.

rosbags counts every message when it opens a file, so one damaged page anywhere
refuses the whole file, and SQLite itself refuses a file cut short (its header
promises more pages than there are). :class:`SqliteRecovery` shows SQLite the
file through :class:`WholePages` (the whole pages present, the header's page
count matching them); only the ``topics`` table must be readable, and messages
are read in row order (the order they were recorded in) until the first damaged
page, which ends the read (:class:`~.bag_parts.StorageDamage`).
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import apsw  # a dependency of rosbags
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat

from .bag_parts import SQLITE_MAGIC, MessageItem, StorageDamage, StoragePart, ros2_msgtype


class SqliteRecovery(StoragePart):
    """A damaged SQLite3 storage file read up to the damage (see the module doc); message counts are
    not known in advance (0)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._vfs = WholePages(path)
        try:
            self._db = apsw.Connection(f"file:{path}?immutable=1", vfs=self._vfs.name,
                                       flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        except apsw.Error as err:
            self._vfs.unregister()
            raise StorageDamage(f"not readable as SQLite ({err})") from err
        try:
            rows = list(self._db.execute("SELECT id, name, type, serialization_format FROM topics ORDER BY id"))
        except apsw.Error as err:
            self.close()
            raise StorageDamage(f"its topics table is unreadable ({err})") from err
        self.connections = [
            Connection(int(cid), str(name), ros2_msgtype(str(msgtype)),
                       MessageDefinition(MessageDefinitionFormat.NONE, ""), "", 0,
                       ConnectionExtRosbag2(str(fmt), []), self)
            for cid, name, msgtype, fmt in rows
        ]
        try:
            first, last = next(self._db.execute("SELECT min(timestamp), max(timestamp) FROM messages"))
            if first is not None:
                self.start_time, self.end_time = int(first), int(last) + 1
        except (apsw.Error, StopIteration, TypeError, ValueError):
            pass  # the span stays unknown

    def messages(self, connections: Collection[Connection]) -> Iterator[MessageItem]:
        wanted = {c.id: c for c in connections if c.owner is self}
        if not wanted:
            return
        rows = self._db.execute("SELECT topic_id, timestamp, data FROM messages")
        read = 0
        while True:
            try:
                topic_id, log_time, data = next(rows)
            except StopIteration:
                return
            except apsw.Error as err:
                raise StorageDamage(f"database damaged after {read} messages ({err})") from err
            read += 1
            conn = wanted.get(topic_id)
            if conn is not None and isinstance(log_time, int) and isinstance(data, bytes):
                yield conn, log_time, data

    def close(self) -> None:
        self._db.close()
        self._vfs.unregister()


class WholePages(apsw.VFS):
    """An apsw VFS (registered under a unique name; :meth:`unregister` when done) that shows SQLite
    one file as its whole pages, with the header's page count (bytes 28-31) matching them."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            head = f.read(100)
        if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
            raise StorageDamage("not an SQLite file (damaged header)")
        page_size = struct.unpack(">H", head[16:18])[0]
        self._page_size = 65536 if page_size == 1 else page_size
        if self._page_size < 512 or self._page_size & (self._page_size - 1):
            raise StorageDamage(f"SQLite header states page size {self._page_size} (damaged)")
        self._size = path.stat().st_size
        self.name = f"event-clip-whole-pages-{id(self)}"
        super().__init__(self.name, "")

    def xOpen(self, name: Any, flags: list[int]) -> apsw.VFSFile:  # noqa: N802 (apsw's name)
        return _WholePagesFile(name, flags, self._size, self._page_size)


class _WholePagesFile(apsw.VFSFile):
    def __init__(self, name: Any, flags: list[int], size: int, page_size: int) -> None:
        super().__init__("", name, flags)
        self._size = size - size % page_size
        self._pages = self._size // page_size

    def xRead(self, amount: int, offset: int) -> bytes:  # noqa: N802
        data = super().xRead(amount, offset)
        if offset <= 28 and offset + len(data) >= 32:  # the header's page count
            patched = bytearray(data)
            patched[28 - offset : 32 - offset] = struct.pack(">I", self._pages)
            data = bytes(patched)
        return data

    def xFileSize(self) -> int:  # noqa: N802
        return self._size
