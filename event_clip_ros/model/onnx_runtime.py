"""The ``onnxruntime`` backend: f_E from an exported ONNX file (:mod:`.onnx_export`) on onnxruntime.

Execution providers (``onnx_providers`` / ``--onnx-providers``):

* ``auto``: on a CUDA device, TensorRT then CUDA, those this onnxruntime has (the package
  ``onnxruntime-gpu`` brings both; TensorRT also needs NVIDIA's TensorRT libraries), then the
  CPU for what they do not take; on the CPU device, the CPU provider.
* a comma-separated list of ``tensorrt``, ``cuda``, ``cpu``, tried in that order: each must
  be present in this onnxruntime and must start, else :class:`ProviderUnavailableError` says
  which are there.

Precision: ``auto`` is fp16 when a GPU provider leads, fp32 on the CPU; ``fp16`` on TensorRT
enables its fp16 kernels (inputs and outputs stay float32), on CUDA converts the graph's
weights and arithmetic to fp16 (onnxruntime's float16 converter, float32 inputs and outputs);
the CPU provider runs fp32 only, and bf16 is refused (use the torch backend for bf16).
TensorRT engines are cached under ``$XDG_CACHE_HOME/event_clip_ros/tensorrt`` (default
``~/.cache``), one folder per file's weights, so a restart does not rebuild them.

The session's CPU threads follow torch's (the node's ``torch_threads``). Moving the model to the
CPU (:meth:`EventClip.place`, the node's deactivate) ends a session on a GPU provider, freeing its
memory; moving it back starts it again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .backends import FrameEncoder
from .event_clip import EventClip
from .onnx_export import OnnxEncoderInfo, check_matches, load_onnx_encoder

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

#: Short provider names -> onnxruntime's, in the order ``auto`` tries them.
PROVIDERS: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("tensorrt", "cuda")
ONNX_PRECISIONS = ("auto", "fp32", "fp16")


class ProviderUnavailableError(ValueError):
    """An execution provider that was asked for is not in this onnxruntime, or failed to start."""


def parse_providers(text: str) -> tuple[str, ...] | None:
    """``auto`` -> None; else the short names of a comma-separated list (ValueError for unknown ones)."""
    if text.strip().lower() == "auto":
        return None
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    short = {**{k: k for k in PROVIDERS}, **{v.lower(): k for k, v in PROVIDERS.items()}}
    unknown = [n for n in names if n not in short]
    if not names or unknown:
        raise ValueError(f"onnx providers must be 'auto' or a comma-separated list of {', '.join(PROVIDERS)}, got {text!r}")
    return tuple(dict.fromkeys(short[n] for n in names))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(request: str, device: torch.device, available: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """(short provider names in order, whether they were asked for explicitly) for ``request`` on ``device``."""
    asked = parse_providers(request)
    if asked is None:
        if device.type != "cuda":
            return ("cpu",), False
        gpu = tuple(p for p in GPU_PROVIDERS if PROVIDERS[p] in available)
        if not gpu:
            log.warning("device %s, but this onnxruntime has no GPU provider (it has %s): f_E runs on the CPU; "
                        "install onnxruntime-gpu for the CUDA and TensorRT providers", device, ", ".join(available))
        return (*gpu, "cpu"), False
    missing = [p for p in asked if PROVIDERS[p] not in available]
    if missing:
        raise ProviderUnavailableError(
            f"onnx provider(s) {', '.join(missing)} requested, but this onnxruntime ({_ort_version()}) has only "
            f"{', '.join(available)}. The CUDA and TensorRT providers come with the package onnxruntime-gpu (instead "
            f"of onnxruntime); TensorRT also needs NVIDIA's TensorRT libraries. Or ask for what is there, e.g. "
            f"onnx_providers auto")
    return asked, True


def resolve_onnx_precision(precision: str, providers: Sequence[str]) -> str:
    """fp32 or fp16 for ``precision`` (auto, fp32, fp16) on ``providers`` (the first one leads)."""
    gpu = providers[0] in GPU_PROVIDERS
    if precision == "auto":
        return "fp16" if gpu else "fp32"
    if precision == "fp16" and not gpu:
        raise ValueError("precision fp16 with the onnxruntime backend needs the CUDA or TensorRT provider; "
                         "the CPU provider runs fp32")
    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"the onnxruntime backend runs fp32 or fp16 (precision auto, fp32 or fp16), got {precision!r}; "
                         f"use backend torch for bf16")
    return precision


def fp16_graph(proto: "onnx.ModelProto") -> "onnx.ModelProto":
    """The graph with fp16 weights and arithmetic and float32 ``frames`` / ``embeddings`` (the CUDA provider's fp16)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(proto, keep_io_types=True)


def tensorrt_cache_dir(info: OnnxEncoderInfo) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "event_clip_ros" / "tensorrt" / info.weights_sha256[:16]


def _ort_version() -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__}"


