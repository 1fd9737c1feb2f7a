"""iniVation AEDAT 4.0 files, ``format = "aedat4"``, read with dv-processing.

dv-processing's ``MonoCameraRecording`` streams the file packet by packet
(``getNextEventBatch``), so memory stays bounded; its event times are already
int64 us (often Unix time). The sensor size is the recording's event
resolution unless ``size`` overrides it (events outside are dropped and
counted). AEDAT 4 keeps its packet index at the end of the file, so
dv-processing refuses a truncated file as a whole: that is an
:class:`EventFileError`, not a partial read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import EVENT_DTYPE, SensorSize
from .base import CHUNK_EVENTS, EventFileError, EventReader
from .streaming import account_block, rechunk

MAGIC = b"#!AER-DAT4"


class Aedat4Reader(EventReader):
    """AEDAT 4.0 reader (the event stream of a mono camera recording)."""

    format = "aedat4"

    def __init__(self, path: str | Path, size: SensorSize | None = None,
                 chunk_events: int = CHUNK_EVENTS) -> None:
        super().__init__(path)
        self._chunk_events = chunk_events
        recording = self._open()
        if not recording.isEventStreamAvailable():
            raise EventFileError(f"{self.path}: AEDAT4 recording has no event stream")
        width, height = recording.getEventResolution()
        self.size = size or SensorSize(int(width), int(height))

    def _open(self):  # -> dv_processing.io.MonoCameraRecording
        try:
            import dv_processing
        except ImportError as exc:
            raise EventFileError(f"{self.path}: reading AEDAT4 needs the dv-processing package") from exc
        try:
            return dv_processing.io.MonoCameraRecording(str(self.path))
        except RuntimeError as exc:
            raise EventFileError(f"{self.path}: unreadable AEDAT4 file ({_brief(exc)})") from exc

    def chunks(self) -> Iterator[np.ndarray]:
        yield from rechunk(self._batches(), self._chunk_events)

    def _batches(self) -> Iterator[np.ndarray]:
        recording = self._open()
        while True:
            try:
                batch = recording.getNextEventBatch()
            except RuntimeError as exc:
                self.stats.bad_packets += 1
                self.stats.warn_once("read", f"aedat4: stopped at an unreadable packet ({_brief(exc)})")
                return
            if batch is None:
                return
            store = batch.numpy()
            events = np.empty(store.shape[0], dtype=EVENT_DTYPE)
            events["t"] = store["timestamp"]
            events["x"] = store["x"]
            events["y"] = store["y"]
            events["p"] = store["polarity"]
            yield account_block(events, self.size, self.stats, self.format)


def _brief(exc: Exception) -> str:
    """dv-processing's message without the C++ source location and stack trace it appends."""
    lines = [line.strip() for line in str(exc).split("Stacktrace:")[0].splitlines() if line.strip()]
    return " ".join(line for line in lines if not line.startswith("/")) or type(exc).__name__
