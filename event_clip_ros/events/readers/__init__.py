"""Event file readers behind one entry point, :func:`open_events`, that detects the format.

Detection looks at the content first (magic bytes, header keys) and at the
file extension only when the content has no signature (ATIS ``.bin``,
header-less ``.dat``):

================== ============================================ ============================
kind               recognised by                                reader
================== ============================================ ============================
bag                a directory with metadata.yaml or .mcap /    ``RosbagReader`` (.rosbag)
                   .db3 files, MCAP / SQLite / ``#ROSBAG
                   V2.0`` magic, or a .mcap / .db3 file
AEDAT 4.0          ``#!AER-DAT4``                               :class:`Aedat4Reader`
AEDAT 3.x          ``#!AER-DAT3``                               :class:`Aedat31Reader`
N-ImageNet npz     zip magic (``PK`` 3 4)                       :class:`NImageNetReader`
Prophesee RAW      ``%`` header naming an encoding (evt,        :class:`RawReader`
                   format); else with camera keys (plugin_name
                   ...) or a ``.raw`` name
Prophesee DAT      ``%`` header + DAT type/size bytes (CD, 8),  :class:`DatReader`
                   or a ``.dat`` name (also without header)
ATIS .bin          ``.bin`` extension                           :class:`AtisBinReader`
================== ============================================ ============================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..types import SensorSize
from .aedat4 import MAGIC as _AEDAT4_MAGIC
from .aedat4 import Aedat4Reader
from .aedat31 import MAGIC as _AEDAT3_MAGIC
from .aedat31 import Aedat31Reader
from .atis_bin import AtisBinReader
from .bags import is_bag
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .dat import DatReader
from .nimagenet import NImageNetReader
from .percent_header import read_percent_header
from .raw import RawReader, has_camera_keys, names_encoding

__all__ = [
    "CHUNK_EVENTS", "Aedat31Reader", "Aedat4Reader", "AtisBinReader", "DatReader", "EventFileError",
    "EventReader", "NImageNetReader", "RawReader", "detect_format", "open_events",
]

_ZIP_MAGIC = b"PK\x03\x04"
_DAT_CD_TYPES = (0, 12)
_DAT_EVENT_BYTES = 8

_READERS: dict[str, Callable[..., EventReader]] = {
    "raw": RawReader, "dat": DatReader, "aedat4": Aedat4Reader, "aedat31": Aedat31Reader,
    "nimagenet": NImageNetReader, "atis_bin": AtisBinReader,
}


def detect_format(path: str | Path) -> str:
    """Name the kind of event file at ``path``: "rosbag", "raw", "dat", "aedat4", "aedat31", "nimagenet", "atis_bin".

    "rosbag" is any bag :func:`~.bags.open_bag` opens (rosbag2 directory, with or
    without metadata.yaml, .mcap / .db3 file, ROS 1 bag). Raises
    :class:`EventFileError` for a missing path, an empty file or an
    unrecognised format.
    """
    path = Path(path)
    if path.is_dir():
        if is_bag(path):
            return "rosbag"
        raise EventFileError(f"{path}: a directory that is not a rosbag2 bag (no metadata.yaml, no .mcap or .db3 file)")
    if not path.is_file():
        raise EventFileError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise EventFileError(f"{path}: empty file")
    suffix = path.suffix.lower()
    if is_bag(path, head):
        return "rosbag"
    if head.startswith(_AEDAT4_MAGIC):
        return "aedat4"
    if head.startswith(_AEDAT3_MAGIC):
        return "aedat31"
    if head.startswith(b"#!AER-DAT"):
        version = head.split(b"\r")[0].split(b"\n")[0].decode("latin-1")
        raise EventFileError(f"{path}: {version[2:]} files are not supported (AEDAT 3.x and 4.0 are)")
    if head.startswith(_ZIP_MAGIC):
        return "nimagenet"
    header = read_percent_header(path)
    if header.lines:
        if names_encoding(header):
            return "raw"
        if suffix != ".raw" and _has_dat_type_bytes(path, header.data_offset):
            return "dat"
        if has_camera_keys(header) or suffix == ".raw":
            return "raw"
        if suffix == ".dat":
            return "dat"
        raise EventFileError(f"{path}: '%' header of neither a Prophesee RAW nor a DAT file")
    if suffix == ".dat":
        return "dat"  # a DAT file without header (older Prophesee files)
    if suffix == ".bin":
        return "atis_bin"
    raise EventFileError(
        f"{path}: unknown event file format (first bytes {head[:16]!r}); supported: Prophesee RAW (EVT 3.0 / 2.0) "
        "and DAT, AEDAT 4.0 and 3.1, N-MNIST / N-Caltech101 .bin, N-ImageNet .npz, rosbag2 and ROS 1 bags"
    )


def _has_dat_type_bytes(path: Path, offset: int) -> bool:
    with open(path, "rb") as f:
        f.seek(offset)
        type_size = f.read(2)
    return len(type_size) == 2 and type_size[0] in _DAT_CD_TYPES and type_size[1] == _DAT_EVENT_BYTES


def open_events(path: str | Path, topic: str | None = None, size: SensorSize | None = None) -> EventReader:
    """Open an event recording of any supported format for streaming (see :func:`detect_format`).

    ``topic`` selects the event topic of a bag (None: the only one);
    ``size`` overrides the sensor size of a file (events outside are dropped
    and counted). A rosbag's size comes from its messages, so ``size`` is
    refused there, as is ``topic`` for files that are not bags.
    """
    fmt = detect_format(path)
    if fmt == "rosbag":
        if size is not None:
            raise ValueError("size= does not apply to rosbag2 inputs (the messages carry the sensor size)")
        # lazy: rosbag imports events.packet_stream, which imports this package (readers.streaming): a cycle
        from .rosbag import RosbagReader

        return RosbagReader(path, topic=topic)
    if topic is not None:
        raise ValueError(f"topic= applies to rosbag2 inputs only, {path} is a {fmt} file")
    return _READERS[fmt](path, size=size)
