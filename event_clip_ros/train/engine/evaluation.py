"""Zero-shot evaluation: top-1 / top-5 and per-class accuracy of embeddings against class text weights.

Method (the paper's accuracy, paper-method.md 1.5 "Inference / accuracy"): a
sample's prediction is the class whose text weight has the highest cosine
similarity with its embedding. Class weights are CLIP prompt ensembles,
``w_c = normalize(mean_j normalize(f_T(template_j(c))))`` computed by
:func:`event_clip_ros.model.zero_shot.ensemble_text_weights` (with the paper's
single prompt per dataset this is just the normalised prompt embedding). Top-5
counts a sample correct when its class is among the ``min(5, C)`` best; the key
stays ``"top5"`` whatever ``C`` is. Per-class accuracy is reported with its mean
(balanced accuracy); classes without samples are NaN and excluded from that mean.

Embeddings may come from f_E (events, :func:`embed_event_items`) or f_I (images).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ...batching import batched
from ...events.frames import build_frames_torch
from ...events.types import SensorSize
from ...model.event_clip import EventClip

TOP_K = 5


@dataclass(frozen=True)
class ZeroShotAccuracy:
    """Accuracies of one evaluation (fractions in [0, 1])."""

    top1: float
    top5: float  #: top-k accuracy with k = min(5, number of classes)
    per_class: np.ndarray  #: (C,) top-1 accuracy per class (in the order evaluated), NaN for classes without samples
    count: int  #: samples evaluated

    @property
    def mean_per_class(self) -> float:
        """Mean of the per-class top-1 accuracies over classes with samples (balanced accuracy)."""
        present = self.per_class[~np.isnan(self.per_class)]
        return float(present.mean()) if present.size else float("nan")

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Scalar metrics for logging: ``{prefix}top1``, ``{prefix}top5``, ``{prefix}mean_per_class``, ``{prefix}count``."""
        return {
            f"{prefix}top1": self.top1,
            f"{prefix}top5": self.top5,
            f"{prefix}mean_per_class": self.mean_per_class,
            f"{prefix}count": float(self.count),
        }


@torch.inference_mode()
def zero_shot_accuracy(
    embeddings: torch.Tensor,
    class_weights: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    *,
    classes: Sequence[int] | None = None,
) -> ZeroShotAccuracy:
    """Accuracy of ``embeddings`` (N, D) against ``class_weights`` (C, D) for ``labels`` (N,) in [0, C).

    ``classes``: restrict the candidates to these class indices (e.g. the held-out
    classes for "unseen among unseen" accuracy); samples of other classes are left
    out and ``per_class`` follows the order of ``classes``. Both inputs are
    L2-normalised here, so raw embeddings are fine.
    """
    emb = torch.as_tensor(embeddings)
    weights = torch.as_tensor(class_weights).to(device=emb.device, dtype=torch.float32)
    labels = torch.as_tensor(labels, dtype=torch.int64).to(emb.device)
    if emb.ndim != 2 or weights.ndim != 2 or emb.shape[1] != weights.shape[1]:
        raise ValueError(f"need embeddings (N, D) and class weights (C, D), got {tuple(emb.shape)} and {tuple(weights.shape)}")
    if labels.shape != (emb.shape[0],):
        raise ValueError(f"need one label per embedding, got {tuple(labels.shape)} for {emb.shape[0]} embeddings")
    num_classes = weights.shape[0]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
    if classes is not None:
        candidates = torch.as_tensor(list(classes), dtype=torch.int64, device=emb.device)
        if candidates.numel() == 0 or len(set(candidates.tolist())) != candidates.numel():
            raise ValueError("classes must be a non-empty list of distinct class indices")
        if int(candidates.min()) < 0 or int(candidates.max()) >= num_classes:
            raise ValueError(f"classes must lie in [0, {num_classes})")
        remap = torch.full((num_classes,), -1, dtype=torch.int64, device=emb.device)
        remap[candidates] = torch.arange(candidates.numel(), device=emb.device)
        keep = remap[labels] >= 0
        emb, labels, weights = emb[keep], remap[labels[keep]], weights[candidates]
        num_classes = candidates.numel()
    count = emb.shape[0]
    if count == 0:
        return ZeroShotAccuracy(float("nan"), float("nan"), np.full(num_classes, np.nan), 0)
    with torch.autocast(device_type=emb.device.type, enabled=False):  # cosines in fp32 under any autocast
        sims = F.normalize(emb.float(), dim=-1) @ F.normalize(weights, dim=-1).T
    ranked = sims.topk(min(TOP_K, num_classes), dim=-1).indices
    hit1 = ranked[:, 0] == labels
    hit5 = (ranked == labels[:, None]).any(dim=-1)
    per_class_total = torch.bincount(labels, minlength=num_classes).double()
    per_class_hits = torch.bincount(labels, weights=hit1.double(), minlength=num_classes)
    per_class = torch.where(per_class_total > 0, per_class_hits / per_class_total.clamp(min=1), torch.nan)
    return ZeroShotAccuracy(
        top1=float(hit1.double().mean()),
        top5=float(hit5.double().mean()),
        per_class=per_class.cpu().numpy(),
        count=count,
    )


@torch.inference_mode()
def embed_event_items(
    model: EventClip, items: Iterable[Mapping], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """f_E embeddings (N, D) and labels (N,) of dataset items (dicts with "events", "size", "label").

    Items are taken ``batch_size`` at a time; frames are built on the model's
    device by :func:`build_frames_torch` with the model's :class:`FrameConfig`
    (items of one batch may have different sensor sizes). The model is put in
    eval mode for the pass and back in its previous mode afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    embeddings, labels = [], []
    try:
        for batch in batched(items, batch_size):
            embeddings.append(_embed_batch(model, batch))
            labels += [int(it["label"]) for it in batch]
    finally:
        model.train(was_training)
    emb = torch.cat(embeddings) if embeddings else torch.empty(0, model.embed_dim, device=model.device)
    return emb, torch.tensor(labels, dtype=torch.int64, device=emb.device)


def _embed_batch(model: EventClip, batch: Sequence[Mapping]) -> torch.Tensor:
    out = torch.empty(len(batch), model.embed_dim, device=model.device)
    by_size: dict[SensorSize, list[int]] = {}
    for i, item in enumerate(batch):
        by_size.setdefault(item["size"], []).append(i)
    for size, rows in by_size.items():
        frames = build_frames_torch([batch[i]["events"] for i in rows], size, model.frame_config, model.device)
        out[torch.tensor(rows, device=model.device)] = model.encode_frames(frames)
    return out


def evaluate_zero_shot(
    model: EventClip,
    items: Iterable[Mapping],
    class_weights: torch.Tensor,
    *,
    batch_size: int = 64,
    classes: Sequence[int] | None = None,
) -> ZeroShotAccuracy:
    """:func:`zero_shot_accuracy` of the f_E embeddings of ``items`` (see :func:`embed_event_items`)."""
    emb, labels = embed_event_items(model, items, batch_size)
    return zero_shot_accuracy(emb, class_weights, labels, classes=classes)
