"""Zero-shot classification of event windows against free-text labels.

Method (CLIP's prompt ensembling, applied to f_E's embeddings)
    For label ``c`` with templates ``t_1..t_T`` the class weight is
    ``w_c = normalize(mean_j normalize(f_T(t_j(c))))``; the rows ``w_c`` form
    ``W`` (C, D). For an event embedding ``e`` (L2-normalised on entry)
    ``logits = s * e @ W.T`` with ``s = model.logit_scale`` (CLIP's learned
    temperature), ``probs = softmax(logits)`` over the labels, and
    :meth:`~EmbeddingClassifier.classify` reports the ``top_k`` labels with
    their probabilities, best first.

Run-time changes
    ``W`` is computed once and cached. :meth:`ZeroShotClassifier.set_labels`
    encodes only labels it has not got a weight for (kept labels keep their
    rows); :meth:`ZeroShotClassifier.set_templates` re-encodes all labels;
    setting the same labels or templates again encodes nothing. The labels and
    their weights are swapped in as one object, so a classification running in
    another thread sees either the old or the new label set, never a mix.

Everything runs batched on the model's device under ``torch.inference_mode``;
results come back as numpy arrays (or lists of :class:`LabelScore`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..events.types import SensorSize
from .event_clip import EventClip
from .finite import finite_rows
from .prompts import DEFAULT_TEMPLATES, fill_templates, validate_labels, validate_templates

Embeddings = torch.Tensor | np.ndarray


@dataclass(frozen=True, slots=True)
class LabelScore:
    label: str
    score: float  #: probability of the label, in [0, 1]


def as_embedding_batch(embeddings: Embeddings, dim: int, device: torch.device) -> torch.Tensor:
    """``embeddings`` (N, D) as an L2-normalised float32 tensor on ``device``.

    Raises ValueError for another shape, a non-float dtype or non-finite values.
    """
    x = torch.as_tensor(embeddings)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected embeddings of shape (N, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {x.dtype}")
    x = x.to(device=device, dtype=torch.float32)
    finite = finite_rows(x)
    if not bool(finite.all()):
        raise ValueError(
            f"embeddings contain NaN or infinite values ({int((~finite).sum())} of {len(finite)} rows); "
            "drop such rows first (event_clip_ros.model.finite.split_finite)"
        )
    return F.normalize(x, dim=-1)


@torch.inference_mode()
def ensemble_text_weights(model: EventClip, prompts_per_class: Sequence[Sequence[str]]) -> torch.Tensor:
    """(C, D) class weights: per class, the renormalised mean of its prompts' normalised embeddings.

    The prompts of all classes are encoded in one batched pass; classes may have
    different numbers of prompts.
    """
    counts = [len(p) for p in prompts_per_class]
    if not counts or min(counts) == 0:
        raise ValueError("every class needs at least one prompt")
    flat = [prompt for prompts in prompts_per_class for prompt in prompts]
    emb = model.embed_texts(flat)
    bad = ~finite_rows(emb)
    if bool(bad.any()):
        first = flat[int(bad.nonzero()[0])]
        raise ValueError(
            f"the text encoder gives NaN or infinite embeddings for {int(bad.sum())} of {len(flat)} prompts "
            f"(first: {first!r}): damaged weights, or an fp16 overflow (try precision fp32)"
        )
    owner = torch.repeat_interleave(torch.arange(len(counts), device=emb.device), torch.tensor(counts, device=emb.device))
    sums = torch.zeros(len(counts), emb.shape[1], device=emb.device).index_add_(0, owner, emb)
    return F.normalize(sums, dim=-1)  # the mean's direction is the sum's


class EmbeddingClassifier(ABC):
    """Labels scored from event embeddings; subclasses define the logits."""

    model: EventClip | None

    @property
    @abstractmethod
    def labels(self) -> tuple[str, ...]: ...

    @property
    @abstractmethod
    def embed_dim(self) -> int: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def _labelled_logits(self, emb: torch.Tensor) -> tuple[tuple[str, ...], torch.Tensor]:
        """(labels, logits (N, C)) of normalised embeddings, from one consistent label set."""

    @torch.inference_mode()
    def logits(self, embeddings: Embeddings) -> np.ndarray:
        """(N, C) float32 logits, columns in :attr:`labels` order."""
        return self._labelled_logits(as_embedding_batch(embeddings, self.embed_dim, self.device))[1].cpu().numpy()

    @torch.inference_mode()
    def probs(self, embeddings: Embeddings) -> np.ndarray:
        """(N, C) float32 probabilities (softmax of the logits over the labels)."""
        emb = as_embedding_batch(embeddings, self.embed_dim, self.device)
        return self._labelled_logits(emb)[1].softmax(dim=-1).cpu().numpy()

    @torch.inference_mode()
    def classify(self, embeddings: Embeddings, top_k: int = 5) -> list[list[LabelScore]]:
        """Per embedding, the ``top_k`` labels (fewer if there are fewer labels) with their probabilities, best first."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        labels, logits = self._labelled_logits(as_embedding_batch(embeddings, self.embed_dim, self.device))
        scores, index = logits.softmax(dim=-1).topk(min(top_k, len(labels)), dim=-1)
        return [
            [LabelScore(labels[i], s) for i, s in zip(row_i, row_s)]
            for row_i, row_s in zip(index.cpu().tolist(), scores.cpu().tolist())
        ]

    def classify_windows(
        self, windows_events: Sequence[np.ndarray], size: SensorSize, top_k: int = 5, batch_size: int = 64
    ) -> list[list[LabelScore]]:
        """Embed event windows with the model (:meth:`EventClip.embed_windows`) and classify them."""
        if self.model is None:
            raise RuntimeError("this classifier was built from embeddings without a model; it cannot embed windows")
        return self.classify(self.model.embed_windows(windows_events, size, batch_size), top_k)


