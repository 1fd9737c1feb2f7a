"""The real sensor recordings in ../shared/data (see its README), read once per test session."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from event_clip_ros.events.readers import open_events
from event_clip_ros.events.types import SensorSize, concat_events

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: name -> file: a Gen4.1 EVT3 (8.8 ms, 25 Mev/s), a Gen3 EVT2 (50 ms, one hot pixel), a DVXplorer AEDAT4 (590 ms)
RECORDINGS = {"gen41_evt3": "evt3_gen41_1280x720.raw", "gen3_evt2": "evt2_gen3_640x480.raw",
              "dvxplorer": "dvxplorer_320x240.aedat4"}
needs_data = pytest.mark.skipif(not all((DATA / f).exists() for f in RECORDINGS.values()),
                                reason="the real recordings of ../shared/data are not present")


@lru_cache(maxsize=None)
def recording(name: str) -> tuple[np.ndarray, SensorSize]:
    """All events (read-only) and the sensor size of one of :data:`RECORDINGS`."""
    with open_events(DATA / RECORDINGS[name]) as reader:
        events = concat_events(list(reader.chunks()))
        events.flags.writeable = False
        return events, reader.size


def pixel_counts(events: np.ndarray, size: SensorSize) -> np.ndarray:
    """(H, W) events per pixel."""
    return np.bincount(events["y"].astype(np.int64) * size.width + events["x"],
                       minlength=size.width * size.height).reshape(size.height, size.width)
