"""The detector pipeline without ROS: event messages in, zero-shot labels or anomaly scores out.

The ROS node (:mod:`event_clip_ros.ros.node`), bag evaluation and the tests share
this one implementation, so a live topic, a replayed bag and a recording give
the same results for the same windows.

Two halves, called from two threads in the node:

* input (:meth:`Detector.feed_cdr` / :meth:`Detector.feed_events`): every
  message, in order, decoded and cut into windows on sensor time by
  :class:`~event_clip_ros.apps.event_input.EventInput`; or, with the input type
  sensor_msgs/msg/Image (:meth:`Detector.feed_image`), every image through the
  paper's frame-difference extraction, one window per stack of frames
  (:class:`~event_clip_ros.apps.event_input.ImageInput`); cheap, never blocks
  on the model;
* inference (:meth:`Detector.infer`): one or more completed windows through
  the event encoder (an image window's event frame resized to the model input,
  as the offline video path does), then the zero-shot classifier (``mode="zero_shot"``: the
  ``top_k`` labels with probability >= ``score_threshold``) or the anomaly
  scorer (``mode="anomaly"``: P(anomaly) from text prompts or a saved
  reference bank, decided against ``anomaly.threshold``).

:meth:`Detector.process_cdr` runs both for offline use (nothing dropped).
Labels, templates and thresholds change at run time (:meth:`Detector.set_labels`,
...): a classification running meanwhile sees the old or the new label set,
never a mix. :meth:`Detector.load` builds the model and its text heads (the
lifecycle node's configure/activate), :meth:`Detector.release` frees the GPU
(deactivate).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..events.decoders.base import Payload
from ..events.frames import FrameConfig, build_frame, build_frames_torch, frame_to_uint8
from ..events.limits import DEFAULT_LIMITS, StreamLimits
from ..events.noise import NoiseFilterConfig
from ..events.ros_cdr import EVENT_PACKET_TYPES
from ..events.types import SensorSize
from ..events.view import FRAME_MODES, ViewConfig, build_view
from ..events.windows import WindowConfig
from ..model.anomaly import AnomalyScorer, ReferenceAnomalyScorer, TextAnomalyScorer
from ..model.device import resolve_device
from ..model.event_clip import EventClip
from ..model.factory import ModelSpec, create_event_clip
from ..model.finite import FiniteEmbeddings
from ..model.prompts import (
    ABNORMAL_PROMPTS,
    DEFAULT_TEMPLATES,
    NORMAL_PROMPTS,
    validate_labels,
    validate_prompts,
    validate_templates,
)
from ..model.zero_shot import LabelScore, ZeroShotClassifier
from ..video.extraction import ExtractionConfig
from ..video.reader import resize_image
from .detector_stats import LatencyTracker
from .event_input import IMAGE_MSGTYPE, EventInput, ImageInput, PendingWindow

Mode = Literal["zero_shot", "anomaly"]
MODES: tuple[str, ...] = ("zero_shot", "anomaly")

#: Hypothesis names of anomaly results (the class map of anomaly mode, in this order).
NORMAL, ANOMALY = "normal", "anomaly"

#: Default windows: 50 ms tumbling, at least 1000 events, at most the latest 2M events (32 MB).
DEFAULT_WINDOW = WindowConfig(duration_us=50_000, min_events=1000, max_events=2_000_000)


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


@dataclass(frozen=True)
class AnomalyConfig:
    """Anomaly mode: text prompts (default) or a saved reference bank, and the decision threshold."""

    normal_prompts: tuple[str, ...] = NORMAL_PROMPTS  #: descriptions of the normal scene
    abnormal_prompts: tuple[str, ...] = ABNORMAL_PROMPTS  #: descriptions of the unwanted scene
    reference_file: str | None = None  #: a bank .npz (``event-clip anomaly --save-reference``); replaces the prompts
    threshold: float = 0.5  #: anomaly when score > threshold (0.5 for prompts; e.g. 0.95 for a bank)

    def __post_init__(self) -> None:
        object.__setattr__(self, "normal_prompts", validate_prompts(self.normal_prompts))
        object.__setattr__(self, "abnormal_prompts", validate_prompts(self.abnormal_prompts))
        object.__setattr__(self, "threshold", _check_unit("anomaly threshold", self.threshold))


@dataclass(frozen=True)
class DetectorConfig:
    """Everything the detector does; validated on construction (ValueError says what is wrong).

    ``window.min_events`` is the minimum number of events of a window that is
    inferred (smaller windows are skipped and counted). ``extraction`` applies
    to image input only (``window`` to event input only); its ``out_size``
    must stay None: event frames are resized to the model input at inference.
    """

    mode: Mode = "zero_shot"
    labels: tuple[str, ...] = ()  #: zero-shot class names (required in zero_shot mode)
    templates: tuple[str, ...] = DEFAULT_TEMPLATES  #: prompt templates, each with one "{}"
    window: WindowConfig = DEFAULT_WINDOW
    top_k: int = 5  #: labels reported per window (fewer when fewer pass score_threshold)
    score_threshold: float = 0.0  #: zero-shot: labels below this probability are not reported
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    model: ModelSpec = ModelSpec()
    extraction: ExtractionConfig = ExtractionConfig()  #: image input: the frame-difference extraction
    stream_limits: StreamLimits = DEFAULT_LIMITS  #: event input: plausible time jumps and sensor sizes
    noise: NoiseFilterConfig = NoiseFilterConfig()  #: event input: noise filters before windowing (default off)
    frame_mode: str = "model"  #: what :meth:`Detector.frame` shows: one of FRAME_MODES (model or view)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.frame_mode not in FRAME_MODES:
            raise ValueError(f"frame_mode must be one of {', '.join(FRAME_MODES)}, got {self.frame_mode!r}")
        if self.mode == "zero_shot" or self.labels:
            object.__setattr__(self, "labels", validate_labels(self.labels))
        object.__setattr__(self, "templates", validate_templates(self.templates))
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {self.top_k!r}")
        object.__setattr__(self, "score_threshold", _check_unit("score_threshold", self.score_threshold))
        if self.anomaly.reference_file is not None and not Path(self.anomaly.reference_file).is_file():
            raise ValueError(f"anomaly reference file {self.anomaly.reference_file} does not exist")
        if self.model.checkpoint is not None and not Path(self.model.checkpoint).is_file():
            raise ValueError(f"checkpoint {self.model.checkpoint} does not exist")
        if self.extraction.out_size is not None:
            raise ValueError("extraction.out_size must be None: event frames are resized to the model input")
        if self.extraction.ten_crop is not None:
            raise ValueError("extraction.ten_crop is for offline video evaluation (event-clip video-anomaly), not the node")


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


@dataclass(frozen=True)
class _Head:
    """The classifier or scorer with the labels it reports: swapped as a whole on change."""

    classifier: ZeroShotClassifier | None
    scorer: AnomalyScorer | None


#: Longest side (pixels) of the ``~/frame`` image: a sensor that claims more is shown scaled down.
MAX_FRAME_SIDE = 1280


def bounded_frame_size(size: SensorSize, max_side: int = MAX_FRAME_SIDE) -> tuple[int, int]:
    """(height, width) of a frame of ``size`` scaled down, aspect kept, to at most ``max_side`` pixels a side."""
    scale = min(1.0, max_side / max(size.width, size.height))
    return max(1, round(size.height * scale)), max(1, round(size.width * scale))


class Detector:
    """Decode, window and classify one event or image topic (see module doc)."""

    def __init__(self, config: DetectorConfig, msgtype: str = EVENT_PACKET_TYPES[0], model: EventClip | None = None) -> None:
        """``msgtype``: an event message type or IMAGE_MSGTYPE; ``model``: an already built EventClip to use
        instead of building ``config.model`` (tests, shared models)."""
        self._config = config
        self.input: EventInput | ImageInput = (
            ImageInput(config.extraction, config.window.reset_tolerance_us) if msgtype == IMAGE_MSGTYPE
            else EventInput(msgtype, config.window, config.stream_limits, config.noise)
        )
        self._model = model
        self._head: _Head | None = None
        self._lock = threading.Lock()  # serialises head rebuilds (set_* from one thread, load/release from another)
        self.inferred_windows = 0
        self.anomalies = 0
        self.finite = FiniteEmbeddings()  # windows whose embedding is NaN/Inf: skipped, counted, never scored
        self.inference_latency = LatencyTracker()

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
        return self._config.labels if self._config.mode == "zero_shot" else (NORMAL, ANOMALY)

    @property
    def threshold(self) -> float:
        """The score threshold of the current mode (LabelInfo.threshold)."""
        return self._config.score_threshold if self._config.mode == "zero_shot" else self._config.anomaly.threshold

    def load(self) -> None:
        """Build the model (unless given) on its device and the classifier or scorer.

        Raises what the model layer raises for a bad checkpoint, architecture or
        device (FileNotFoundError, ValueError, CheckpointError, ...).
        """
        with self._lock:
            if self._model is None:
                self._model = create_event_clip(self._config.model)
            elif self._model.device != self._target_device():
                self._model.place(self._config.model.device, self._config.model.precision)
            self._head = self._build_head(self._config)

    def release(self) -> None:
        """Drop the classifier/scorer and move the model to the CPU, freeing GPU memory (load() undoes it)."""
        with self._lock:
            self._head = None
            if self._model is not None and self._model.device.type == "cuda":
                self._model.place("cpu", "fp32")
                torch.cuda.empty_cache()

    def _target_device(self) -> torch.device:
        return resolve_device(self._config.model.device)

    def _build_head(self, config: DetectorConfig) -> _Head:
        model = self._model
        assert model is not None
        if config.mode == "zero_shot":
            return _Head(ZeroShotClassifier(model, config.labels, config.templates), None)
        anomaly = config.anomaly
        if anomaly.reference_file is not None:
            scorer: AnomalyScorer = ReferenceAnomalyScorer.load(anomaly.reference_file, device=model.device)
            scorer.threshold = anomaly.threshold
        else:
            scorer = TextAnomalyScorer(model, anomaly.normal_prompts, anomaly.abnormal_prompts, anomaly.threshold)
        return _Head(None, scorer)

    # ------------------------------------------------------------------ run-time changes
    def set_labels(self, labels: Sequence[str]) -> bool:
        """Change the zero-shot labels (only new ones are encoded); returns whether they changed."""
        return self._reconfigure(labels=validate_labels(labels))

    def set_templates(self, templates: Sequence[str]) -> bool:
        """Change the prompt templates (all labels re-encoded); returns whether they changed."""
        return self._reconfigure(templates=validate_templates(templates))

    def set_score_threshold(self, threshold: float) -> bool:
        return self._reconfigure(score_threshold=_check_unit("score_threshold", threshold))

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
            head = self._head
            if head is not None:
                if head.classifier is not None:
                    head.classifier.set_labels(new.labels)  # each swaps its text weights atomically
                    head.classifier.set_templates(new.templates)
                elif new.anomaly.normal_prompts != old.anomaly.normal_prompts or \
                        new.anomaly.abnormal_prompts != old.anomaly.abnormal_prompts or \
                        new.anomaly.reference_file != old.anomaly.reference_file:
                    self._head = self._build_head(new)
                else:
                    assert head.scorer is not None  # a head holds a classifier or a scorer
                    head.scorer.threshold = new.anomaly.threshold
            self._config = new
            return True

    # ------------------------------------------------------------------ input side
    @property
    def takes_images(self) -> bool:
        """Whether the input is sensor_msgs/Image (feed_image) rather than events (feed_cdr, feed_events)."""
        return isinstance(self.input, ImageInput)

    def _event_input(self) -> EventInput:
        if not isinstance(self.input, EventInput):
            raise TypeError("this detector's input is images: use feed_image / feed_encoded_image")
        return self.input

    def _image_input(self) -> ImageInput:
        if not isinstance(self.input, ImageInput):
            raise TypeError(f"this detector's input is {self.input.msgtype}: use feed_cdr / feed_events")
        return self.input

    def feed_cdr(self, raw: Payload) -> list[PendingWindow]:
        """Decode one serialised message (every one, in order); return the windows it completes."""
        return self._event_input().feed_cdr(raw)

    def feed_events(self, events: np.ndarray, size: SensorSize, stamp_ns: int | None = None, frame_id: str = "") -> list[PendingWindow]:
        """Push decoded events (see :meth:`EventInput.feed_events`)."""
        return self._event_input().feed_events(events, size, stamp_ns, frame_id)

    def feed_image(self, image: np.ndarray, stamp_ns: int, frame_id: str = "") -> list[PendingWindow]:
        """Push one image ((H, W, 3) BGR or (H, W) gray uint8, header stamp in ns); return the window it completes."""
        return self._image_input().feed_image(image, stamp_ns, frame_id)

    def feed_encoded_image(
        self, encoding: str, height: int, width: int, step: int, data: Payload, stamp_ns: int, frame_id: str = ""
    ) -> list[PendingWindow]:
        """Push one sensor_msgs/Image by its fields (bgr8, rgb8, mono8; others counted and skipped)."""
        return self._image_input().feed_encoded(encoding, height, width, step, data, stamp_ns, frame_id)

    def flush(self) -> list[PendingWindow]:
        """End of stream: the windows still open."""
        return self.input.flush()

    # ------------------------------------------------------------------ inference side
    def infer(self, windows: Sequence[PendingWindow], embeddings: torch.Tensor | None = None) -> list[DetectionResult]:
        """Results of ``windows``: one batch through the encoder (sensor sizes may differ), or, given
        ``embeddings`` (their rows of :meth:`embed` by a detector on the same model, e.g. one forward
        pass shared by several cameras), the classifier or scorer only."""
        if not windows:
            return []
        head, config = self._head, self._config
        if head is None or self._model is None:
            raise RuntimeError("the detector's model is not loaded; call load() first")
        start = time.monotonic_ns()
        emb, windows = self.finite.keep(self.embed(windows) if embeddings is None else embeddings, windows)
        if not windows:
            return []
        fields: list[dict[str, Any]]  # DetectionResult fields of each window
        if head.classifier is not None:
            tops = head.classifier.classify(emb, top_k=config.top_k)
            fields = [
                {"labels": tuple(s for s in top if s.score >= config.score_threshold)} for top in tops
            ]
        else:
            assert head.scorer is not None  # a head holds a classifier or a scorer
            scores = head.scorer.score(emb)
            decisions = head.scorer.decide(scores)
            fields = [self._anomaly_fields(float(s), bool(d)) for s, d in zip(scores, decisions)]
            self.anomalies += int(np.count_nonzero(decisions))
        end = time.monotonic_ns()
        inference_s = (end - start) * 1e-9
        self.inferred_windows += len(windows)
        self.inference_latency.add(inference_s)
        return [
            DetectionResult(
                index=w.window.index,
                t_start_us=w.window.t_start_us,
                t_end_us=w.window.t_end_us,
                n_events=w.n_events,
                stamp_ns=w.stamp_ns,
                frame_id=w.frame_id,
                queued_s=(start - w.ready_ns) * 1e-9,
                inference_s=inference_s,
                **f,
            )
            for w, f in zip(windows, fields)
        ]

    def embed(self, windows: Sequence[PendingWindow]) -> torch.Tensor:
        """(B, D) embeddings in one encoder forward pass: event windows' frames built per sensor size, image
        windows' frames resized to the model input."""
        model = self._model
        if model is None:
            raise RuntimeError("the detector's model is not loaded; call load() first")
        height, width = model.meta.input_size
        frames: list[torch.Tensor | None] = [None] * len(windows)
        by_size: dict[SensorSize, list[int]] = {}
        for i, w in enumerate(windows):
            if w.frame is None:
                by_size.setdefault(w.size, []).append(i)
            else:
                frames[i] = torch.from_numpy(resize_image(w.frame, (width, height))).to(model.device, torch.float32)
        for size, rows in by_size.items():
            built = build_frames_torch([windows[i].window.events for i in rows], size, model.frame_config, model.device)
            for i, frame in zip(rows, built):
                frames[i] = frame
        ready = [f for f in frames if f is not None]
        assert len(ready) == len(frames)  # every window is an image or an event window
        return model.embed_frames(torch.stack(ready))

    @staticmethod
    def _anomaly_fields(score: float, decision: bool) -> dict[str, Any]:
        anomaly, normal = LabelScore(ANOMALY, score), LabelScore(NORMAL, 1.0 - score)
        return {
            "labels": (anomaly, normal) if decision else (normal, anomaly),
            "anomaly_score": score,
            "is_anomaly": decision,
        }

    def process_cdr(self, raw: Payload) -> list[DetectionResult]:
        """Offline use: decode one message and infer every window it completes (nothing dropped)."""
        return self.infer_all(self.feed_cdr(raw))

    def infer_all(self, windows: Sequence[PendingWindow], batch_size: int = 32) -> list[DetectionResult]:
        """Infer windows in batches of at most ``batch_size`` that share a sensor size."""
        out: list[DetectionResult] = []
        batch: list[PendingWindow] = []
        for w in windows:
            if batch and (len(batch) == batch_size or w.size != batch[0].size):
                out += self.infer(batch)
                batch = []
            batch.append(w)
        return out + self.infer(batch)

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
        """Cumulative counters: decoding and windowing, windows inferred, anomalies decided."""
        return {**self.input.counters(), "inferred_windows": self.inferred_windows, "anomalies": self.anomalies,
                **self.finite.as_dict()}
