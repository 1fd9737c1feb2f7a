"""Event-CLIP checkpoints: our single-file ``.safetensors`` format, and import of the
paper's released ``vitb.pt`` / ``vitl.pt``.

Our format is one safetensors file holding every weight of an :class:`EventClip`:
f_E (``event_tower.*``) and CLIP (``clip.*``: f_I and f_T), so a checkpoint loads
offline with no other file. Its header metadata holds :class:`ModelMeta` as JSON
under ``"event_clip"`` and open_clip's image preprocessing under
``"open_clip_preprocess"``. f_I is stored even when it equals a published CLIP:
that costs one image tower (ViT-B/32: 88M parameters, 0.35 GB in fp32) and buys
files that never depend on a download. Whole checkpoints in fp32: ViT-B/32 239M
parameters, 0.96 GB; ViT-L/14 732M, 2.9 GB; EventCLIP-Tiny 7.7M, 31 MB.

The paper's files are ``torch.save({"checkpoint": state_dict, "optimizer": ...})``
of three OpenAI-layout CLIPs (paper-method.md 1.3): ``encoder_k.`` (trained; its
image tower is f_E), ``encoder_q.`` (frozen image encoder f_I) and
``foundation_model.`` (frozen teacher and text encoder).

Loading never runs code from a file: torch files are unpickled with
``weights_only=True`` only, allowing tensors, plain containers and the classes
in :data:`SAFE_GLOBALS`; a pickle that needs anything else is refused with a
:class:`CheckpointError` naming it. Weights with NaN or Inf values (a damaged
file) are refused at load, naming the tensors, and are never written.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import open_clip
import safetensors
import safetensors.torch
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, CustomTextCLIP
from open_clip.transform import PreprocessCfg
from torch import nn

from ..atomic_files import atomic_write_file
from .assembly import assemble, model_config
from .event_clip import FORMAT_VERSION, ClipModel, EventClip, ModelMeta
from .finite import describe_nonfinite, nonfinite_tensors
from .torch_load import refused_global, torch_load_reason

log = logging.getLogger(__name__)

META_KEY = "event_clip"  #: safetensors header metadata key of the ModelMeta JSON
PREPROCESS_KEY = "open_clip_preprocess"  #: header metadata key of open_clip's image preprocessing (JSON)
OFFICIAL_FRAME = {"representation": "official", "clamp": None, "keep_aspect": False}

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # first byte of a legacy torch.save (pickle protocol >= 2)
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # in OpenAI's JIT archives only
_ACCEPTED = (
    "accepted checkpoints: an event_clip_ros .safetensors file (written by save_checkpoint / training) "
    "or the paper's released vitb.pt / vitl.pt (a torch file with a 'checkpoint' state dict)"
)


#: Classes a torch checkpoint may hold besides tensors and plain containers (torch's
#: weights_only defaults). Rebuilding one runs no code from the file. argparse.Namespace:
#: the training arguments some training scripts store beside the state dict (the paper's
#: released vitb.pt / vitl.pt need nothing beyond the defaults).
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not describe a loadable model."""


