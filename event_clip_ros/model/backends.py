"""Where f_E runs: one seam from frames to event embeddings, whatever runs the encoder.

A :class:`FrameEncoder` takes (B, H, W) event frames (a torch tensor or a numpy array,
float32, in the checkpoint's frame representation at the model's input size) and returns
(B, D) L2-normalised float32 embeddings on the model's device. Every inference path
(the detector, evaluation, the CLI) reaches it through :meth:`EventClip.embed_frames`
and :meth:`EventClip.embed_windows`; training keeps calling ``encode_frames`` (gradients).

* ``torch`` (:class:`TorchEncoder`, the default): the model's own f_E.
* ``onnxruntime`` (:class:`~event_clip_ros.model.onnx_runtime.OnnxRuntimeEncoder`): the
  encoder exported by ``event-clip export --onnx`` (:mod:`~event_clip_ros.model.onnx_export`),
  on onnxruntime's CPU, CUDA or TensorRT execution provider. The text towers and class heads
  stay the model's (torch): only f_E moves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import numpy as np
import torch

#: The backends ModelSpec.backend, the node's ``backend`` parameter and ``--backend`` accept.
BACKENDS: tuple[str, ...] = ("torch", "onnxruntime")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


class FrameEncoder(ABC):
    """(B, H, W) frames -> (B, D) L2-normalised float32 embeddings on the model's device."""

    backend: ClassVar[str]

    @abstractmethod
    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor: ...

    @abstractmethod
    def describe(self) -> str:
        """One line for logs: the backend and where it runs."""

    def place(self, device: torch.device) -> None:  # noqa: B027 (optional hook, a no-op by default)
        """Follow the model to ``device`` (:meth:`EventClip.place`); nothing to do by default."""


class TorchTower(Protocol):
    """What :class:`TorchEncoder` needs of the model (an :class:`~event_clip_ros.model.event_clip.EventClip`,
    named structurally so that this module does not import the one that imports it)."""

    device: torch.device
    precision: str

    def encode_frames(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor: ...


class TorchEncoder(FrameEncoder):
    """f_E of the model itself, in torch (its device and autocast precision)."""

    backend = "torch"

    def __init__(self, model: TorchTower) -> None:
        self._model = model

    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self._model.encode_frames(torch.as_tensor(frames))

    def describe(self) -> str:
        return f"torch ({self._model.device}, {self._model.precision})"