@dataclass(frozen=True)
class TextHead:
    """One consistent label set: labels, the templates they were encoded with, and W (C, D).

    Replaced as a whole on every change, so code holding one sees a consistent set.
    """

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    weights: torch.Tensor


class ZeroShotClassifier(EmbeddingClassifier):
    """Event embeddings against text labels through prompt-ensembled CLIP text weights (see module doc)."""

    def __init__(self, model: EventClip, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> None:
        self.model = model
        self.logit_scale = model.logit_scale
        self._embed_dim = model.embed_dim
        self._device = model.device
        labels, templates = validate_labels(labels), validate_templates(templates)
        self._head = TextHead(labels, templates, self._encode(labels, templates))

    @classmethod
    def from_text_embeddings(
        cls, labels: Sequence[str], weights: Embeddings, logit_scale: float, device: str | torch.device = "cpu"
    ) -> "ZeroShotClassifier":
        """A classifier with given class weights (C, D) (normalised here) and no model.

        For tests and for weights computed elsewhere; it cannot change labels or
        templates, nor embed windows.
        """
        labels = validate_labels(labels)
        w = torch.as_tensor(weights)
        if w.ndim != 2 or w.shape[0] != len(labels):
            raise ValueError(
                f"expected weights of shape ({len(labels)}, D) for {len(labels)} distinct labels, got {tuple(w.shape)}"
            )
        if not (np.isfinite(logit_scale) and logit_scale > 0):
            raise ValueError(f"logit_scale must be positive and finite, got {logit_scale}")
        self = cls.__new__(cls)
        self.model = None
        self.logit_scale = float(logit_scale)
        self._embed_dim = int(w.shape[1])
        self._device = torch.device(device)
        self._head = TextHead(labels, (), as_embedding_batch(w, self._embed_dim, self._device))
        return self

    @property
    def head(self) -> TextHead:
        """The current labels, templates and weights (one consistent snapshot)."""
        return self._head

    @property
    def labels(self) -> tuple[str, ...]:
        return self._head.labels

    @property
    def templates(self) -> tuple[str, ...]:
        return self._head.templates

    @property
    def weights(self) -> torch.Tensor:
        """The (C, D) class weights W, rows in :attr:`labels` order."""
        return self._head.weights

    @property
    def embed_dim(self) -> int:
        return self._embed_dim

    @property
    def device(self) -> torch.device:
        return self._device

    def set_labels(self, labels: Sequence[str]) -> None:
        """Change the labels, encoding only those without a weight yet."""
        labels = validate_labels(labels)
        head = self._head
        if labels == head.labels:
            return
        row = {label: i for i, label in enumerate(head.labels)}
        new = [label for label in labels if label not in row]
        with torch.inference_mode():
            parts = [head.weights, self._encode(new, head.templates)] if new else [head.weights]
            row.update({label: len(head.labels) + i for i, label in enumerate(new)})
            order = torch.tensor([row[label] for label in labels], device=self._device)
            weights = torch.cat(parts).index_select(0, order)
        self._head = TextHead(labels, head.templates, weights)

    def set_templates(self, templates: Sequence[str]) -> None:
        """Change the templates (all labels are re-encoded)."""
        templates = validate_templates(templates)
        head = self._head
        if templates != head.templates:
            self._head = TextHead(head.labels, templates, self._encode(head.labels, templates))

    def _encode(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError(
                "this classifier was built from embeddings without a model; it cannot encode new labels or templates"
            )
        return ensemble_text_weights(self.model, [fill_templates(templates, label) for label in labels])

    def _labelled_logits(self, emb: torch.Tensor) -> tuple[tuple[str, ...], torch.Tensor]:
        head = self._head
        return head.labels, self.logit_scale * emb @ head.weights.T
