"""The detector's heads: what it says about embeddings, in zero-shot or anomaly mode.

* :class:`ClassifierHead` (``mode="zero_shot"``): an
  :class:`~event_clip_ros.model.zero_shot.EmbeddingClassifier` (the zero-shot
  classifier, or few-shot prototypes blended with it); a window's labels are
  the ``top_k`` with probability >= ``score_threshold``, best first.
* :class:`AnomalyHead` (``mode="anomaly"``): an
  :class:`~event_clip_ros.model.anomaly.AnomalyScorer` (text prompts or a
  reference bank); a window's score is P(anomaly) (with several views, e.g. the
  ten crops of a video segment, the mean of the views' scores, the UCF-Crime
  protocol), anomalous when score > threshold, compared in float64, the
  precision of the reported score. Its labels are "anomaly" and "normal"
  (summing to 1), the decided one first (:func:`anomaly_labels`).

:func:`build_head` makes the head a :class:`~.detector_config.DetectorConfig`
asks for; :func:`updated_head` applies a run-time change: the zero-shot
classifier encodes only new labels and swaps its weights atomically, new
anomaly prompts or a new reference file give a new scorer, a new threshold is
set on the scorer. A classification running meanwhile sees the old or the new
label set, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model.anomaly import AnomalyScorer, ReferenceAnomalyScorer, TextAnomalyScorer
from ..model.event_clip import EventClip
from ..model.zero_shot import EmbeddingClassifier, LabelScore, ZeroShotClassifier
from .detector_config import DetectorConfig

#: Hypothesis names of anomaly results (the class map of anomaly mode, in this order).
NORMAL, ANOMALY = "normal", "anomaly"


@dataclass(frozen=True)
class Verdict:
    """What a head says about one window."""

    labels: tuple[LabelScore, ...]  #: zero-shot: best first; anomaly: the decided class first
    anomaly_score: float | None = None  #: anomaly mode: P(anomaly) in [0, 1]
    is_anomaly: bool | None = None  #: anomaly mode: anomaly_score > threshold


def anomaly_labels(score: float, is_anomaly: bool) -> tuple[LabelScore, LabelScore]:
    """The hypotheses of an anomaly result: ("anomaly", score) and ("normal", 1 - score), the decided one first."""
    anomaly, normal = LabelScore(ANOMALY, score), LabelScore(NORMAL, 1.0 - score)
    return (anomaly, normal) if is_anomaly else (normal, anomaly)


class ClassifierHead:
    """Zero-shot (or few-shot) labels: the ``top_k`` labels with probability >= ``score_threshold``."""

    mode = "zero_shot"

    def __init__(self, classifier: EmbeddingClassifier) -> None:
        self.classifier = classifier

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def judge(self, embeddings: torch.Tensor, config: DetectorConfig) -> list[Verdict]:
        """Verdicts of (B, V, D) embeddings; labels need one view per window (V = 1)."""
        if embeddings.shape[1] != 1:
            raise ValueError(f"zero-shot labels take one view per window, got {embeddings.shape[1]} "
                             "(views, e.g. ten crops, are scored in anomaly mode)")
        tops = self.classifier.classify(embeddings[:, 0], top_k=config.top_k)
        return [Verdict(tuple(s for s in top if s.score >= config.score_threshold)) for top in tops]


class AnomalyHead:
    """P(anomaly) of a scorer (mean over a window's views) and its decision against the scorer's threshold."""

    mode = "anomaly"
    labels = (NORMAL, ANOMALY)

    def __init__(self, scorer: AnomalyScorer) -> None:
        self.scorer = scorer

    def judge(self, embeddings: torch.Tensor, config: DetectorConfig) -> list[Verdict]:
        """Verdicts of (B, V, D) embeddings: each window's score is the mean of its V views' scores."""
        b, v, d = embeddings.shape
        scores = np.asarray(self.scorer.score(embeddings.reshape(b * v, d)), np.float64).reshape(b, v).mean(axis=1)
        decisions = self.scorer.decide(scores)
        return [Verdict(anomaly_labels(float(s), bool(a)), float(s), bool(a)) for s, a in zip(scores, decisions)]


Head = ClassifierHead | AnomalyHead


def build_head(model: EventClip, config: DetectorConfig) -> Head:
    """The zero-shot classifier of ``config.labels`` and templates, or the anomaly scorer of ``config.anomaly``
    (its reference bank, else its prompts) with the config's threshold."""
    if config.mode == "zero_shot":
        return ClassifierHead(ZeroShotClassifier(model, config.labels, config.templates))
    anomaly = config.anomaly
    if anomaly.reference_file is not None:
        scorer: AnomalyScorer = ReferenceAnomalyScorer.load(anomaly.reference_file, device=model.device)
        scorer.threshold = anomaly.threshold
    else:
        scorer = TextAnomalyScorer(model, anomaly.normal_prompts, anomaly.abnormal_prompts, anomaly.threshold)
    return AnomalyHead(scorer)


def updated_head(head: Head, model: EventClip, old: DetectorConfig, new: DetectorConfig) -> Head:
    """The head for ``new`` after ``old`` (see module doc); ``head`` is changed in place where it can be.

    ValueError for new labels or templates on a classifier that cannot take them (few-shot prototypes).
    """
    if isinstance(head, ClassifierHead):
        if (new.labels, new.templates) != (old.labels, old.templates):
            classifier = head.classifier
            if not isinstance(classifier, ZeroShotClassifier):
                raise ValueError(f"labels and templates of a {type(classifier).__name__} are fixed")
            classifier.set_labels(new.labels)  # each swaps its text weights atomically
            classifier.set_templates(new.templates)
        return head
    a, b = old.anomaly, new.anomaly
    if (a.normal_prompts, a.abnormal_prompts, a.reference_file) != (b.normal_prompts, b.abnormal_prompts, b.reference_file):
        return build_head(model, new)
    head.scorer.threshold = b.threshold
    return head
