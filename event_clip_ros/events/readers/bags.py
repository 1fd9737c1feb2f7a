"""Opening a recorded bag, whatever its layout: the one opener behind inspect, classify, evaluate, to-bag and replay.

=================================================== ==============================================
layout                                              read as
=================================================== ==============================================
rosbag2 directory, usable ``metadata.yaml``          the storage files it lists, in its order
rosbag2 directory, metadata missing or unusable      the ``.mcap`` / ``.db3`` files present, in split
(empty ``storage_identifier``, ``files: []``, ...)   order (``bag_0``, ``bag_1``, ...), with a warning
rosbag2 directory with compression (file / message)  rosbags' directory reader
a ``.mcap`` file                                     record by record (:mod:`.bag_mcap`): no summary or
                                                     footer needed, so a file cut short still reads
a ``.db3`` file                                      rosbags; when it refuses a damaged file, row by
                                                     row up to the damage (:mod:`.bag_sqlite`)
a ROS 1 bag (``#ROSBAG V2.0``)                       rosbags, messages converted to CDR
                                                     (:mod:`.bag_ros1`)
=================================================== ==============================================

The opened :class:`Bag` looks like rosbags' reader to its callers: ``topics``,
``connections`` (ROS 2 type names), ``start_time`` / ``end_time`` (ns) and
``messages(connections=...)`` yielding (connection, log time ns, CDR). Damage
is reported as in :mod:`.bag_parts`: ``(SKIP, offset, reason)`` items for spans
stepped over, :class:`~.bag_parts.StorageDamage` for the point where reading
ends. A path that is no readable bag is an :class:`EventFileError` (one line).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from itertools import groupby
from pathlib import Path, PurePath
from typing import Any

import yaml
from rosbags.interfaces import Connection, TopicInfo
from rosbags.rosbag2 import Reader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from ..types import log
from .bag_mcap import MAGIC as MCAP_MAGIC
from .bag_mcap import McapScan
from .bag_parts import SKIP, SQLITE_MAGIC, MessageItem, RosbagsPart, StorageDamage, StoragePart
from .bag_ros1 import MAGIC as ROS1_MAGIC
from .bag_ros1 import open_ros1
from .bag_sqlite import SqliteRecovery
from .base import EventFileError

#: Suffixes of rosbag2 storage files (inside a bag directory or on their own).
STORAGE_SUFFIXES = (".mcap", ".db3")
_MAX_METADATA_BYTES = 16 << 20


def is_bag(path: Path, head: bytes = b"") -> bool:
    """Whether ``path`` looks like a bag: a directory with metadata.yaml or storage files, a storage
    file, or a ROS 1 bag (``head``: the file's first bytes)."""
    if path.is_dir():
        return (path / "metadata.yaml").is_file() or bool(storage_files(path))
    return head.startswith((MCAP_MAGIC[:5], SQLITE_MAGIC, ROS1_MAGIC)) or path.suffix.lower() in STORAGE_SUFFIXES


def storage_files(directory: Path) -> list[Path]:
    """The .mcap / .db3 files of a directory in split order (``bag_2`` before ``bag_10``)."""

    def split_key(p: Path) -> tuple[str, int, str]:
        m = re.fullmatch(r"(.*?)(\d+)", p.stem)
        return (m.group(1), int(m.group(2)), p.suffix) if m else (p.stem, -1, p.suffix)

    return sorted((p for p in directory.iterdir() if p.suffix.lower() in STORAGE_SUFFIXES and p.is_file()),
                  key=split_key)


class Bag:
    """An opened bag: its storage parts read as one recording (see the module doc)."""

    def __init__(self, path: Path, parts: list[StoragePart]) -> None:
        self.path = path
        self.parts = parts
        groups: dict[tuple[str, str], list[Connection]] = {}
        for part in parts:
            for conn in part.connections:
                groups.setdefault((conn.topic, conn.msgtype), []).append(conn)
        self.connections: list[Connection] = []
        for i, ((topic, msgtype), conns) in enumerate(groups.items(), start=1):
            msgdef = next((c.msgdef for c in conns if c.msgdef.data), conns[0].msgdef)
            self.connections.append(Connection(i, topic, msgtype, msgdef, "", sum(c.msgcount for c in conns),
                                               conns[0].ext, self))
        self.start_time = min((p.start_time for p in parts), default=2**63 - 1)
        self.end_time = max((p.end_time for p in parts), default=0)
        #: 1 for a ROS 1 bag, else 2
        self.ros_version = min((p.ros_version for p in parts), default=2)

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topic -> TopicInfo (msgtype None when connections of several types share the topic)."""
        out = {}
        for topic, group in groupby(sorted(self.connections, key=lambda c: c.topic), key=lambda c: c.topic):
            conns = list(group)
            types = {c.msgtype for c in conns}
            out[topic] = TopicInfo(types.pop() if len(types) == 1 else None, conns[0].msgdef,
                                   sum(c.msgcount for c in conns), conns)
        return out

    def messages(self, connections: Collection[Connection] = ()) -> Iterator[MessageItem]:
        """(connection, log time ns, CDR) of ``connections`` (all when empty), part after part.

        Damage that ends one part of several is a SKIP item and the next part is
        read; in the last part it raises :class:`StorageDamage`.
        """
        wanted = {(c.topic, c.msgtype): c for c in (connections or self.connections)}
        for index, part in enumerate(self.parts):
            mine = [c for c in part.connections if (c.topic, c.msgtype) in wanted]
            if not mine:
                continue
            try:
                for conn, log_time, raw in part.messages(mine):
                    yield (SKIP, log_time, raw) if conn is SKIP else (wanted[(conn.topic, conn.msgtype)], log_time, raw)
            except StorageDamage as err:
                if index == len(self.parts) - 1:
                    raise
                yield SKIP, 0, f"{part.path.name}: {err}; going on with the next storage file"

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_bag(path: str | Path) -> Bag:
    """Open the bag at ``path`` (any layout of the module doc); EventFileError when it is none or unreadable."""
    path = Path(path)
    if not path.exists():
        raise EventFileError(f"{path}: no such bag (a rosbag2 directory, a .mcap / .db3 file or a ROS 1 .bag)")
    if path.is_dir():
        files = _directory_storage(path)
        if files is None:
            return Bag(path, [_open_part(path, path, _open_rosbags_directory)])
    else:
        files = [path]
    parts: list[StoragePart] = []
    try:
        for file in files:
            parts.append(_open_part(path, file, _open_storage_file))
    except BaseException:
        for part in parts:
            part.close()
        raise
    return Bag(path, parts)


def _open_part(bag: Path, target: Path, opener) -> StoragePart:
    """``opener(target)``, every failure an EventFileError naming the bag (one line)."""
    try:
        return opener(target)
    except EventFileError:
        raise
    except Exception as err:  # ReaderError, StorageDamage, apsw.Error, OSError, ...
        where = "" if target == bag else f" ({target.name})"
        text = " ".join(str(err).split()) or type(err).__name__
        raise EventFileError(f"{bag}: cannot open the recording{where}: {text}") from err


def _open_storage_file(file: Path) -> StoragePart:
    with open(file, "rb") as f:
        head = f.read(16)
    if head.startswith(ROS1_MAGIC):
        return open_ros1(file)
    if head.startswith(MCAP_MAGIC[:5]) or (file.suffix.lower() == ".mcap" and not head.startswith(SQLITE_MAGIC)):
        return _open_mcap(file)
    if head.startswith(SQLITE_MAGIC) or file.suffix.lower() == ".db3":
        return _open_sqlite(file)
    raise StorageDamage(f"not a bag storage file (first bytes {head!r})")


def _open_mcap(file: Path) -> StoragePart:
    part = McapScan(file)
    if part.damage is not None and not part.connections:
        part.close()
        raise StorageDamage(f"{part.damage}; no readable channel before it (a file cut this short cannot be "
                            "recovered; for other damage 'mcap recover' may help)")
    return part


def _open_sqlite(file: Path) -> StoragePart:
    reader = Sqlite3Reader(file)
    try:
        reader.open()
    except Exception as err:  # a damaged page anywhere: rosbags counts every message when opening

        try:
            part = SqliteRecovery(file)
        except Exception:
            raise err from None
        log.warning("%s: rosbags cannot open it (%s); reading its messages row by row up to the damage",
                    file, " ".join(str(err).split()))
        return part
    return RosbagsPart(reader, file)


def _open_rosbags_directory(directory: Path) -> StoragePart:
    reader = Reader(directory)
    reader.open()
    return RosbagsPart(reader, directory)


def _directory_storage(directory: Path) -> list[Path] | None:
    """The storage files to read of a bag directory (None: let rosbags read it, for compressed bags)."""
    present = storage_files(directory)
    meta = directory / "metadata.yaml"
    if meta.is_file():
        info, problem = _metadata(meta)
        if info is not None:
            if str(info.get("compression_mode") or "").lower() in ("file", "message"):
                return None
            listed = [directory / PurePath(str(name)).name for name in info.get("relative_file_paths") or []]
            if listed and all(p.is_file() for p in listed):
                return listed
            missing = [p.name for p in listed if not p.is_file()]
            problem = f"lists missing storage files ({', '.join(missing)})" if missing else "lists no storage file"
        if not present:
            raise EventFileError(f"{directory}: metadata.yaml {problem} and the directory holds no .mcap or .db3 file")
        log.warning("%s: metadata.yaml %s; reading the storage files present (%s)", directory, problem,
                    ", ".join(p.name for p in present))
        return present
    if not present:
        raise EventFileError(f"{directory}: not a rosbag2 directory (no metadata.yaml, no .mcap or .db3 file)")
    log.warning("%s: no metadata.yaml (recording not closed cleanly?); reading the storage files present (%s)",
                directory, ", ".join(p.name for p in present))
    return present


def _metadata(meta: Path) -> tuple[dict | None, str]:
    """(the rosbag2_bagfile_information mapping, "") or (None, what is wrong with the file)."""
    try:
        if meta.stat().st_size > _MAX_METADATA_BYTES:
            return None, "is implausibly large"
        doc = yaml.safe_load(meta.read_text(encoding="utf-8", errors="replace"))
    except (OSError, yaml.YAMLError) as err:
        return None, f"does not parse ({' '.join(str(err).split())[:200]})"
    info = doc.get("rosbag2_bagfile_information") if isinstance(doc, dict) else None
    if not isinstance(info, dict):
        return None, "has no rosbag2_bagfile_information"
    return info, ""