class OnnxRuntimeEncoder(FrameEncoder):
    """f_E from an exported ONNX file on onnxruntime (module doc); build it with :meth:`open`."""

    backend = "onnxruntime"

    def __init__(self, path: Path, info: OnnxEncoderInfo, providers: tuple[str, ...], explicit: bool, precision: str,
                 device: torch.device) -> None:
        self.path, self.info, self.providers, self.precision = path, info, providers, precision
        self._explicit = explicit
        self._device = device
        self._session = None
        self.active_providers: tuple[str, ...] = ()

    @classmethod
    def open(cls, path: str | os.PathLike, model: EventClip, providers: str = "auto", precision: str = "auto",
             source: str | None = None) -> "OnnxRuntimeEncoder":
        """The encoder of ``path`` for ``model``, its session started. Raises OnnxModelError for a missing, corrupt or
        foreign file or one exported from another model (``source``: where ``model`` came from, for the message),
        ProviderUnavailableError for a provider asked for that is missing or does not start, ValueError otherwise."""
        path = Path(path)
        proto, info = load_onnx_encoder(path)
        check_matches(info, model, path, source)
        chosen, explicit = resolve_providers(providers, model.device, available_providers())
        encoder = cls(path, info, chosen, explicit, resolve_onnx_precision(precision, chosen), model.device)
        encoder._start(proto)
        return encoder

    # ------------------------------------------------------------------ session
    def _provider_options(self, name: str) -> dict[str, object]:
        device_id = (self._device.index or 0) if self._device.type == "cuda" else 0
        if name == "tensorrt":
            cache = tensorrt_cache_dir(self.info)
            cache.mkdir(parents=True, exist_ok=True)
            return {"device_id": device_id, "trt_fp16_enable": self.precision == "fp16",
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
        if name == "cuda":
            return {"device_id": device_id}
        return {}

    def _graph(self, proto=None) -> str | bytes:
        """What the session loads: the file, or the graph converted to fp16 for the CUDA provider."""
        if self.precision != "fp16" or self.providers[0] != "cuda":
            return str(self.path)
        if proto is None:
            proto, _ = load_onnx_encoder(self.path)
        return fp16_graph(proto).SerializeToString()

    def _start(self, proto=None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        wanted = [(PROVIDERS[p], self._provider_options(p)) for p in self.providers]
        try:
            session = ort.InferenceSession(self._graph(proto), sess_options=options, providers=wanted)
        except Exception as exc:  # onnxruntime's own error types (Fail, InvalidGraph, ...) say what went wrong
            raise ProviderUnavailableError(f"{self.path}: onnxruntime could not start a session on "
                                           f"{', '.join(self.providers)}: {exc}") from exc
        active = tuple(session.get_providers())
        failed = [p for p in self.providers if PROVIDERS[p] not in active]
        if failed and self._explicit:
            raise ProviderUnavailableError(
                f"onnx provider(s) {', '.join(failed)} did not start (onnxruntime fell back to {', '.join(active)}; its "
                f"log above says why, e.g. missing CUDA or TensorRT libraries)")
        if failed:
            log.warning("onnx provider(s) %s did not start; running on %s", ", ".join(failed), ", ".join(active))
        self._session, self.active_providers = session, active

    @property
    def on_gpu(self) -> bool:
        return any(p in GPU_PROVIDERS for p in self.providers)

    def place(self, device: torch.device) -> None:
        """Embeddings go to ``device``; the CPU device ends a GPU session (freeing its memory), a CUDA one restarts it."""
        self._device = device
        if device.type == "cpu" and self.on_gpu:
            self._session = None
        elif self._session is None:
            self._start()

    # ------------------------------------------------------------------ inference
    def __call__(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        session = self._session
        if session is None:
            raise RuntimeError(f"the onnxruntime session of {self.path.name} was ended (model moved to the CPU); "
                               f"place the model on its GPU again")
        x = frames.detach().to("cpu", torch.float32).numpy() if isinstance(frames, torch.Tensor) else frames
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 3 or tuple(x.shape[1:]) != tuple(self.info.input_size):
            h, w = self.info.input_size
            raise ValueError(f"expected frames of shape (B, {h}, {w}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return torch.empty(0, self.info.embed_dim, device=self._device)
        out = session.run([self.info.output], {self.info.input: x})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(self._device)

    def describe(self) -> str:
        return f"{_ort_version()} on {', '.join(self.active_providers) or 'no session'} ({self.precision}): {self.path.name}"
