"""The pieces every way of building an :class:`EventClip` shares: the project's registered
architectures (``model_configs/*.json``), their open_clip configs, the tokenizer and image
transform of a model, and wrapping an open_clip model as an EventClip.

:mod:`.factory` (from an architecture and pretrained weights) and :mod:`.checkpoint` (from a
file) both build on these, so neither imports the other's way of building.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import open_clip
import torch

from .event_clip import ClipModel, EventClip, ModelMeta

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)


def model_config(arch: str) -> dict[str, Any]:
    """The open_clip config of a registered architecture (a copy)."""
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}; known: {', '.join(open_clip.list_models())}")
    return copy.deepcopy(cfg)


def make_tokenizer(meta: ModelMeta):
    """The text tokenizer of the model (open_clip's for a named arch, else CLIP's BPE)."""
    if meta.arch is not None:
        return open_clip.get_tokenizer(meta.arch)
    ctx = meta.model_cfg["text_cfg"].get("context_length", 77)
    return open_clip.tokenizer.SimpleTokenizer(context_length=ctx)


def make_image_preprocess(clip: ClipModel):
    """CLIP's evaluation transform for images (resize, centre crop, mean/std)."""
    pp = open_clip.get_model_preprocess_cfg(clip)
    return open_clip.image_transform(
        pp["size"], is_train=False, mean=pp["mean"], std=pp["std"], resize_mode=pp.get("resize_mode"), interpolation=pp.get("interpolation")
    )


def assemble(clip: ClipModel, meta: ModelMeta, event_tower: torch.nn.Module | None = None) -> EventClip:
    """Wrap an open_clip model and its metadata as an EventClip (f_E copied from f_I when not given)."""
    return EventClip(clip, meta, make_tokenizer(meta), make_image_preprocess(clip), event_tower)
