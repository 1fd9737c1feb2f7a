"""Event-CLIP checkpoints: our single-file ``.safetensors`` format, and the loader that also takes the
paper's released ``vitb.pt`` / ``vitl.pt`` (imported by :mod:`.official_checkpoint`).

Our format is one safetensors file holding every weight of an :class:`EventClip`:
f_E (``event_tower.*``) and CLIP (``clip.*``: f_I and f_T), so a checkpoint loads
offline with no other file. Its header metadata holds :class:`ModelMeta` as JSON
under ``"event_clip"`` and open_clip's image preprocessing under
``"open_clip_preprocess"``. f_I is stored even when it equals a published CLIP:
that costs one image tower (ViT-B/32: 88M parameters, 0.35 GB in fp32) and buys
files that never depend on a download. Whole checkpoints in fp32: ViT-B/32 239M
parameters, 0.96 GB; ViT-L/14 732M, 2.9 GB; EventCLIP-Tiny 7.7M, 31 MB.

Loading never runs code from a file (safetensors holds no code; torch files are
unpickled with ``weights_only=True``, see :mod:`.official_checkpoint`). Weights
with NaN or Inf values (a damaged file) are refused at load, naming the tensors,
and are never written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from pathlib import Path
from typing import Any

import open_clip
import safetensors
import safetensors.torch
import torch

from ..atomic_files import atomic_write_file
from .assembly import assemble
from .clip_weights import CheckpointError, build_clip, default_preprocess, existing_file, load_exactly, require_finite
from .event_clip import FORMAT_VERSION, EventClip, ModelMeta
from .finite import describe_nonfinite, nonfinite_tensors
from .official_checkpoint import import_official_checkpoint

__all__ = ["META_KEY", "PREPROCESS_KEY", "CheckpointError", "load_any_checkpoint", "load_checkpoint", "save_checkpoint"]

META_KEY = "event_clip"  #: safetensors header metadata key of the ModelMeta JSON
PREPROCESS_KEY = "open_clip_preprocess"  #: header metadata key of open_clip's image preprocessing (JSON)

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # first byte of a legacy torch.save (pickle protocol >= 2)
_ACCEPTED = (
    "accepted checkpoints: an event_clip_ros .safetensors file (written by save_checkpoint / training) "
    "or the paper's released vitb.pt / vitl.pt (a torch file with a 'checkpoint' state dict)"
)


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
    path = existing_file(path)
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
    open_clip.set_model_preprocess_cfg(clip, _parse_preprocess(path, metadata.get(PREPROCESS_KEY)) or default_preprocess(clip))
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except (safetensors.SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot read the tensors ({exc})") from exc
    require_finite(path, tensors)
    model = assemble(clip, meta)
    load_exactly(model, tensors, f"{path}: the tensors do not fit the model its metadata describes ({meta.arch or 'unnamed config'})")
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


# ----------------------------------------------------------------------------------- either kind
def load_any_checkpoint(path: str | os.PathLike) -> EventClip:
    """Load our ``.safetensors`` checkpoint or the paper's torch file, told apart by content."""
    path = existing_file(path)
    if _read_safetensors_header(path) is not None:
        return load_checkpoint(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        return import_official_checkpoint(path)
    raise CheckpointError(f"{path} is neither a safetensors nor a torch file; {_ACCEPTED}")
