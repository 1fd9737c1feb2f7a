"""What the detector does, validated: :class:`DetectorConfig` (mode, labels, prompts, windows, model, input limits).

The node builds it from its parameters (:func:`~event_clip_ros.apps.detector_params.config_from_parameters`),
bag evaluation from the same parameters, the CLI from its options; every field is checked on construction
(ValueError says what is wrong), so a config that exists is one the detector can run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..events.limits import DEFAULT_LIMITS, StreamLimits
from ..events.noise import NoiseFilterConfig
from ..events.view import FRAME_MODES
from ..events.windows import WindowConfig
from ..model.factory import ModelSpec
from ..model.prompts import (
    ABNORMAL_PROMPTS,
    DEFAULT_TEMPLATES,
    NORMAL_PROMPTS,
    validate_labels,
    validate_prompts,
    validate_templates,
)
from ..video.extraction import ExtractionConfig

Mode = Literal["zero_shot", "anomaly"]
MODES: tuple[str, ...] = ("zero_shot", "anomaly")

#: Default windows: 50 ms tumbling, at least 1000 events, at most the latest 2M events (32 MB).
DEFAULT_WINDOW = WindowConfig(duration_us=50_000, min_events=1000, max_events=2_000_000)


def check_unit(name: str, value: float) -> float:
    """``value`` as a float when it lies in [0, 1]; ValueError naming ``name`` otherwise."""
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
        object.__setattr__(self, "threshold", check_unit("anomaly threshold", self.threshold))


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
        object.__setattr__(self, "score_threshold", check_unit("score_threshold", self.score_threshold))
        if self.anomaly.reference_file is not None and not Path(self.anomaly.reference_file).is_file():
            raise ValueError(f"anomaly reference file {self.anomaly.reference_file} does not exist")
        if self.model.checkpoint is not None and not Path(self.model.checkpoint).is_file():
            raise ValueError(f"checkpoint {self.model.checkpoint} does not exist")
        if self.extraction.out_size is not None:
            raise ValueError("extraction.out_size must be None: event frames are resized to the model input")
        if self.extraction.ten_crop is not None:
            raise ValueError("extraction.ten_crop is for offline video evaluation (event-clip video-anomaly), not the node")
