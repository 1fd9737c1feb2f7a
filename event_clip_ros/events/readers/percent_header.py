"""The ASCII ``%`` header that opens Prophesee RAW and DAT files.

Each header line is ``% key value`` (``% evt 3.0``, ``% geometry 1280x720``,
``% Height 480``); newer RAW files close the header with ``% end``, older ones
just start the binary data. A binary word can start with the byte ``%``
(0x25), so a line only counts as header when it is short printable text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..types import SensorSize

_MAX_LINE_BYTES = 4096
_MAX_HEADER_BYTES = 1 << 20
_PRINTABLE = re.compile(rb"^%[ -~\t]*\r?\n$")
_GEOMETRY = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass
class PercentHeader:
    """Parsed ``%`` header: ``fields`` maps lower-cased keys to values, ``data_offset`` is where data starts."""

    fields: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    data_offset: int = 0

    def get(self, key: str) -> str | None:
        return self.fields.get(key.lower())

    def geometry(self) -> SensorSize | None:
        """Size from ``% geometry WxH`` or ``% Width`` / ``% Height``, None when absent."""
        geometry = self.get("geometry")
        if geometry is not None:
            m = _GEOMETRY.match(geometry)
            if m:
                return SensorSize(int(m.group(1)), int(m.group(2)))
        width, height = self.get("width"), self.get("height")
        if width is not None and height is not None and width.isdigit() and height.isdigit():
            return SensorSize(int(width), int(height))
        return None


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
