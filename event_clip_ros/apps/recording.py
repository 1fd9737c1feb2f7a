"""Windows of a recording, batched and embedded: the path from a file to embeddings.

The ``classify``, ``anomaly`` and ``retrieve`` commands read recordings through these
helpers (bag evaluation goes through the node's own Detector instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..batching import batched
from ..events.readers import open_events
from ..events.types import SensorSize
from ..events.windows import Window, WindowConfig, iter_windows
from ..model.event_clip import EventClip


def embed_windows(
    model: EventClip, windows: Iterable[Window], size: SensorSize, batch_size: int = 32
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    """Yield (windows, (B, D) normalised embeddings) batch by batch."""
    for batch in batched(windows, batch_size):
        yield batch, model.embed_windows([w.events for w in batch], size, batch_size=batch_size)


def embed_recording(
    model: EventClip,
    path: str | Path,
    windows: WindowConfig,
    topic: str | None = None,
    size: SensorSize | None = None,
    batch_size: int = 32,
) -> Iterator[tuple[list[Window], torch.Tensor]]:
    """Open a recording, cut it into windows on sensor time and embed them batch by batch."""
    with open_events(path, topic=topic, size=size) as reader:
        yield from embed_windows(model, iter_windows(reader.chunks(), windows), reader.size, batch_size)
