"""Import of the paper's released checkpoints ``vitb.pt`` / ``vitl.pt`` as an :class:`EventClip`.

The paper's files are ``torch.save({"checkpoint": state_dict, "optimizer": ...})``
of three OpenAI-layout CLIPs (paper-method.md 1.3): ``encoder_k.`` (trained; its
image tower is f_E), ``encoder_q.`` (frozen image encoder f_I) and
``foundation_model.`` (frozen teacher and text encoder).

Loading never runs code from a file: torch files are unpickled with
``weights_only=True`` only, allowing tensors, plain containers and the classes
in :data:`SAFE_GLOBALS`; a pickle that needs anything else is refused with a
:class:`~.clip_weights.CheckpointError` naming it. Weights with NaN or Inf values
(a damaged file) are refused, naming the tensors.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import torch

from .assembly import assemble, model_config
from .clip_weights import (
    CheckpointError,
    build_clip,
    default_preprocess,
    existing_file,
    load_exactly,
    registered_arch,
    require_finite,
)
from .event_clip import EventClip, ModelMeta
from .torch_load import refused_global, torch_load_reason

log = logging.getLogger(__name__)

OFFICIAL_FRAME = {"representation": "official", "clamp": None, "keep_aspect": False}
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # in OpenAI's JIT archives only

#: Classes a torch checkpoint may hold besides tensors and plain containers (torch's
#: weights_only defaults). Rebuilding one runs no code from the file. argparse.Namespace:
#: the training arguments some training scripts store beside the state dict (the paper's
#: released vitb.pt / vitl.pt need nothing beyond the defaults).
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


def import_official_checkpoint(path: str | os.PathLike) -> EventClip:
    """Load the paper's ``vitb.pt`` / ``vitl.pt`` as an fp32 EventClip on the CPU in eval mode.

    The architecture is inferred from the tensor shapes (OpenAI ViT layout, QuickGELU;
    recorded as ``meta.arch`` when it equals a registered open_clip config, e.g.
    ``ViT-B-32-quickgelu``). The towers:

    * f_E: ``encoder_k``'s image tower.
    * f_T (and CLIP's logit scale): ``encoder_k``'s text tower, exactly what the official
      loader uses (it loads all of ``encoder_k`` into ``clip.load``). Training never feeds
      it, so it equals the original CLIP's; a ``foundation_model`` text tower that differs
      from it is reported with a warning.
    * f_I: ``encoder_q``'s image tower (the frozen image encoder f_E was aligned to), else
      ``foundation_model``'s, else ``encoder_k``'s with a warning (then f_I equals f_E).

    Frames use the official representation (per-polarity counts mapped to [-1, 1)) with no
    mean/std normalisation of events, as in the official code. The file is unpickled with
    ``weights_only=True`` and :data:`SAFE_GLOBALS` only; the weights used must be finite.
    """
    path = existing_file(path)
    state = _official_state_dict(path)
    towers = {name: _strip_prefix(state, name + ".") for name in ("encoder_k", "encoder_q", "foundation_model")}
    trained = towers["encoder_k"]
    if not trained:
        prefixes = sorted({k.split(".", 1)[0] for k in state})[:8]
        raise CheckpointError(
            f"{path}: the 'checkpoint' state dict has no 'encoder_k.' weights (top-level prefixes: {', '.join(prefixes) or 'none'}); "
            f"expected the paper's layout with encoder_k (event encoder), encoder_q and foundation_model"
        )
    try:
        model_cfg = infer_openai_config(trained)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: encoder_k: {exc}") from exc
    arch = registered_arch(model_cfg)
    if arch is not None:
        model_cfg = model_config(arch)

    image_source = next((name for name in ("encoder_q", "foundation_model") if _visual(towers[name])), "encoder_k")
    if image_source == "encoder_k":
        log.warning("%s: no encoder_q or foundation_model image tower; f_I is encoder_k's (image embeddings come from f_E)", path)
    teacher_text = _non_visual(towers["foundation_model"])
    if teacher_text and not _same_tensors(teacher_text, _non_visual(trained)):
        log.warning("%s: foundation_model's text tower differs from encoder_k's; using encoder_k's (the official loader's choice)", path)

    require_finite(path, {k: v for k, v in state.items() if k.startswith(("encoder_k.", f"{image_source}.visual."))})
    clip = build_clip(model_cfg)
    open_clip.set_model_preprocess_cfg(clip, default_preprocess(clip))
    load_exactly(clip, {**_non_visual(trained), **_visual(towers[image_source])},
                 f"{path}: the CLIP weights (encoder_k text, {image_source} image) do not fit the inferred architecture")
    event_tower = copy.deepcopy(clip.visual)
    load_exactly(event_tower, _strip_prefix(_visual(trained), "visual."),
                 f"{path}: encoder_k's image tower does not fit the inferred architecture")
    meta = ModelMeta(model_cfg=model_cfg, arch=arch, pretrained=f"official:{path.name}", frame=dict(OFFICIAL_FRAME))
    return assemble(clip, meta, event_tower).eval()


def _official_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """``torch.load(path)["checkpoint"]`` with clear errors (see :func:`safe_torch_load`)."""
    obj = safe_torch_load(path)
    if not isinstance(obj, Mapping) or "checkpoint" not in obj:
        keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path}: a torch file without a 'checkpoint' entry (has: {keys}). The paper's vitb.pt / vitl.pt hold "
            f"{{'checkpoint': state_dict, 'optimizer': ...}}; a plain CLIP weights file is loaded with --pretrained FILE"
        )
    state = obj["checkpoint"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'checkpoint' is not a state dict of tensors")
    return state


def safe_torch_load(path: Path) -> Any:
    """``torch.load(path)`` on the CPU that never runs code from the file.

    ``weights_only=True`` with :data:`SAFE_GLOBALS` allowed (scoped to this call).
    Raises CheckpointError naming the class or function a pickle needs beyond
    those (refused: rebuilding it would run code), or saying the file is not a
    readable torch file (truncated, corrupt).
    """
    mmap = zipfile.is_zipfile(path)  # zip archives load lazily (vitl.pt holds three CLIPs and optimizer state)
    try:
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # a damaged pickle fails in many ways (KeyError, struct.error, ...)
        refused = refused_global(exc)
        if refused is not None:  # torch's own message suggests weights_only=False: not shown
            allowed = ", ".join(f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS)
            raise CheckpointError(
                f"{path}: refused: its pickle needs {refused}, which is not an allowed class (allowed: tensors, plain "
                f"containers, {allowed}); loading it would run code from the file"
            ) from None
        reason = f"{type(exc).__name__}: {torch_load_reason(exc)}"
        raise CheckpointError(f"{path}: not a readable torch file, truncated or corrupt? ({reason})") from exc


def infer_openai_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The open_clip config of an OpenAI-layout ViT CLIP state dict, from its tensor shapes.

    The inference of open_clip's ``build_model_from_openai_state_dict`` (which also casts
    the weights to fp16): attention heads are width // 64, activations QuickGELU.
    """
    if "visual.proj" not in state:
        raise CheckpointError("not an OpenAI-layout ViT CLIP (no visual.proj); only ViT checkpoints are supported")
    try:
        vision_width, _, patch, _ = state["visual.conv1.weight"].shape
        grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        text_width = state["ln_final.weight"].shape[0]
        return {
            "embed_dim": int(state["text_projection"].shape[1]),
            "quick_gelu": True,  # OpenAI CLIP was trained with QuickGELU
            "vision_cfg": {
                "image_size": int(patch * grid),
                "layers": sum(1 for k in state if k.startswith("visual.transformer.resblocks.") and k.endswith(".attn.in_proj_weight")),
                "width": int(vision_width),
                "patch_size": int(patch),
            },
            "text_cfg": {
                "context_length": int(state["positional_embedding"].shape[0]),
                "vocab_size": int(state["token_embedding.weight"].shape[0]),
                "width": int(text_width),
                "heads": int(text_width // 64),
                "layers": len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")}),
            },
        }
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"lacks OpenAI CLIP weights needed to infer the architecture ({exc})") from exc


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _visual(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("visual.")}


def _non_visual(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("visual.") and k not in _OPENAI_EXTRA_KEYS}


def _same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k].float(), b[k].float()) for k in a)
