"""Which model filled an index: a :class:`ModelStamp` of its metadata and a fingerprint of its weights.

Embeddings of different models are not comparable, so an index filled through a
model is stamped with it and refuses another (:class:`ModelMismatchError`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..event_clip import EventClip

_FINGERPRINT_SAMPLES = 64  #: values sampled per weight tensor for the model fingerprint


class ModelMismatchError(ValueError):
    """The model used with an index is not the model that filled it."""


def model_fingerprint(model: "EventClip") -> str:
    """A short hash that tells models apart: their frame/normalisation metadata, open_clip
    config and weights (every tensor's name, shape and 64 evenly spaced values).

    Sampling keeps it at ~10 ms for ViT-B/32 on a CPU while any retraining or a
    different initialisation changes it; it identifies a model, it is not a
    tamper check. Provenance (where the weights were loaded from) is left out,
    so the same weights loaded from another file match.
    """
    meta = model.meta
    identity = {"model_cfg": meta.model_cfg, "frame": meta.frame, "event_mean": meta.event_mean, "event_std": meta.event_std}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    samples = []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            flat = tensor.detach().reshape(-1)
            n = min(flat.numel(), _FINGERPRINT_SAMPLES)
            idx = torch.arange(n, device=flat.device) * (flat.numel() - 1) // max(n - 1, 1)
            samples.append(flat[idx].float())
            digest.update(f"{name}{tuple(tensor.shape)};".encode())
    if samples:
        digest.update(torch.cat(samples).cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class ModelStamp:
    """Which model filled an index (a summary of its metadata and its fingerprint)."""

    arch: str | None
    pretrained: str
    embed_dim: int
    fingerprint: str

    @classmethod
    def of(cls, model: "EventClip") -> "ModelStamp":
        return cls(model.meta.arch, model.meta.pretrained, model.embed_dim, model_fingerprint(model))

    def describe(self) -> str:
        return f"{self.arch or 'custom'}/{self.pretrained} (dim {self.embed_dim}, fingerprint {self.fingerprint})"
