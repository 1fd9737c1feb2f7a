"""The detector without ROS: completed windows in, zero-shot labels or anomaly scores out.

The ROS node (:mod:`event_clip_ros.ros.detector_node`), bag evaluation, the
``classify`` / ``anomaly`` / ``video-anomaly`` commands and the tests share this
one path from windows to results, so a live topic, a replayed bag, a recording
and a video give the same result for the same window.

Windows come from an input (:mod:`event_clip_ros.apps.event_input`: event
messages or images, each fed in order with ``feed``), from a recording
(:mod:`event_clip_ros.apps.recording`) or from a video
(:mod:`event_clip_ros.apps.video_anomaly`). :meth:`Detector.infer` runs one
batch of them through the event encoder (:func:`~.embedding.window_embeddings`)
and the head (:mod:`event_clip_ros.apps.heads`): the zero-shot classifier
(``mode="zero_shot"``: the ``top_k`` labels with probability >=
``score_threshold``) or the anomaly scorer (``mode="anomaly"``: P(anomaly) from
text prompts or a reference bank, decided against its threshold). Windows whose
embedding is NaN or infinite are skipped and counted, never scored.

Labels, templates and thresholds change at run time (:meth:`Detector.set_labels`,
...): a classification running meanwhile sees the old or the new label set,
never a mix. :meth:`Detector.load` builds the model and its head (the lifecycle
node's configure/activate), :meth:`Detector.release` frees the GPU (deactivate).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..batching import batched
from ..events.frames import FrameConfig, build_frame, frame_to_uint8
from ..events.types import SensorSize
from ..events.view import ViewConfig, build_view
from ..model.device import resolve_device
from ..model.event_clip import EventClip
from ..model.factory import ModelSpec, create_event_clip
from ..model.finite import FiniteEmbeddings
from ..model.prompts import validate_labels, validate_templates
from ..model.zero_shot import LabelScore
from .detector_config import AnomalyConfig, DetectorConfig, check_unit
from .detector_stats import LatencyTracker
from .embedding import window_embeddings
from .event_input import PendingWindow
from .heads import ANOMALY, NORMAL, AnomalyHead, Head, build_head, updated_head


@dataclass(frozen=True)
class DetectionResult:
    """What the detector says about one window."""

    index: int  #: the window's index in the stream (0, 1, ...; gaps where windows were dropped)
    t_start_us: int  #: window start, sensor time
    t_end_us: int  #: window end (exclusive), sensor time
    n_events: int  #: events in the window (0 for image input: its windows carry a frame)
    stamp_ns: int  #: the window's end in ROS time (header stamp of the outputs)
    frame_id: str
    labels: tuple[LabelScore, ...] = ()  #: zero-shot: best first; anomaly: the decided class first
    anomaly_score: float | None = None  #: anomaly mode: P(anomaly) in [0, 1]
    is_anomaly: bool | None = None  #: anomaly mode: anomaly_score > threshold
    queued_s: float = 0.0  #: from the window's completion to the start of its inference
    inference_s: float = 0.0  #: frames + encoder + classifier/scorer, for the batch it was part of


#: Longest side (pixels) of the ``~/frame`` image: a sensor that claims more is shown scaled down.
MAX_FRAME_SIDE = 1280


def bounded_frame_size(size: SensorSize, max_side: int = MAX_FRAME_SIDE) -> tuple[int, int]:
    """(height, width) of a frame of ``size`` scaled down, aspect kept, to at most ``max_side`` pixels a side."""
    scale = min(1.0, max_side / max(size.width, size.height))
    return max(1, round(size.height * scale)), max(1, round(size.width * scale))


class Detector:
    """The event encoder and its head: windows to results (see module doc)."""

    def __init__(self, config: DetectorConfig, *, model: EventClip | None = None) -> None:
        """``model``: an already built EventClip to use instead of building ``config.model`` (tests, shared models)."""
        self._config = config
        self._model = model
        self._head: Head | None = None
        self._lock = threading.Lock()  # serialises head rebuilds (set_* from one thread, load/release from another)
        self.inferred_windows = 0
        self.anomalies = 0
        self.finite = FiniteEmbeddings()  # windows whose embedding is NaN/Inf: skipped, counted, never scored
        self.inference_latency = LatencyTracker()

    @classmethod
    def for_head(cls, model: EventClip, head: Head, **fields) -> "Detector":
        """A loaded detector of a built ``model`` that runs ``head`` (a classifier or scorer built elsewhere for it).

        Its config takes the head's mode, its labels (zero-shot) or its threshold (anomaly), the model's device and
        precision, and ``fields`` (e.g. ``top_k``) for the rest.
        """
        if isinstance(head, AnomalyHead):
            fields = {"mode": "anomaly", "anomaly": AnomalyConfig(threshold=head.scorer.threshold), **fields}
        else:
            fields = {"labels": head.labels, **fields}
        spec = ModelSpec(arch=model.meta.arch or "custom", pretrained=None, device=str(model.device), precision=model.precision)
        detector = cls(DetectorConfig(model=spec, **fields), model=model)
        detector.load(head)
        return detector

    # ------------------------------------------------------------------ state
    @property
    def config(self) -> DetectorConfig:
        return self._config

    @property
    def model(self) -> EventClip | None:
        return self._model

    @property
    def loaded(self) -> bool:
        """Whether the model and its head are ready for :meth:`infer`."""
        return self._head is not None

    @property
    def labels(self) -> tuple[str, ...]:
        """The class names results use: the zero-shot labels, or ("normal", "anomaly")."""
        head = self._head
        if head is not None:
            return head.labels
        return self._config.labels if self._config.mode == "zero_shot" else (NORMAL, ANOMALY)

    @property
    def threshold(self) -> float:
        """The score threshold of the current mode (LabelInfo.threshold)."""
        return self._config.score_threshold if self._config.mode == "zero_shot" else self._config.anomaly.threshold

    def load(self, head: Head | None = None) -> None:
        """Build the model (unless given) on its device, and the head the config asks for, or use ``head``.

        ``head``: a classifier or scorer built elsewhere for this model (few-shot prototypes, a reference bank
        fitted on recordings), of the config's mode; an anomaly head takes the config's threshold. Raises what the
        model layer raises for a bad checkpoint, architecture or device (FileNotFoundError, ValueError,
        CheckpointError, ...).
        """
        if head is not None and head.mode != self._config.mode:
            raise ValueError(f"a {head.mode} head for a {self._config.mode} detector")
        with self._lock:
            if self._model is None:
                self._model = create_event_clip(self._config.model)
            elif self._model.device != self._target_device():
                self._model.place(self._config.model.device, self._config.model.precision)
            if head is None:
                head = build_head(self._model, self._config)
            elif isinstance(head, AnomalyHead):
                head.scorer.threshold = self._config.anomaly.threshold
            self._head = head

    def release(self) -> None:
        """Drop the head and move the model to the CPU, freeing GPU memory (load() undoes it)."""
        with self._lock:
            self._head = None
            if self._model is not None and self._model.device.type == "cuda":
                self._model.place("cpu", "fp32")
                torch.cuda.empty_cache()

    def _target_device(self) -> torch.device:
        return resolve_device(self._config.model.device)

    # ------------------------------------------------------------------ run-time changes
    def set_labels(self, labels: Sequence[str]) -> bool:
        """Change the zero-shot labels (only new ones are encoded); returns whether they changed."""
        return self._reconfigure(labels=validate_labels(labels))

    def set_templates(self, templates: Sequence[str]) -> bool:
        """Change the prompt templates (all labels re-encoded); returns whether they changed."""
        return self._reconfigure(templates=validate_templates(templates))

    def set_score_threshold(self, threshold: float) -> bool:
        return self._reconfigure(score_threshold=check_unit("score_threshold", threshold))

    def set_top_k(self, top_k: int) -> bool:
        return self._reconfigure(top_k=top_k)

    def set_anomaly(self, anomaly: AnomalyConfig) -> bool:
        """Change the anomaly prompts, reference file or threshold."""
        return self._reconfigure(anomaly=anomaly)

    def _reconfigure(self, **changes) -> bool:
        with self._lock:
            old = self._config
            new = dataclasses.replace(old, **changes)
            if new == old:
                return False
            if self._head is not None:
                assert self._model is not None
                self._head = updated_head(self._head, self._model, old, new)
            self._config = new
            return True

    # ------------------------------------------------------------------ inference
    def embed(self, windows: Sequence[PendingWindow]) -> torch.Tensor:
        """(B, V, D) f_E embeddings of ``windows`` in one forward pass (sensor sizes and kinds may differ; V = 1 but
        for windows with views): where the detector gets its embeddings (:func:`~.embedding.window_embeddings`)."""
        model = self._model
        if model is None:
            raise RuntimeError("the detector's model is not loaded; call load() first")
        return window_embeddings(model, windows)

    def infer(self, windows: Sequence[PendingWindow], embeddings: torch.Tensor | None = None) -> list[DetectionResult]:
        """Results of ``windows``, in order: one batch through the encoder (:meth:`embed`), or, given ``embeddings``
        (their rows of :meth:`embed` by a detector on the same model, e.g. one forward pass shared by several
        cameras), the head only. Windows whose embedding is not finite are left out (counted in
        ``nonfinite_windows``)."""
        if not windows:
            return []
        head, config = self._head, self._config
        if head is None or self._model is None:
            raise RuntimeError("the detector's model is not loaded; call load() first")
        start = time.monotonic_ns()
        emb = self.embed(windows) if embeddings is None else embeddings
        if emb.ndim != 3 or emb.shape[0] != len(windows):
            raise ValueError(f"expected (B, V, D) embeddings of {len(windows)} windows, got {tuple(emb.shape)}")
        kept, windows = self.finite.keep(emb.reshape(len(windows), -1), windows)
        if not windows:
            return []
        verdicts = head.judge(kept.reshape(len(windows), *emb.shape[1:]), config)
        end = time.monotonic_ns()
        inference_s = (end - start) * 1e-9
        self.inferred_windows += len(windows)
        self.anomalies += sum(bool(v.is_anomaly) for v in verdicts)
        self.inference_latency.add(inference_s)
        return [
            DetectionResult(
                index=w.window.index,
                t_start_us=w.window.t_start_us,
                t_end_us=w.window.t_end_us,
                n_events=w.n_events,
                stamp_ns=w.stamp_ns,
                frame_id=w.frame_id,
                labels=v.labels,
                anomaly_score=v.anomaly_score,
                is_anomaly=v.is_anomaly,
                queued_s=(start - w.ready_ns) * 1e-9,
                inference_s=inference_s,
            )
            for w, v in zip(windows, verdicts)
        ]

    def infer_all(self, windows: Sequence[PendingWindow], batch_size: int = 32) -> list[DetectionResult]:
        """Infer windows in batches of at most ``batch_size``, in order."""
        return [r for batch in batched(windows, batch_size) for r in self.infer(batch)]

    def frame(self, window: PendingWindow) -> np.ndarray:
        """The window as a uint8 image at sensor resolution, at most :data:`MAX_FRAME_SIDE` pixels on its
        longer side whatever size the input claims: with ``frame_mode`` "model" (H, W) in the model's frame
        representation, with "view" an (H, W, 3) RGB picture for people (:func:`~event_clip_ros.events.view.build_view`).
        Image input: its event frame, [0, 1] mapped to 0..255, in either mode."""
        if window.frame is not None:
            return np.clip(np.rint(window.frame * np.float32(255)), 0, 255).astype(np.uint8)
        if self._config.frame_mode == "view":
            return build_view(window.window.events, window.size, ViewConfig(out_size=bounded_frame_size(window.size)))
        frame_cfg = self._model.frame_config if self._model is not None else FrameConfig()
        config = dataclasses.replace(frame_cfg, out_size=bounded_frame_size(window.size), keep_aspect=False)
        return frame_to_uint8(build_frame(window.window.events, window.size, config), config)

    # ------------------------------------------------------------------ counters
    def counters(self) -> dict[str, int]:
        """Cumulative counters of inference: windows inferred, anomalies decided, windows skipped as not finite."""
        return {"inferred_windows": self.inferred_windows, "anomalies": self.anomalies, **self.finite.as_dict()}
