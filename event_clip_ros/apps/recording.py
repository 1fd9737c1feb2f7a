"""Windows of a recording as the detector takes them, and their embeddings.

``event-clip classify`` and ``anomaly`` cut a recording into windows on sensor
time (:func:`~event_clip_ros.events.windows.iter_windows`, after the noise
filters when enabled) and infer them with :meth:`Detector.infer
<event_clip_ros.apps.detector.Detector.infer>`, the node's path from windows to
results; :func:`pending_windows` gives each window what that path needs. A
recording has no ROS time: a window is stamped with its end in sensor time (ns),
as :meth:`EventInput.feed_events <event_clip_ros.apps.event_input.EventInput.feed_events>`
does without a stamp. :func:`embed_recording` gives the embeddings of a
recording's windows (:func:`~event_clip_ros.apps.embedding.window_embeddings`,
the embeddings the detector infers from), for code that applies its own head.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..batching import batched
from ..events.noise import NoiseFilter, NoiseFilterConfig
from ..events.readers import open_events
from ..events.types import SensorSize
from ..events.windows import Window, WindowConfig, iter_windows
from ..model.event_clip import EventClip
from .embedding import window_embeddings
from .event_input import PendingWindow

_NS_PER_US = 1_000


def pending_windows(windows: Iterable[Window], size: SensorSize) -> Iterator[PendingWindow]:
    """``windows`` of a recording of sensor ``size``, ready for :meth:`Detector.infer`, as they are cut."""
    for w in windows:
        yield PendingWindow(w, size, w.t_end_us * _NS_PER_US, "", time.monotonic_ns())


def embed_recording(
    model: EventClip,
    path: str | Path,
    windows: WindowConfig,
    topic: str | None = None,
    size: SensorSize | None = None,
    batch_size: int = 32,
    noise: NoiseFilterConfig = NoiseFilterConfig(),
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    """Open a recording, cut it into windows on sensor time (after the ``noise`` filters, off by default)
    and yield (windows, (B, D) normalised embeddings) batch by batch."""
    with open_events(path, topic=topic, size=size) as reader:
        noise_filter = NoiseFilter(noise) if noise.enabled else None
        for batch in batched(iter_windows(reader.chunks(), windows, noise_filter, reader.size), batch_size):
            yield batch, window_embeddings(model, list(pending_windows(batch, reader.size)))[:, 0]
