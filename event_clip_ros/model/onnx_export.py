"""The event encoder f_E as an ONNX file: export, and what the file records about its model.

``event-clip export --onnx OUT.onnx --checkpoint CKPT`` writes f_E alone:

* input ``frames``: (batch, H, W) float32 event frames exactly as the frame builder makes
  them for this checkpoint (its frame representation, at its input size), i.e. what
  :meth:`EventClip.encode_frames` takes. The replication to 3 channels and the checkpoint's
  event normalisation (``event_mean`` / ``event_std``) are inside the graph, so no caller
  can normalise twice or forget to.
* output ``embeddings``: (batch, D) float32, L2-normalised: what the zero-shot classifier,
  the anomaly scorers and retrieval take.
* the batch axis is dynamic; H, W and D are fixed.

The text tower and the class heads stay in the checkpoint: whoever runs the file (the node,
evaluation, the CLI with ``--backend onnxruntime``) loads the checkpoint for them, and
:func:`check_matches` refuses an ONNX file exported from another model. For that the
file carries :class:`OnnxEncoderInfo` as JSON in its ``metadata_props`` under
``"event_clip_ros"``: the checkpoint's name and SHA-256, architecture, input size,
embedding size, frame representation, normalisation, opset, and two fingerprints: of f_E's
weights and input settings in torch (:func:`encoder_fingerprint`, compared with the model
loaded beside it) and of the file's own weights (a damaged file is refused).

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``),
opset 17 by default. Measured here (2 CPU cores, torch 2.14.1): EventCLIP-Toy48 1 s,
EventCLIP-Tiny 2 s, ViT-B/32 21 s; the torch.export-based exporter (``dynamo=True``) gave the
same embeddings but took 13 s for Toy48 and needs the onnxscript package besides. The file
is written atomically (:mod:`event_clip_ros.atomic_files`) and only after onnxruntime (CPU)
and torch agreed on random frames (cosine >= :data:`MIN_COSINE`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..atomic_files import atomic_write_bytes
from .event_clip import EventClip

if TYPE_CHECKING:
    import onnx

META_KEY = "event_clip_ros"  #: metadata_props key of the OnnxEncoderInfo JSON
FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "frames", "embeddings"
DEFAULT_OPSET = 17
OPSETS = range(14, 21)  #: what the TorchScript exporter of torch 2.x writes (LayerNormalization is an op from 17)
#: Smallest cosine between the ONNX and the torch embeddings of the same frames accepted at export.
MIN_COSINE = 0.9999
_EXPORT_EXAMPLES = 2  # frames of the traced example and of the agreement check

_EXPORT_HINT = "export it from this model: event-clip export --onnx FILE --checkpoint CHECKPOINT"


class OnnxModelError(ValueError):
    """An ONNX file that is missing, unreadable, damaged, not ours, or exported from another model."""


@dataclass(frozen=True)
class OnnxEncoderInfo:
    """What an exported encoder file records about the model it came from (stored as JSON)."""

    arch: str | None  #: open_clip architecture (None: a custom config)
    pretrained: str  #: where the CLIP weights came from ("none" for random weights)
    checkpoint: str | None  #: file name of the checkpoint exported from (None: built from arch / pretrained)
    checkpoint_sha256: str | None  #: SHA-256 of that checkpoint file
    input_size: tuple[int, int]  #: (H, W) of the frames
    embed_dim: int  #: D of the embeddings
    frame: dict[str, Any]  #: frame representation, clamp, keep_aspect (ModelMeta.frame)
    event_mean: list[float] | None  #: per-channel normalisation inside the graph (None: none)
    event_std: list[float] | None
    encoder_sha256: str  #: :func:`encoder_fingerprint` of the model exported
    weights_sha256: str  #: :func:`weights_fingerprint` of the graph's initializers
    opset: int
    exporter: str  #: torch version and exporter
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME
    output_normalised: bool = True  #: embeddings are L2-normalised
    format_version: int = FORMAT_VERSION

    @property
    def source(self) -> str:
        """The model it was exported from, for messages."""
        return f"checkpoint {self.checkpoint}" if self.checkpoint else f"{self.arch or 'a custom model'} ({self.pretrained} weights)"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "OnnxEncoderInfo":
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            version = int(data.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise OnnxModelError(f"{where}: format version {version} is newer than this event_clip_ros reads "
                                     f"({FORMAT_VERSION}); update event_clip_ros or export the file again")
            known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            known["input_size"] = tuple(int(v) for v in known["input_size"])
            info = cls(**known)
            if len(info.input_size) != 2 or int(info.embed_dim) < 1:
                raise ValueError("bad input_size or embed_dim")
            return info
        except OnnxModelError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise OnnxModelError(f"{where}: its {META_KEY} metadata is damaged ({exc}); export the file again") from None


# ------------------------------------------------------------------------------ fingerprints
def encoder_fingerprint(model: EventClip) -> str:
    """SHA-256 of f_E's weights and of how frames enter it (frame settings, input size, normalisation).

    Equal for the same checkpoint however it was loaded or placed; the node compares it with the
    ONNX file's :attr:`OnnxEncoderInfo.encoder_sha256`.
    """
    h = hashlib.sha256()
    settings = {
        "frame": dataclasses.asdict(model.meta.frame_config()),
        "event_mean": model.event_mean.flatten().tolist(),  # (0, 0, 0) / (1, 1, 1) when the checkpoint has none
        "event_std": model.event_std.flatten().tolist(),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in sorted(model.event_tower.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def weights_fingerprint(proto: "onnx.ModelProto") -> str:
    """SHA-256 of the graph's initializers (names, types, shapes, bytes), in file order."""
    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in proto.graph.initializer:
        h.update(f"{init.name}:{init.data_type}:{tuple(init.dims)};".encode())
        h.update(init.raw_data if init.HasField("raw_data") else numpy_helper.to_array(init).tobytes())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------ export
