"""Prophesee RAW files: an ASCII ``%`` header, then EVT 3.0 or EVT 2.0 words.

The encoding comes from ``% evt 3.0`` / ``% evt 2.0`` or ``% format EVT3;...``;
RAW files of Gen3 cameras older than the ``evt`` key are EVT 2.0 (as in
OpenEB). The sensor size comes, in this order, from the ``size`` argument,
``% format ...;width=W;height=H``, ``% geometry WxH``, and the camera plugin or
sensor generation (:data:`PLUGIN_SIZES`). The words are decoded block by block
by the stateful :class:`Evt3Decoder` / :class:`Evt2Decoder`, so memory stays
bounded and the result does not depend on the block size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..decoders.base import StreamDecoder
from ..decoders.evt2 import Evt2Decoder
from ..decoders.evt3 import Evt3Decoder
from ..types import SensorSize
from .base import EventFileError, EventReader
from .percent_header import PercentHeader, check_header_end, read_percent_header
from .streaming import DEFAULT_BLOCK_BYTES, note_truncated, split_chunks

#: Sensor size by a substring of ``% plugin_name`` (first match wins): GenX320, IMX636 / Gen4.x
#: (hal_plugin_gen41_evk3, ..._evk4) and Gen3.x (hal_plugin_gen3_fx3, hal_plugin_gen31_evk2).
PLUGIN_SIZES: tuple[tuple[str, SensorSize], ...] = (
    ("genx320", SensorSize(320, 320)),
    ("imx636", SensorSize(1280, 720)),
    ("gen4", SensorSize(1280, 720)),
    ("evk4", SensorSize(1280, 720)),
    ("gen3", SensorSize(640, 480)),
)
#: Sensor size by ``% sensor_generation``.
GENERATION_SIZES = {"3.0": SensorSize(640, 480), "3.1": SensorSize(640, 480),
                    "4.0": SensorSize(1280, 720), "4.1": SensorSize(1280, 720)}

_DECODERS: dict[str, type[StreamDecoder]] = {"evt3": Evt3Decoder, "evt2": Evt2Decoder}
_EVT_KEY = {"3.0": "evt3", "3": "evt3", "2.0": "evt2", "2": "evt2"}
_FORMAT_KEY = {"EVT3": "evt3", "EVT3.0": "evt3", "EVT2": "evt2", "EVT2.0": "evt2"}


def names_encoding(header: PercentHeader) -> bool:
    """True when the header names a RAW encoding (``% evt`` or ``% format``)."""
    return header.get("evt") is not None or header.get("format") is not None


def has_camera_keys(header: PercentHeader) -> bool:
    """True when the header describes a camera the way RAW headers do (plugin, serial number, integrator)."""
    return any(header.get(k) is not None for k in ("plugin_name", "serial_number", "integrator_name"))


def raw_encoding(header: PercentHeader) -> str:
    """Encoding name ("evt3" / "evt2") of a RAW header, or EventFileError when unsupported/unknown."""
    fmt = header.get("format")
    if fmt is not None:
        name = fmt.split(";")[0].strip().upper()
        if name in _FORMAT_KEY:
            return _FORMAT_KEY[name]
        raise EventFileError(f"RAW encoding {name!r} is not supported (EVT 3.0 and EVT 2.0 are)")
    evt = header.get("evt")
    if evt is not None:
        if evt in _EVT_KEY:
            return _EVT_KEY[evt]
        raise EventFileError(f"RAW encoding 'evt {evt}' is not supported (EVT 3.0 and EVT 2.0 are)")
    plugin = (header.get("plugin_name") or "").lower()
    if "gen3" in plugin:
        return "evt2"  # Gen3 cameras wrote EVT 2.0 before RAW headers named the encoding
    raise EventFileError("RAW header names no encoding (no '% evt' or '% format' line)")


def raw_geometry(header: PercentHeader) -> SensorSize | None:
    """Sensor size a RAW header states or implies, None when it says nothing usable."""
    fmt = header.get("format")
    if fmt is not None:  # "EVT3;height=720;width=1280"
        options = {}
        for part in fmt.split(";")[1:]:
            key, _, value = part.partition("=")
            options[key.strip().lower()] = value.strip()
        width, height = options.get("width", ""), options.get("height", "")
        if width.isdigit() and height.isdigit():
            return SensorSize(int(width), int(height))
    size = header.geometry()
    if size is not None:
        return size
    plugin = (header.get("plugin_name") or "").lower()
    for key, plugin_size in PLUGIN_SIZES:
        if key in plugin:
            return plugin_size
    return GENERATION_SIZES.get(header.get("sensor_generation") or "")


class RawReader(EventReader):
    """Prophesee RAW (EVT 3.0 / EVT 2.0) reader; ``format`` is "evt3" or "evt2".

    ``size`` overrides the header's geometry (events outside it are dropped and
    counted); ``block_bytes`` is how much of the file is decoded at a time.
    ``header`` is the parsed ``%`` header (its ``data_offset`` is where the
    words start).
    """

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        super().__init__(path)
        header = read_percent_header(self.path)
        if not header.lines:
            raise EventFileError(f"{self.path}: not a Prophesee RAW file (no '%' header)")
        check_header_end(self.path, header)  # a header line damaged or cut short is not data
        self.header = header
        self.format = raw_encoding(header)
        try:
            geometry = size or raw_geometry(header)
        except ValueError as exc:  # 0 or beyond the limits: a damaged header
            raise EventFileError(f"{self.path}: implausible RAW header geometry ({exc})") from None
        if geometry is None:
            raise EventFileError(
                f"{self.path}: RAW header gives no sensor size (no geometry, format or known plugin); pass size="
            )
        self.size = geometry
        self._block_bytes = block_bytes
        self._new_decoder()  # a sensor the encoding cannot address is an error now, not mid-stream

    def _new_decoder(self) -> StreamDecoder:
        """A decoder that counts straight into the reader's stats."""
        try:
            return _DECODERS[self.format](self.size, stats=self.stats)
        except ValueError as exc:
            raise EventFileError(f"{self.path}: {exc}") from None

    def chunks(self) -> Iterator[np.ndarray]:
        decoder = self._new_decoder()
        data_bytes = 0
        with open(self.path, "rb") as f:
            f.seek(self.header.data_offset)
            while block := f.read(self._block_bytes):
                data_bytes += len(block)
                yield from split_chunks(decoder.decode(block))
        tail = data_bytes % decoder.word_dtype.itemsize
        if tail:
            note_truncated(self.stats, tail, self.format)
