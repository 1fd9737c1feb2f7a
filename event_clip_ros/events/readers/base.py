"""The interface of every event file reader (one small reader per format)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..types import DecodeStats, SensorSize

#: Target number of events per chunk a reader yields (memory stays bounded).
CHUNK_EVENTS = 1 << 20


class EventReader(ABC):
    """A recording opened for streaming.

    ``chunks()`` yields :data:`EVENT_DTYPE` arrays in time order, each at most
    about :data:`CHUNK_EVENTS` long, so memory stays bounded whatever the file
    size. Problems inside the data are counted in ``stats`` (and logged once);
    a file that cannot be read at all raises :class:`EventFileError`.
    """

    #: short format name shown by ``event-clip inspect`` (e.g. "evt3", "aedat4")
    format: str

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stats = DecodeStats()
        self.size: SensorSize  # set by subclasses before chunks() is called

    @abstractmethod
    def chunks(self) -> Iterator[np.ndarray]:
        """Yield the events of the recording in time order, chunk by chunk."""

    def close(self) -> None:  # noqa: B027 - an optional hook: nothing to do by default
        """Release file handles (readers that hold none need not override)."""

    def __enter__(self) -> "EventReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventFileError(ValueError):
    """A file that is not a readable event recording (message says why)."""
