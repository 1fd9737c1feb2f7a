"""Few-shot classification: prototypes of a few labelled event windows, blended with zero-shot text weights.

Method
    The shots of label ``c`` are ``n_c`` normalised event embeddings with mean
    ``m_c``. With ``mu`` the mean of the ``m_c`` over the labels (of the current
    label set) that have shots, the prototype is ``p_c = normalize(m_c - mu)``
    and a query ``e`` (normalised) becomes ``q = normalize(e - mu)``. Then::

        logit_c = s * ((1 - alpha) * e . w_c + alpha * q . p_c)   labels with shots
        logit_c = s * e . w_c                                      labels without (text only)

    where ``w_c`` and ``s`` are the zero-shot classifier's text weight and
    logit scale. ``alpha = 0`` is zero-shot; ``alpha = 1`` uses the prototypes
    alone for labels with shots.

Why centre on ``mu``
    Event embeddings occupy a narrow cone (with the random-init tiny model every
    pair of windows has cosine > 0.99; trained CLIP image embeddings show the
    same "cone effect" less strongly), so raw cosines to prototypes barely
    differ between classes and a blend with the text cosines is decided by the
    text alone: on the simulated shapes task of ``test/test_few_shot.py`` the
    uncentred blend stays at chance (1/3) up to ``alpha = 0.9``. Subtracting
    the support mean and renormalising (SimpleShot's "CL2N", Wang et al. 2019,
    arXiv:1911.04623) spreads the prototype cosines over [-1, 1]; the centred
    blend reaches 0.56 / 0.66 / 0.74 there with 1 / 2 / 5 shots at
    ``alpha = 0.5`` (the text tower, random, is at chance). A centre
    needs a contrast, so the prototypes are used once at least two labels of
    the current set have shots; before that the classifier is zero-shot
    (:attr:`FewShotClassifier.prototypes_active`).

Shots are kept as per-label sums of normalised embeddings and counts (memory
O(labels x D), however many shots are added), so shots can be added at run
time and a saved file (:meth:`FewShotClassifier.save`, npz) resumes exactly.
Shots of labels later removed from the zero-shot label set are kept but unused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .prompts import validate_labels
from .zero_shot import EmbeddingClassifier, Embeddings, TextHead, ZeroShotClassifier, as_embedding_batch

FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PrototypeHead:
    """Prototypes aligned to one text head; rebuilt when the text head or the shots change."""

    text: TextHead
    shots_version: int
    mask: torch.Tensor  #: (C,) bool, labels with shots
    centre: torch.Tensor  #: (D,) mu
    prototypes: torch.Tensor  #: (C, D), zero rows for labels without shots
    with_shots: int  #: number of labels with shots; prototypes are used from 2 on


class FewShotClassifier(EmbeddingClassifier):
    """Zero-shot text weights plus centred class prototypes from labelled shots (see module doc)."""

    def __init__(self, zero_shot: ZeroShotClassifier, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.zero_shot = zero_shot
        self.model = zero_shot.model
        self.alpha = float(alpha)
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._version = 0
        self._head: _PrototypeHead | None = None
        self._warned_one_label = False

    @property
    def labels(self) -> tuple[str, ...]:
        return self.zero_shot.labels

    @property
    def embed_dim(self) -> int:
        return self.zero_shot.embed_dim

    @property
    def device(self) -> torch.device:
        return self.zero_shot.device

    @property
    def shot_counts(self) -> dict[str, int]:
        """Number of shots per label that has any (labels outside the current set included)."""
        return dict(self._counts)

    @property
    def prototypes_active(self) -> bool:
        """Whether at least two labels of the current set have shots (else classification is zero-shot)."""
        return sum(label in self._counts for label in self.labels) >= 2

    # ------------------------------------------------------------------ shots
    def add_shots(self, label: str, embeddings: Embeddings) -> None:
        """Add (k, D) embeddings of windows showing ``label`` (one of the current labels)."""
        if label not in self.labels:
            raise ValueError(
                f"label {label!r} is not one of the classifier's labels {list(self.labels)}; "
                "set_labels on the zero-shot classifier first"
            )
        with torch.inference_mode():
            emb = as_embedding_batch(embeddings, self.embed_dim, self.device)
            if emb.shape[0] == 0:
                raise ValueError(f"no embeddings given for label {label!r}")
            total = emb.sum(dim=0)
            self._sums[label] = self._sums[label] + total if label in self._sums else total
        self._counts[label] = self._counts.get(label, 0) + emb.shape[0]
        self._version += 1

    def fit(self, embeddings: Embeddings, labels: Sequence[str]) -> None:
        """Replace all shots with (N, D) embeddings and their N labels."""
        labels = list(labels)
        if len(labels) != len(embeddings):
            raise ValueError(f"got {len(embeddings)} embeddings but {len(labels)} labels")
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classifier's labels {list(self.labels)}")
        emb = as_embedding_batch(embeddings, self.embed_dim, self.device)
        distinct = validate_labels(labels)  # in first-seen order; raises when there are none
        self.clear()
        names = np.asarray(labels, dtype=object)
        for label in distinct:
            self.add_shots(label, emb[torch.from_numpy(names == label).to(self.device)])

    def clear(self, label: str | None = None) -> None:
        """Forget the shots of ``label``, or of every label."""
        if label is None:
            self._sums.clear()
            self._counts.clear()
        else:
            self._sums.pop(label, None)
            self._counts.pop(label, None)
        self._version += 1

    # ------------------------------------------------------------------ logits
    def _prototype_head(self) -> _PrototypeHead:
        text, head, version = self.zero_shot.head, self._head, self._version
        if head is not None and head.text is text and head.shots_version == version:
            return head
        with torch.inference_mode():
            labels = text.labels
            has_shots = [label in self._sums for label in labels]
            mask = torch.tensor(has_shots, device=self.device)
            prototypes = torch.zeros(len(labels), self.embed_dim, device=self.device)
            centre = torch.zeros(self.embed_dim, device=self.device)
            if sum(has_shots) >= 2:
                means = torch.stack([self._sums[label] / self._counts[label] for label in labels if label in self._sums])
                centre = means.mean(dim=0)
                prototypes[mask] = F.normalize(means - centre, dim=-1)
        head = _PrototypeHead(text, version, mask, centre, prototypes, sum(has_shots))
        self._head = head
        return head

    def _labelled_logits(self, emb: torch.Tensor) -> tuple[tuple[str, ...], torch.Tensor]:
        head = self._prototype_head()
        text = emb @ head.text.weights.T
        if head.with_shots < 2:
            if head.with_shots == 1 and not self._warned_one_label:
                logger.warning("few-shot prototypes need shots of at least two labels; classifying zero-shot until then")
                self._warned_one_label = True
            return head.text.labels, self.zero_shot.logit_scale * text
        proto = F.normalize(emb - head.centre, dim=-1) @ head.prototypes.T
        mixed = torch.where(head.mask, (1.0 - self.alpha) * text + self.alpha * proto, text)
        return head.text.labels, self.zero_shot.logit_scale * mixed

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the shots (per-label sums and counts), alpha and D to an npz file."""
        labels = list(self._counts)
        sums = np.zeros((0, self.embed_dim), np.float32)
        if labels:
            sums = torch.stack([self._sums[label] for label in labels]).cpu().numpy()
        with open(path, "wb") as file:  # exactly this path (np.savez would append .npz to a bare name)
            np.savez(
                file,
                format_version=np.int64(FORMAT_VERSION),
                labels=np.asarray(labels, dtype=str),
                sums=sums.astype(np.float32),
                counts=np.asarray([self._counts[label] for label in labels], dtype=np.int64),
                alpha=np.float64(self.alpha),
            )

    @classmethod
    def load(cls, path: str | Path, zero_shot: ZeroShotClassifier, alpha: float | None = None) -> "FewShotClassifier":
        """A classifier on ``zero_shot`` with the shots of a :meth:`save` file (``alpha``: None = the saved one).

        Every saved label must be one of ``zero_shot``'s labels, and the
        embedding size must match.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                version = int(data["format_version"])
                labels = [str(v) for v in data["labels"]]
                sums, counts, saved_alpha = data["sums"], data["counts"], float(data["alpha"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a few-shot prototype file ({exc})") from exc
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: format version {version}, this code reads {FORMAT_VERSION}")
        if sums.ndim != 2 or sums.shape != (len(labels), zero_shot.embed_dim) or counts.shape != (len(labels),):
            raise ValueError(
                f"{path}: shots of shape {sums.shape} do not fit {len(labels)} labels of a model with D={zero_shot.embed_dim}"
            )
        if np.any(counts < 1) or not np.isfinite(sums).all():
            raise ValueError(f"{path}: corrupt shot counts or sums")
        unknown = sorted(set(labels) - set(zero_shot.labels))
        if unknown:
            raise ValueError(f"{path}: labels {unknown} are not among the classifier's labels {list(zero_shot.labels)}")
        self = cls(zero_shot, saved_alpha if alpha is None else alpha)
        tensor = torch.from_numpy(sums).to(self.device, torch.float32)
        for i, label in enumerate(labels):
            self._sums[label] = tensor[i]
            self._counts[label] = int(counts[i])
        self._version += 1
        return self
