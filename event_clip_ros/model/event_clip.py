"""The event encoder f_E beside CLIP's frozen image tower f_I and text tower f_T.

Following Jeong et al. (arXiv 2412.03093), f_E is a copy of CLIP's image tower
that takes event frames; f_I and f_T stay CLIP's and frozen, so event, image and
text embeddings share one space (zero-shot labels, retrieval across modalities).

An event frame (B, H, W) from :mod:`event_clip_ros.events.frames` is replicated
to 3 channels and normalised by the per-channel mean/std of the checkpoint's
metadata (``event_mean`` / ``event_std``; null: none) before f_E, in one place,
:meth:`EventClip.frames_to_input`, which the node, the CLI, evaluation and
training all go through.

Inference (:meth:`EventClip.embed_frames`, :meth:`EventClip.embed_windows`) runs f_E through
the model's :class:`~event_clip_ros.model.backends.FrameEncoder`: its own torch tower by
default, or an exported ONNX encoder on onnxruntime (:meth:`EventClip.use_encoder`).

Which statistics (:func:`event_input_stats`): f_E starts as a copy of f_I, which
was trained on CLIP-normalised images, so a frame enters it as an image would.
A "paper" frame lies in [0, 1) like an image's pixels, so it gets CLIP's image
mean/std (an empty pixel becomes what a black pixel is for f_I). An "official"
frame is already mapped to [-1, 1) by (v - 0.5) * 2, the released code's input
normalisation (mean 0.5 / std 0.5, close to CLIP's 0.48 / 0.27, and what the
released vitb.pt / vitl.pt were trained on), so it gets none. Checkpoints
trained before this rule (``event_mean: null``) keep their raw input.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch
from torch import nn

from ..batching import batched
from ..events.frames import FrameConfig, build_frames_torch
from ..events.types import SensorSize
from .backends import FrameEncoder, TorchEncoder
from .device import autocast, resolve_device, resolve_precision

if TYPE_CHECKING:
    from open_clip.model import CLIP, CustomTextCLIP

#: The model open_clip builds (f_I, f_T, logit_scale); open_clip ships no type information, so its
#: attributes are not checked.
ClipModel: TypeAlias = "CLIP | CustomTextCLIP"
FORMAT_VERSION = 1


@dataclass
class ModelMeta:
    """What a checkpoint records besides its weights (stored as JSON)."""

    model_cfg: dict[str, Any]  #: open_clip config: embed_dim, vision_cfg, text_cfg, quick_gelu, ...
    arch: str | None = None  #: open_clip architecture name, when the config is a registered one
    pretrained: str = "none"  #: where the CLIP weights came from ("openai", a file, "official:vitb.pt", "none")
    frame: dict[str, Any] = field(default_factory=lambda: {"representation": "paper", "clamp": None, "keep_aspect": False})
    event_mean: list[float] | None = None  #: per-channel mean subtracted from the 3-channel frame (None: none)
    event_std: list[float] | None = None  #: per-channel std the frame is divided by (None: none)
    training: dict[str, Any] | None = None  #: the training configuration that produced f_E, if any
    format_version: int = FORMAT_VERSION

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of f_E's input."""
        size = self.model_cfg["vision_cfg"].get("image_size", 224)
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def frame_config(self) -> FrameConfig:
        """The frame representation f_E was trained with, at its input size."""
        return FrameConfig(
            representation=self.frame["representation"],
            clamp=self.frame.get("clamp"),
            out_size=self.input_size,
            keep_aspect=bool(self.frame.get("keep_aspect", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMeta":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "model_cfg" not in known:
            raise ValueError("model metadata lacks model_cfg")
        return cls(**known)


def event_input_stats(representation: str, image_mean: Sequence[float], image_std: Sequence[float]
                      ) -> tuple[list[float], list[float]]:
    """The (mean, std) a frame of ``representation`` is normalised with before f_E (module docstring):
    CLIP's image statistics for "paper" frames in [0, 1), identity for "official" frames (already in [-1, 1))."""
    if representation == "official":
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if representation == "paper":
        mean, std = [float(v) for v in image_mean], [float(v) for v in image_std]
        if len(mean) != 3 or len(std) != 3 or not all(v > 0 for v in std):
            raise ValueError(f"need 3 image means and 3 positive stds, got {image_mean} / {image_std}")
        return mean, std
    raise ValueError(f"unknown frame representation {representation!r}")


class EventClip(nn.Module):
    """f_E (``event_tower``, trainable) with CLIP (``clip``: f_I and f_T, frozen)."""

    event_mean: torch.Tensor  # (1, 3, 1, 1) buffers of the input normalisation (_set_event_norm)
    event_std: torch.Tensor

    def __init__(self, clip: ClipModel, meta: ModelMeta, tokenizer, image_preprocess, event_tower: nn.Module | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.event_tower: nn.Module = event_tower if event_tower is not None else copy.deepcopy(clip.visual)
        self.meta = meta
        self.tokenizer = tokenizer
        self.image_preprocess = image_preprocess
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip.eval()
        self._set_event_norm()
        self.device = torch.device("cpu")
        self.precision = "fp32"
        self.frame_encoder: FrameEncoder = TorchEncoder(self)  #: what runs f_E at inference (embed_frames)

    def _set_event_norm(self) -> None:
        mean = list(self.meta.event_mean) if self.meta.event_mean is not None else [0.0, 0.0, 0.0]
        std = list(self.meta.event_std) if self.meta.event_std is not None else [1.0, 1.0, 1.0]
        self._normalise_events = mean != [0.0, 0.0, 0.0] or std != [1.0, 1.0, 1.0]
        device = getattr(self, "device", torch.device("cpu"))
        self.register_buffer("event_mean", torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("event_std", torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1),
                             persistent=False)

    def set_event_input(self, frame: dict[str, Any], mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        """Set the frame representation and the input normalisation f_E uses (recorded in the metadata, so a
        checkpoint saved afterwards carries them)."""
        self.meta.frame = dict(frame)
        self.meta.event_mean = None if mean is None else [float(v) for v in mean]
        self.meta.event_std = None if std is None else [float(v) for v in std]
        self.meta.frame_config()  # validates the representation
        self._set_event_norm()

    def train(self, mode: bool = True) -> "EventClip":
        super().train(mode)
        self.clip.eval()  # f_I and f_T stay in eval mode (frozen)
        return self

    def place(self, device: str | torch.device = "auto", precision: str = "auto") -> EventClip:
        """Move to ``device`` ("auto": CUDA when present) and pick the autocast precision."""
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.to(self.device)
        self.frame_encoder.place(self.device)
        return self

    def use_encoder(self, encoder: FrameEncoder | None) -> "EventClip":
        """Run f_E at inference through ``encoder`` (e.g. an ONNX file on onnxruntime); None: the torch tower."""
        self.frame_encoder = TorchEncoder(self) if encoder is None else encoder
        return self

    # ----------------------------------------------------------------- encoders
    @property
    def embed_dim(self) -> int:
        return int(self.meta.model_cfg["embed_dim"])

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, exp(logit_scale) (100 for OpenAI CLIP)."""
        return float(self.clip.logit_scale.detach().exp().clamp(max=100.0))

    @property
    def frame_config(self) -> FrameConfig:
        return self.meta.frame_config()

    def frames_to_input(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W) frames -> (B, 3, H, W) f_E input (replicated, normalised as trained)."""
        if frames.ndim != 3 or tuple(frames.shape[1:]) != self.meta.input_size:
            raise ValueError(f"expected frames of shape (B, {self.meta.input_size[0]}, {self.meta.input_size[1]}), got "
                             f"{tuple(frames.shape)}")
        x = frames.to(self.device, torch.float32).unsqueeze(1).expand(-1, 3, -1, -1)
        return (x - self.event_mean) / self.event_std if self._normalise_events else x

    def encode_frames(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Event embeddings f_E(frames), float32, L2-normalised by default (gradients flow)."""
        with autocast(self.device, self.precision):
            z = self.event_tower(self.frames_to_input(frames))
        z = z.float()
        return nn.functional.normalize(z, dim=-1) if normalize else z

    def encode_images(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings f_I(images) of preprocessed (B, 3, H, W) images, float32."""
        with autocast(self.device, self.precision):
            z = self.clip.encode_image(images.to(self.device))
        z = z.float()
        return nn.functional.normalize(z, dim=-1) if normalize else z

    def encode_texts(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Text embeddings f_T(texts), float32."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        with autocast(self.device, self.precision):
            z = self.clip.encode_text(tokens)
        z = z.float()
        return nn.functional.normalize(z, dim=-1) if normalize else z

    def embed_frames(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Normalised embeddings (B, D) of (B, H, W) frames (tensor or array), without gradients, through
        :attr:`frame_encoder` (the torch tower, or an exported encoder on onnxruntime)."""
        return self.frame_encoder(frames)

    @torch.inference_mode()
    def embed_windows(self, windows_events: Sequence[np.ndarray], size: SensorSize, batch_size: int = 64) -> torch.Tensor:
        """Normalised embeddings (N, D) of N event windows: frames built on the model's device, batched,
        through :meth:`embed_frames`."""
        out = [self.embed_frames(build_frames_torch(batch, size, self.frame_config, self.device))
               for batch in batched(windows_events, batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim, device=self.device)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Normalised text embeddings (N, D), batched, without gradients."""
        parts = [self.encode_texts(batch) for batch in batched(texts, batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, self.embed_dim, device=self.device)

    @torch.inference_mode()
    def embed_images(self, images: Sequence, batch_size: int = 64) -> torch.Tensor:
        """Normalised image embeddings (N, D) of PIL images (CLIP preprocessing applied), batched."""
        out = [self.encode_images(torch.stack([self.image_preprocess(im) for im in batch]))
               for batch in batched(images, batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.embed_dim, device=self.device)
