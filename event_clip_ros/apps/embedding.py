"""Windows to f_E embeddings: the one place the applications turn windows into model frames and frames into embeddings.

An event window's events become the model's frame representation at its input
size on the model's device (:func:`~event_clip_ros.events.frames.build_frames_torch`);
a window that carries a ready event frame (image input, video segments) is
resized to the model input (a no-op when it already has that size), each of
its views (the ten crops of a video segment) separately. The frames of a batch
(which may mix sensors and kinds: several cameras) then go through
:meth:`EventClip.embed_frames` (the model's frame encoder: the torch tower or
an ONNX export) in one pass. The detector's
inference, the video scorer and the reference banks built from recordings or
videos all embed through :func:`window_embeddings`, so a window gives one
embedding whichever of them asks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..events.frames import build_frames_torch
from ..events.types import SensorSize
from ..model.event_clip import EventClip
from ..video.reader import resize_image
from .event_input import PendingWindow


def model_frames(model: EventClip, windows: Sequence[PendingWindow]) -> tuple[torch.Tensor, int]:
    """(the (B * V, H, W) model input frames of ``windows`` on the model's device, V the views per window).

    Event windows' frames are built per sensor size, so a batch may mix sensors and kinds (several cameras);
    every window must have as many views (an event window has one). ValueError otherwise.
    """
    if not windows:
        raise ValueError("no windows to embed")
    views = [1 if w.frame is None or w.frame.ndim == 2 else w.frame.shape[0] for w in windows]
    if len(set(views)) > 1:
        raise ValueError(f"windows of one batch must have as many views each, got {sorted(set(views))}")
    height, width = model.meta.input_size
    by_size: dict[SensorSize, list[int]] = {}
    for i, w in enumerate(windows):
        if w.frame is None:
            by_size.setdefault(w.size, []).append(i)
    if len(by_size) == 1 and len(next(iter(by_size.values()))) == len(windows):  # one sensor: its frames as built
        return build_frames_torch([w.window.events for w in windows], windows[0].size, model.frame_config,
                                  model.device), 1
    frames = torch.empty((len(windows) * views[0], height, width), dtype=torch.float32, device=model.device)
    for size, rows in by_size.items():  # event windows: one view each
        built = build_frames_torch([windows[i].window.events for i in rows], size, model.frame_config, model.device)
        frames[torch.tensor(rows, device=model.device)] = built
    for i, w in enumerate(windows):
        if w.frame is not None:
            stack = w.frame if w.frame.ndim == 3 else w.frame[None]
            resized = np.stack([resize_image(view, (width, height)) for view in stack])
            frames[i * views[0]:(i + 1) * views[0]] = torch.from_numpy(resized)
    return frames, views[0]


def window_embeddings(model: EventClip, windows: Sequence[PendingWindow]) -> torch.Tensor:
    """(B, V, D) L2-normalised f_E embeddings of ``windows`` in one forward pass (V = 1 but for windows with views),
    through :meth:`EventClip.embed_frames` (the torch tower or the model's exported encoder, without gradients)."""
    frames, views = model_frames(model, windows)
    embeddings = model.embed_frames(frames)
    return embeddings.reshape(len(windows), views, embeddings.shape[-1])
