"""The one event array type used everywhere in event_clip_ros.

Events are a numpy structured array of :data:`EVENT_DTYPE`, one record per event:

===== ========= ==========================================================
field dtype     meaning
===== ========= ==========================================================
``t`` int64     sensor time in microseconds (us), non-decreasing in a stream
``x`` uint16    column, 0 is the left edge
``y`` uint16    row, 0 is the top edge
``p`` uint8     polarity, 1 = ON (brightness up), 0 = OFF
===== ========= ==========================================================

The record is aligned (16 bytes) so the fields of a record share a cache line.
An array carries no geometry; the sensor size travels next to it as a
:class:`SensorSize` (readers expose it, decoders are built with it).
"""

from __future__ import annotations

import logging
from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")], align=True)

log = logging.getLogger("event_clip_ros.events")


@dataclass(frozen=True)
class SensorSize:
    """Sensor geometry in pixels."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if not (0 < self.width <= 65535 and 0 < self.height <= 65535):
            raise ValueError(f"invalid sensor size {self.width}x{self.height}")


def empty_events(n: int = 0) -> np.ndarray:
    """Return an uninitialised (n > 0) or empty event array."""
    return np.empty(n, dtype=EVENT_DTYPE)


def make_events(t, x, y, p) -> np.ndarray:
    """Build an event array from four equally long columns (values are cast)."""
    t = np.asarray(t)
    out = np.empty(t.shape[0], dtype=EVENT_DTYPE)
    out["t"] = t
    out["x"] = x
    out["y"] = y
    out["p"] = p
    return out


_EVENT_BYTES = np.dtype((np.void, EVENT_DTYPE.itemsize))


def concat_events(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate event arrays (an empty list gives an empty array).

    Concatenates 16-byte void views: about 20x faster than np.concatenate on the
    aligned structured dtype, which copies field by field.
    """
    if not chunks:
        return empty_events()
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate([c.view(_EVENT_BYTES) for c in chunks]).view(EVENT_DTYPE)


class Counters:
    """Mixin for dataclasses of int counters: ``as_dict`` and log-once warnings.

    Subclasses declare ``_warned: set[str] = field(default_factory=set, repr=False, compare=False)``.
    """

    _warned: set[str]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]  # set by @dataclass on the subclass

    def warn_once(self, kind: str, message: str) -> None:
        """Log ``message`` the first time ``kind`` happens."""
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s (further occurrences are only counted)", message)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass
class DecodeStats(Counters):
    """Counters of what a decoder or reader saw, skipped and dropped.

    Problems are counted here and logged once per kind (``warn_once``), never
    raised from the middle of a stream: one bad packet must not end a run.
    """

    events: int = 0  #: events emitted
    packets: int = 0  #: packets / chunks fed
    out_of_bounds: int = 0  #: events outside the sensor, dropped
    unknown_words: int = 0  #: words with an unknown or unsupported code, skipped
    skipped_words: int = 0  #: words skipped before a valid time was known
    bad_packets: int = 0  #: packets that could not be parsed, skipped
    truncated_bytes: int = 0  #: trailing bytes that did not form a whole record
    time_resets: int = 0  #: times the stream restarted (seq went back, a confirmed time jump)
    time_errors: int = 0  #: implausible time words or records ignored (bit errors: a TIME_HIGH jump, a negative stamp)
    time_dropped: int = 0  #: events dropped for an implausible time (negative, backwards, far ahead of the stream)
    lost_packets: int = 0  #: packets missing according to sequence numbers (plausible gaps only)
    seq_resets: int = 0  #: implausible sequence numbers (a jump ahead of more than MAX_SEQ_GAP), not counted as lost
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    def add(self, other: "DecodeStats") -> None:
        """Add the counters of ``other`` into this one."""
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)