# ---------------------------------------------------------------------------------------- our format
def save_checkpoint(model: EventClip, path: str | os.PathLike, training: dict[str, Any] | None = None,
                    storage_dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` to one ``.safetensors`` file atomically (:func:`~event_clip_ros.atomic_files.atomic_write_file`:
    temporary file, fsync, rename; a temporary left by an interrupted save is removed by the next save).

    Tensors are stored in their own dtype (fp32 as built), or with ``storage_dtype`` (e.g.
    ``torch.float16``: half the size, for shipping a model; :func:`load_checkpoint` casts back to
    fp32) for the floating-point ones; moved to the CPU and made contiguous; tensors that share
    memory are stored as separate copies. ``training`` (when given) replaces
    ``model.meta.training`` in the file; the model is not changed. Returns the path written.
    Raises CheckpointError, writing nothing, when a weight is NaN or Inf (also after the cast to
    ``storage_dtype``: fp16 overflows above 65504): such a file could only give NaN scores.
    """
    path = Path(path)
    meta = model.meta if training is None else dataclasses.replace(model.meta, training=training)
    metadata = {
        "format": "pt",
        META_KEY: json.dumps(meta.to_dict()),
        PREPROCESS_KEY: json.dumps(open_clip.get_model_preprocess_cfg(model.clip)),
    }
    tensors: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        if storage_dtype is not None and t.is_floating_point():
            t = t.to(storage_dtype)
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen_storages:  # tied or aliased weights: safetensors refuses shared storage
            t = t.clone()
        seen_storages.add(t.untyped_storage().data_ptr())
        tensors[name] = t
    bad = nonfinite_tensors(tensors)
    if bad:
        stored = f" when stored as {storage_dtype}" if storage_dtype is not None else ""
        raise CheckpointError(f"not saving {path}: NaN or Inf{stored} in {describe_nonfinite(bad)}")
    return atomic_write_file(path, lambda tmp: safetensors.torch.save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: str | os.PathLike) -> EventClip:
    """Load a checkpoint written by :func:`save_checkpoint`: an fp32 EventClip on the CPU in eval mode.

    Raises :class:`CheckpointError` for a missing, corrupt or truncated file, a file
    without our metadata (a plain open_clip file), a newer format, tensors that do
    not fit the architecture in the metadata, or NaN / Inf weights.
    """
    path = _existing_file(path)
    header = _read_safetensors_header(path)
    if header is None:
        raise CheckpointError(f"{path} is not a safetensors file; {_ACCEPTED}")
    metadata = header.get("__metadata__") or {}
    if META_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file without event_clip_ros metadata, probably a plain open_clip/CLIP weights "
            f"file: load it as CLIP weights with --pretrained {path} (and --arch), not as an event checkpoint"
        )
    meta = _parse_meta(path, metadata[META_KEY])
    try:
        clip = build_clip(meta.model_cfg)
        meta.frame_config()  # validates the frame settings
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid frame settings in the metadata ({exc})") from exc
    open_clip.set_model_preprocess_cfg(clip, _parse_preprocess(path, metadata.get(PREPROCESS_KEY)) or _default_preprocess(clip))
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read the tensors ({exc})") from exc
    _require_finite(path, tensors)
    model = assemble(clip, meta)
    _load_exactly(model, tensors, f"{path}: the tensors do not fit the model its metadata describes ({meta.arch or 'unnamed config'})")
    return model.eval()


def _parse_meta(path: Path, text: str) -> ModelMeta:
    try:
        meta = ModelMeta.from_dict(json.loads(text))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable event_clip metadata ({exc})") from exc
    if not isinstance(meta.format_version, int):
        raise CheckpointError(f"{path}: invalid format_version {meta.format_version!r} in the metadata")
    if meta.format_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.format_version}, newer than this event_clip_ros supports "
            f"({FORMAT_VERSION}); update event_clip_ros to load it"
        )
    return meta


def _parse_preprocess(path: Path, text: str | None) -> dict[str, Any] | None:
    """open_clip's image preprocessing stored by save_checkpoint (None when absent)."""
    if text is None:
        return None
    try:
        cfg = json.loads(text)
        if not isinstance(cfg, dict) or not {"size", "mean", "std"} <= cfg.keys():
            raise ValueError("expected an object with size, mean and std")
    except ValueError as exc:
        raise CheckpointError(f"{path}: unreadable {PREPROCESS_KEY} metadata ({exc})") from exc
    return cfg


def _read_safetensors_header(path: Path) -> dict[str, Any] | None:
    """The header of a safetensors file, None when the file does not look like one.

    Raises CheckpointError when it looks like one but its header is corrupt or its data truncated.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(9)
        if len(prefix) < 9 or prefix[8:9] != b"{":
            return None
        (header_len,) = struct.unpack("<Q", prefix[:8])
        if header_len > _MAX_HEADER_BYTES:
            return None
        if 8 + header_len > size:
            raise CheckpointError(f"{path} is truncated: its safetensors header needs {8 + header_len} bytes, the file has {size}")
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        data_end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from exc
    if 8 + header_len + data_end > size:
        raise CheckpointError(
            f"{path} is truncated: its tensors need {8 + header_len + data_end} bytes, the file has {size} (incomplete copy or download?)"
        )
    return header


# ------------------------------------------------------------------------------ the paper's release
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
    path = _existing_file(path)
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

    _require_finite(path, {k: v for k, v in state.items() if k.startswith(("encoder_k.", f"{image_source}.visual."))})
    clip = build_clip(model_cfg)
    open_clip.set_model_preprocess_cfg(clip, _default_preprocess(clip))
    _load_exactly(clip, {**_non_visual(trained), **_visual(towers[image_source])},
                  f"{path}: the CLIP weights (encoder_k text, {image_source} image) do not fit the inferred architecture")
    event_tower = copy.deepcopy(clip.visual)
    _load_exactly(event_tower, _strip_prefix(_visual(trained), "visual."), f"{path}: encoder_k's image tower does not fit the "
                                                                           f"inferred architecture")
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


# ----------------------------------------------------------------------------------- either kind
def load_any_checkpoint(path: str | os.PathLike) -> EventClip:
    """Load our ``.safetensors`` checkpoint or the paper's torch file, told apart by content."""
    path = _existing_file(path)
    if _read_safetensors_header(path) is not None:
        return load_checkpoint(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return import_official_checkpoint(path)
    raise CheckpointError(f"{path} is neither a safetensors nor a torch file; {_ACCEPTED}")


# ------------------------------------------------------------------------------- model building
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


def _default_preprocess(clip: ClipModel) -> dict[str, Any]:
    """open_clip's default image preprocessing (OpenAI mean/std, bicubic) at the model's input size."""
    return dataclasses.asdict(PreprocessCfg(size=clip.visual.image_size))


def _load_exactly(module: nn.Module, state: Mapping[str, torch.Tensor], context: str) -> None:
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


def _require_finite(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """CheckpointError naming the tensors of ``state`` that hold NaN or Inf."""
    bad = nonfinite_tensors(state)
    if bad:
        raise CheckpointError(
            f"{path}: NaN or Inf in {describe_nonfinite(bad)}: the file is damaged (an incomplete copy or download, "
            "or a disk error) or the model diverged in training; refused"
        )


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    return path