class _FramesToEmbeddings(nn.Module):
    """What the ONNX graph computes: EventClip.encode_frames in fp32, as one module."""

    mean: torch.Tensor  # (1, 3, 1, 1) buffers: the model's input normalisation
    std: torch.Tensor

    def __init__(self, model: EventClip) -> None:
        super().__init__()
        self.tower = model.event_tower
        self.register_buffer("mean", model.event_mean.detach().clone())
        self.register_buffer("std", model.event_std.detach().clone())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = (frames.unsqueeze(1).expand(-1, 3, -1, -1) - self.mean) / self.std  # mean 0, std 1: exactly x
        return nn.functional.normalize(self.tower(x).float(), dim=-1)


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote."""

    path: Path
    info: OnnxEncoderInfo
    min_cosine: float  #: agreement of onnxruntime (CPU) and torch on random frames
    size_bytes: int


def example_frames(model: EventClip, n: int, seed: int = 0) -> torch.Tensor:
    """(n, H, W) random frames in the range of the model's frame representation ([0, 1) or [-1, 1))."""
    frames = torch.rand(n, *model.meta.input_size, generator=torch.Generator().manual_seed(seed))
    return frames * 2 - 1 if model.meta.frame.get("representation") == "official" else frames


def export_onnx(model: EventClip, out: str | os.PathLike, opset: int = DEFAULT_OPSET,
                checkpoint: str | os.PathLike | None = None) -> OnnxExport:
    """Write f_E of ``model`` (on the CPU) to ``out`` (module doc); ``checkpoint``: the file it was loaded from.

    Raises OnnxModelError, writing nothing, when onnxruntime and torch disagree on the exported graph.
    """
    import onnx

    if opset not in OPSETS:
        raise ValueError(f"opset must be in {OPSETS.start}..{OPSETS.stop - 1}, got {opset}")
    if model.device.type != "cpu":
        raise ValueError(f"export the model from the CPU (it is on {model.device})")
    frames = example_frames(model, _EXPORT_EXAMPLES)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the exporter's own deprecation notices (chosen knowingly: module doc), and the tracer's notes on shape checks
        # in open_clip's attention (the graph is checked against torch below instead)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            _FramesToEmbeddings(model).eval(), (frames,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects too (annotated: paths)
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset, dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    del buffer
    embedding_dims = proto.graph.output[0].type.tensor_type.shape.dim
    embedding_dims[1].dim_value = model.embed_dim  # the exporter names D symbolically (after the division of normalize)
    meta = model.meta
    info = OnnxEncoderInfo(
        arch=meta.arch, pretrained=meta.pretrained,
        checkpoint=Path(checkpoint).name if checkpoint else None,
        checkpoint_sha256=file_sha256(checkpoint) if checkpoint else None,
        input_size=meta.input_size, embed_dim=model.embed_dim, frame=dict(meta.frame),
        event_mean=meta.event_mean, event_std=meta.event_std,
        encoder_sha256=encoder_fingerprint(model), weights_sha256=weights_fingerprint(proto),
        opset=opset, exporter=f"torch {torch.__version__} (TorchScript exporter)",
    )
    proto.doc_string = (f"event_clip_ros event encoder f_E from {info.source}: {INPUT_NAME} (batch, {info.input_size[0]}, "
                        f"{info.input_size[1]}) float32 -> L2-normalised {OUTPUT_NAME} (batch, {info.embed_dim}) float32")
    onnx.helper.set_model_props(proto, {META_KEY: info.to_json()})
    data = proto.SerializeToString()
    del proto
    cosine = _agreement(model, data, frames)
    if not cosine >= MIN_COSINE:
        raise OnnxModelError(f"not writing {out}: onnxruntime and torch disagree on the exported encoder "
                             f"(cosine {cosine:.6f} < {MIN_COSINE})")
    path = atomic_write_bytes(out, data)
    return OnnxExport(path, info, cosine, len(data))


