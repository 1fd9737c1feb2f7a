"""Build an :class:`EventClip`: from an open_clip architecture and pretrained tag, a local
weights file, our own checkpoint or the paper's released checkpoint.

Tiny architectures registered by the project (``model_configs/*.json``) make every code
path testable on a CPU in seconds: ``EventCLIP-Tiny`` (a ViT, 224 px, like the paper's
towers) and ``EventCLIP-Toy48`` (CLIP's ModifiedResNet at 48 px, width 16, the toy preset's
teacher: on 36 synthetic glyph classes a tiny ResNet reached 96% supervised accuracy in
400 steps of 64 where a patch-8 ViT of the same cost reached 34%, so its contrastive
teacher becomes a usable stand-in for CLIP within the toy preset's time budget).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from huggingface_hub import constants

from .assembly import assemble, make_image_preprocess, make_tokenizer, model_config
from .backends import check_backend
from .checkpoint import load_any_checkpoint
from .event_clip import EventClip, ModelMeta
from .finite import describe_nonfinite, nonfinite_tensors
from .onnx_runtime import parse_providers

__all__ = [
    "ModelSpec", "PretrainedUnavailableError", "assemble", "create_event_clip", "make_image_preprocess",
    "make_tokenizer", "model_config",
]


class PretrainedUnavailableError(OSError):
    """Pretrained CLIP weights could not be found locally nor downloaded."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build (``checkpoint`` wins over ``arch``/``pretrained``) and what runs its f_E at inference
    (``backend``: torch, or the ``onnx`` file exported from it on onnxruntime, see :mod:`.backends`)."""

    arch: str = "ViT-B-32"  #: open_clip architecture name
    pretrained: str | None = "openai"  #: open_clip pretrained tag, a local weights file, or None (random init)
    checkpoint: str | None = None  #: our .safetensors checkpoint or the paper's vitb.pt / vitl.pt
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    precision: str = "auto"  #: auto | fp32 | fp16 | bf16
    cache_dir: str | None = None  #: open_clip download cache (default ~/.cache/huggingface)
    backend: str = "torch"  #: torch | onnxruntime
    onnx: str | None = None  #: backend onnxruntime: f_E of this model exported by ``event-clip export --onnx``
    onnx_providers: str = "auto"  #: backend onnxruntime: auto, or a list of tensorrt, cuda, cpu (.onnx_runtime)

    def __post_init__(self) -> None:
        check_backend(self.backend)
        if self.backend == "onnxruntime" and not self.onnx:
            raise ValueError("backend onnxruntime needs the exported encoder (onnx file): "
                             "event-clip export --onnx FILE.onnx --checkpoint CHECKPOINT writes it")
        parse_providers(self.onnx_providers)

    @property
    def source(self) -> str:
        """Where the model comes from, for messages."""
        return self.checkpoint or f"{self.arch} ({self.pretrained or 'none'} weights)"


def _hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_unless_hub_reachable() -> Iterator[None]:
    """Put huggingface_hub in offline mode (cache only, no retries) when the hub cannot be reached.

    Without this a missing cache costs about 45 s of download retries before failing.
    """
    saved = constants.HF_HUB_OFFLINE
    if not saved and not _hub_reachable():
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _create_clip(arch: str, pretrained: str | None, cache_dir: str | None) -> torch.nn.Module:
    if pretrained is None:
        return open_clip.create_model(arch, pretrained=None)
    is_file = os.path.sep in pretrained or Path(pretrained).suffix in (".bin", ".pt", ".pth", ".safetensors")
    if is_file and not Path(pretrained).is_file():
        raise FileNotFoundError(f"pretrained weights file {pretrained} does not exist")
    if not is_file and pretrained not in open_clip.list_pretrained_tags_by_model(arch):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise ValueError(f"no pretrained tag {pretrained!r} for {arch} (known tags: {tags}); pass a weights file instead")
    try:
        with _offline_unless_hub_reachable():
            clip = open_clip.create_model(arch, pretrained=pretrained, cache_dir=cache_dir)
    except (OSError, RuntimeError, ValueError) as exc:
        if is_file:
            raise
        raise PretrainedUnavailableError(
            f"could not load pretrained weights {arch}/{pretrained}: not in the local cache and the download failed. "
            f"Offline, download them on a connected machine (open_clip.create_model({arch!r}, pretrained={pretrained!r}) fills "
            f"~/.cache/huggingface) and copy the cache, or pass the weights file itself: --pretrained /path/to/open_clip_model.safetensors "
            f"(an open_clip or OpenAI CLIP file), or an event checkpoint with --checkpoint"
        ) from exc
    bad = nonfinite_tensors(clip.state_dict())
    if bad:
        raise ValueError(f"pretrained weights {arch}/{pretrained}: NaN or Inf in {describe_nonfinite(bad)}: the file is damaged; refused")
    return clip


def create_event_clip(spec: ModelSpec = ModelSpec()) -> EventClip:
    """Build the model described by ``spec``, placed on its device, in eval mode, its f_E on ``spec.backend``
    (onnxruntime: the ONNX file checked against the model, OnnxModelError when it belongs to another)."""
    if spec.checkpoint is not None:
        model = load_any_checkpoint(spec.checkpoint)
    else:
        cfg = model_config(spec.arch)  # unknown architectures fail here, with the list of known ones
        clip = _create_clip(spec.arch, spec.pretrained, spec.cache_dir)
        model = assemble(clip, ModelMeta(model_cfg=cfg, arch=spec.arch, pretrained=spec.pretrained or "none"))
    model.place(spec.device, spec.precision).eval()
    if spec.backend == "onnxruntime":
        from .onnx_runtime import OnnxRuntimeEncoder

        assert spec.onnx is not None  # ModelSpec refuses onnxruntime without a file
        model.use_encoder(OnnxRuntimeEncoder.open(spec.onnx, model, spec.onnx_providers, spec.precision, spec.source))
    return model
