"""Open_clip models from architecture configs, filled with checked weights: what our checkpoint format
(:mod:`.checkpoint`) and the import of the paper's release (:mod:`.official_checkpoint`) share.

:func:`build_clip` makes an fp32 open_clip model of a config with random weights (tower weights are
never fetched); :func:`load_exactly` fills a module and names every missing, unexpected or mis-shaped
tensor; :func:`require_finite` refuses NaN / Inf weights. Problems raise :class:`CheckpointError`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP
from open_clip.transform import PreprocessCfg
from torch import nn

from .event_clip import ClipModel
from .finite import describe_nonfinite, nonfinite_tensors


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not describe a loadable model."""


def build_clip(model_cfg: Mapping[str, Any]) -> ClipModel:
    """An fp32 open_clip model (random weights) of the architecture ``model_cfg`` describes.

    The class follows open_clip's factory: ``CustomTextCLIP`` for ``custom_text`` or Hugging
    Face text configs, else ``CLIP``. Tower weights are never fetched (they come from the
    checkpoint). Raises CheckpointError for configs it cannot build.
    """
    if not isinstance(model_cfg, Mapping) or not all(isinstance(model_cfg.get(k), Mapping) for k in ("vision_cfg", "text_cfg")):
        raise CheckpointError(f"model_cfg must be an open_clip config with vision_cfg and text_cfg, got {model_cfg!r:.200}")
    cfg = copy.deepcopy(dict(model_cfg))
    if "multimodal_cfg" in cfg:
        raise CheckpointError("CoCa models (multimodal_cfg) are not supported as event encoders")
    text_cfg, vision_cfg = cfg["text_cfg"], cfg["vision_cfg"]
    custom_text = bool(cfg.pop("custom_text", False)) or "hf_model_name" in text_cfg
    if "hf_model_name" in text_cfg:
        text_cfg["hf_model_pretrained"] = False
    if "timm_model_name" in vision_cfg:
        vision_cfg["timm_model_pretrained"] = False
    try:
        return (CustomTextCLIP if custom_text else CLIP)(**cfg)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:
        raise CheckpointError(f"cannot build an open_clip model from the config {model_cfg!r:.300} ({exc})") from exc


def registered_arch(model_cfg: Mapping[str, Any]) -> str | None:
    """The name of the registered open_clip config describing the same architecture, if any."""
    target = _canonical_config(model_cfg)
    if target is None:
        return None
    return next((name for name in open_clip.list_models() if _canonical_config(open_clip.get_model_config(name)) == target), None)


def _canonical_config(cfg: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``cfg`` with every default filled in, so equal architectures compare equal."""
    if not cfg or "vision_cfg" not in cfg or "text_cfg" not in cfg:
        return None
    try:
        vision = dataclasses.asdict(CLIPVisionCfg(**cfg["vision_cfg"]))
        text = dataclasses.asdict(CLIPTextCfg(**cfg["text_cfg"]))
    except TypeError:
        return None
    rest = {k: v for k, v in cfg.items() if k not in ("vision_cfg", "text_cfg")}
    rest.setdefault("quick_gelu", False)
    rest.setdefault("custom_text", False)
    return {**rest, "vision_cfg": vision, "text_cfg": text}


def default_preprocess(clip: ClipModel) -> dict[str, Any]:
    """open_clip's default image preprocessing (OpenAI mean/std, bicubic) at the model's input size."""
    return dataclasses.asdict(PreprocessCfg(size=clip.visual.image_size))


def load_exactly(module: nn.Module, state: Mapping[str, torch.Tensor], context: str) -> None:
    """``module.load_state_dict(state, strict=True)`` (values cast to the module's dtypes),
    with a CheckpointError naming missing, unexpected and mis-shaped tensors."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{label} ({len(names)}): {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("shape file vs model", mis_shaped))
        if names
    ]
    if problems:
        raise CheckpointError(f"{context}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def require_finite(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError naming the tensors of ``state`` that hold NaN or Inf."""
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{path}: NaN or Inf in {describe_nonfinite(bad)}: the file is damaged (an incomplete copy or download, "
            "or a disk error) or the model diverged in training; refused"
        )


def existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    return path