def _agreement(model: EventClip, data: bytes, frames: torch.Tensor) -> float:
    """Smallest cosine between onnxruntime's (CPU) and torch's embeddings of ``frames``."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: frames.numpy()})[0]
    with torch.inference_mode():
        want = model.encode_frames(frames).numpy()
    return float(cosines(got, want).min())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)


# ------------------------------------------------------------------------------ reading and checking
def load_onnx_encoder(path: str | os.PathLike) -> tuple["onnx.ModelProto", OnnxEncoderInfo]:
    """The graph and info of an exported encoder file; OnnxModelError when it is missing, unreadable,
    not written by :func:`export_onnx`, or damaged (weights that do not match their recorded fingerprint)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: anything means "not a readable file"
        raise OnnxModelError(f"{path} is not a readable ONNX file ({type(exc).__name__}: {exc}); "
                             f"export it again: event-clip export --onnx FILE --checkpoint CHECKPOINT") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise OnnxModelError(f"{path} has no {META_KEY} metadata: it was not written by event-clip export --onnx "
                             f"(or was saved again without its metadata), so it cannot be checked against the model; "
                             f"export it again")
    info = OnnxEncoderInfo.from_json(props[META_KEY], str(path))
    _check_graph(proto, info, path)
    if weights_fingerprint(proto) != info.weights_sha256:
        raise OnnxModelError(f"{path} is damaged: its weights do not match the fingerprint recorded at export; "
                             f"export it again")
    return proto, info


def _check_graph(proto: "onnx.ModelProto", info: OnnxEncoderInfo, path: Path) -> None:
    """The graph takes (batch, H, W) float frames and gives (batch, D) float embeddings, as its metadata says."""
    from onnx import TensorProto

    weights = {init.name for init in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in weights]
    outputs = list(proto.graph.output)

    def shape(v) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]

    def ok(values, name: str, fixed: list[int]) -> bool:
        if len(values) != 1 or values[0].name != name or values[0].type.tensor_type.elem_type != TensorProto.FLOAT:
            return False
        dims = shape(values[0])
        return len(dims) == 1 + len(fixed) and dims[1:] == fixed

    h, w = info.input_size
    if not ok(inputs, info.input, [h, w]) or not ok(outputs, info.output, [info.embed_dim]):
        got = ", ".join(f"{v.name} {shape(v)}" for v in [*inputs, *outputs])
        raise OnnxModelError(f"{path}: the graph ({got}) does not match its metadata (input {info.input} [batch, {h}, {w}], "
                             f"output {info.output} [batch, {info.embed_dim}]); export it again")


def check_matches(info: OnnxEncoderInfo, model: EventClip, path: str | os.PathLike, source: str | None = None) -> None:
    """OnnxModelError unless the file ``info`` describes is f_E of ``model`` (``source``: where the model came
    from, e.g. its checkpoint, for the message)."""
    meta = model.meta
    differences = []
    if info.arch and meta.arch and info.arch != meta.arch:
        differences.append(f"architecture {info.arch} vs {meta.arch}")
    if tuple(info.input_size) != tuple(meta.input_size):
        differences.append(f"input {info.input_size[0]}x{info.input_size[1]} vs {meta.input_size[0]}x{meta.input_size[1]}")
    if info.embed_dim != model.embed_dim:
        differences.append(f"embedding size {info.embed_dim} vs {model.embed_dim}")
    frame_keys = ("representation", "clamp", "keep_aspect")
    if any(info.frame.get(k) != meta.frame.get(k) for k in frame_keys):
        differences.append(f"frames {_frame_text(info.frame)} vs {_frame_text(meta.frame)}")
    if (info.event_mean, info.event_std) != (meta.event_mean, meta.event_std):
        differences.append(f"normalisation mean {info.event_mean} std {info.event_std} vs mean {meta.event_mean} "
                           f"std {meta.event_std}")
    if not differences and info.encoder_sha256 != encoder_fingerprint(model):
        differences.append("the encoder's weights differ")
    if differences:
        loaded = source or meta.arch or "the model"
        raise OnnxModelError(f"{path} was exported from {info.source} and does not match the model loaded from {loaded}: "
                             f"{'; '.join(differences)}. Use the ONNX file of this model, or {_EXPORT_HINT}")


def _frame_text(frame: dict[str, Any]) -> str:
    return f"{frame.get('representation')} (clamp {frame.get('clamp')}, keep_aspect {frame.get('keep_aspect')})"
