"""The ASCII ``%`` header that opens Prophesee RAW and DAT files.

Each header line is ``% key value`` (``% evt 3.0``, ``% geometry 1280x720``,
``% Height 480``); newer RAW files close the header with ``% end``, older ones
just start the binary data. A binary word can start with the byte ``%``
(0x25), so a line only counts as header when it is short printable text.

A header line that is damaged (a flipped byte) or cut short (the file ends in
it) ends the parsed header early, and the rest of the header would be decoded
as data: :func:`check_header_end` turns that into an :class:`EventFileError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..limits import DEFAULT_LIMITS
from ..types import SensorSize
from .base import EventFileError

_MAX_LINE_BYTES = 4096
_MAX_HEADER_BYTES = 1 << 20
_PRINTABLE = re.compile(rb"^%[ -~\t]*\r?\n$")
_GEOMETRY = re.compile(r"^\s*(\d{1,9})\s*x\s*(\d{1,9})\s*$")
#: Bytes after a header that still look like one of its lines: ``%``, then only printable text.
_HEADER_TEXT = re.compile(rb"%[ -~\t\r\n]+\Z")
_PROBE_BYTES = 8


@dataclass
class PercentHeader:
    """Parsed ``%`` header: ``fields`` maps lower-cased keys to values, ``data_offset`` is where data starts."""

    fields: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    data_offset: int = 0

    def get(self, key: str) -> str | None:
        return self.fields.get(key.lower())

    def geometry(self) -> SensorSize | None:
        """Size from ``% geometry WxH`` or ``% Width`` / ``% Height``, None when absent.

        ValueError when the stated size is not a plausible sensor (0, or beyond
        :data:`~event_clip_ros.events.limits.DEFAULT_LIMITS`): a damaged header.
        """
        geometry = self.get("geometry")
        if geometry is not None:
            m = _GEOMETRY.match(geometry)
            if m:
                return plausible_size(int(m.group(1)), int(m.group(2)))
        width, height = self.get("width"), self.get("height")
        if width is not None and height is not None and width.isdigit() and height.isdigit():
            return plausible_size(int(width), int(height))
        return None


def plausible_size(width: int, height: int) -> SensorSize:
    """``SensorSize(width, height)``; ValueError unless it is a sensor the limits accept."""
    size = SensorSize(width, height)  # ValueError for 0 or beyond 65535
    DEFAULT_LIMITS.check_size(size, "header geometry")
    return size


def read_percent_header(path: Path) -> PercentHeader:
    """Parse the ``%`` lines at the start of ``path`` (an empty header when there are none)."""
    header = PercentHeader()
    with open(path, "rb") as f:
        while header.data_offset < _MAX_HEADER_BYTES:
            line = f.readline(_MAX_LINE_BYTES)
            if not _PRINTABLE.match(line):
                break
            header.data_offset += len(line)
            text = line[1:].decode("ascii").strip()
            header.lines.append(text)
            if text == "end":
                break
            key, _, value = text.partition(" ")
            if key:
                header.fields.setdefault(key.lower(), value.strip())
    return header


def check_header_end(path: Path, header: PercentHeader, data_starts_with_percent: bool = True) -> None:
    """EventFileError when the bytes after ``header`` still look like a header line.

    That is a header line with a damaged byte or a file cut inside its header: the
    rest of the text must not be decoded as events. With
    ``data_starts_with_percent`` False (the first data byte can never be ``%``)
    any ``%`` there is such damage; else the next bytes must also be printable
    text (8 printable bytes rarely start binary data). A header closed by
    ``% end`` has ended properly whatever follows.
    """
    if header.lines and header.lines[-1] == "end":
        return
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        after = f.read(_PROBE_BYTES)
    if after.startswith(b"%") and (not data_starts_with_percent or _HEADER_TEXT.match(after)):
        line = len(header.lines) + 1
        raise EventFileError(f"{path}: '%' header line {line} is damaged or cut short ({after!r}...)")
