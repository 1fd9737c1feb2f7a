"""Windows to f_E embeddings: the one place the applications turn windows into model frames and frames into embeddings.

An event window's events become the model's frame representation at its input
size on the model's device (:func:`~event_clip_ros.events.frames.build_frames_torch`);
a window that carries a ready event frame (image input, video segments) is
resized to the model input (a no-op when it already has that size), each of
its views (the ten crops of a video segment) separately. The frames of a batch
then go through :meth:`EventClip.encode_frames` in one pass. The detector's
inference, the video scorer and the reference banks built from recordings or
videos all embed through :func:`window_embeddings`, so a window gives one
embedding whichever of them asks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..events.frames import build_frames_torch
from ..model.event_clip import EventClip
from ..video.reader import resize_image
from .event_input import PendingWindow


def model_frames(model: EventClip, windows: Sequence[PendingWindow]) -> tuple[torch.Tensor, int]:
    """(the (B * V, H, W) model input frames of ``windows``, V the views per window).

    Event windows must share a sensor size; frame windows the number of views. ValueError for a batch that mixes
    event and frame windows.
    """
    if not windows:
        raise ValueError("no windows to embed")
    carries_frames = windows[0].frame is not None
    if any((w.frame is not None) != carries_frames for w in windows):
        raise ValueError("a batch mixes event windows and windows that carry frames")
    if not carries_frames:
        return build_frames_torch([w.window.events for w in windows], windows[0].size, model.frame_config, model.device), 1
    height, width = model.meta.input_size
    views = [w.frame if w.frame.ndim == 3 else w.frame[None] for w in windows]
    if len({v.shape[0] for v in views}) > 1:
        raise ValueError(f"windows of one batch must have as many views each, got {sorted({v.shape[0] for v in views})}")
    frames = np.stack([resize_image(view, (width, height)) for stack in views for view in stack])
    return torch.from_numpy(frames), views[0].shape[0]


@torch.inference_mode()
def window_embeddings(model: EventClip, windows: Sequence[PendingWindow]) -> torch.Tensor:
    """(B, V, D) L2-normalised f_E embeddings of ``windows`` (V = 1 but for windows with several views)."""
    frames, views = model_frames(model, windows)
    embeddings = model.encode_frames(frames)
    return embeddings.reshape(len(windows), views, embeddings.shape[-1])
