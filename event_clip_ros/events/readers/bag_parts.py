"""The storage files of a bag behind one interface, and how damage met in them is reported.

A bag is read as a list of :class:`StoragePart` (one per storage file, in
recording order; :mod:`.bags` builds the list). Each part lists its
connections (topic, ROS 2 type name, message count) and yields its messages as
ROS 2 CDR with their log times, whatever the storage (MCAP, SQLite3, ROS 1).

Damage is reported two ways, never as an arbitrary exception from the middle
of a read: a damaged span the part could step over is a ``(SKIP, offset,
reason)`` item in the message stream (the read goes on); damage that ends what
can be read raises :class:`StorageDamage` (every message before it was
yielded).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection


class _Skip:
    """The marker type of :data:`SKIP` (one instance)."""

    def __repr__(self) -> str:
        return "SKIP"


#: First item of a message tuple that reports a skipped damaged span: ``(SKIP, offset, reason)``.
SKIP = _Skip()
#: A message tuple of a part: (connection, log time ns, CDR bytes), or (SKIP, offset, reason).
MessageItem = tuple[Any, int, Any]
_EMPTY_START = 2**63 - 1
#: First bytes of an SQLite3 file (rosbag2's .db3 storage).
SQLITE_MAGIC = b"SQLite format 3\x00"


class StorageDamage(Exception):
    """Damage that ends the read of a storage file at this point (the messages before it are valid)."""


class StoragePart(ABC):
    """One storage file of a bag, opened (see the module doc)."""

    path: Path
    #: connections of the file (``owner`` is the part), ROS 2 type names
    connections: list[Connection]
    start_time: int = _EMPTY_START  #: earliest log time, ns (2**63 - 1 when there is none)
    end_time: int = 0  #: just after the latest log time, ns (0 when there is none)
    ros_version: int = 2  #: 1 for a ROS 1 bag (its messages converted to CDR)

    @abstractmethod
    def messages(self, connections: Collection[Connection]) -> Iterator[MessageItem]:
        """The messages of those of ``connections`` that belong to this part, in log-time order."""

    def close(self) -> None:  # noqa: B027 - an optional hook: nothing to do by default
        """Release the file."""


def ros2_msgtype(name: str) -> str:
    """A type name in the ROS 2 form ``pkg/msg/Type`` (ROS 1 names are ``pkg/Type``)."""
    parts = name.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name


class RosbagsPart(StoragePart):
    """A storage rosbags reads itself (SQLite3 file, ROS 1 bag, compressed rosbag2 directory), opened.

    ``convert(raw, msgtype)`` turns a message into ROS 2 CDR (None: it already
    is); a message it cannot convert (ValueError) is a skipped item. Storage
    errors rosbags raises while reading (apsw, decompression, ReaderError) end
    the read as :class:`StorageDamage`.
    """

    def __init__(self, reader: Any, path: Path, convert: Callable[[bytes, str], bytes] | None = None) -> None:
        self.path = path
        self._reader = reader
        self._convert = convert
        self._native: dict[int, Connection] = {}
        self.connections = []
        for i, native in enumerate(reader.connections, start=1):
            conn = native._replace(id=i, msgtype=ros2_msgtype(native.msgtype), owner=self)
            self._native[i] = native
            self.connections.append(conn)
        times = reader if hasattr(reader, "start_time") else reader.metadata  # storage readers keep them there
        self.start_time = int(times.start_time)
        self.end_time = int(times.end_time)

    def messages(self, connections: Collection[Connection]) -> Iterator[MessageItem]:
        mine = {self._native[c.id].id: c for c in connections if c.owner is self}
        if not mine:
            return
        natives = [n for n in self._native.values() if n.id in mine]
        items = self._reader.messages(connections=natives)
        while True:
            try:
                native, log_time, raw = next(items)
            except StopIteration:
                return
            except Exception as err:  # apsw.Error, ReaderError, zstd / lz4 errors: the rest is unreadable
                raise StorageDamage(str(err) or type(err).__name__) from err
            conn = mine[native.id]
            if self._convert is None:
                yield conn, int(log_time), raw
                continue
            try:
                yield conn, int(log_time), self._convert(raw, conn.msgtype)
            except ValueError as err:
                yield SKIP, int(log_time), f"message on {conn.topic} at {log_time} ns not convertible ({err})"

    def close(self) -> None:
        self._reader.close()
