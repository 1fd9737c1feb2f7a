"""Zero-shot accuracy of a run's encoders on the held-out and the seen classes.

Metrics (fractions; top-5 is top-min(5, C)):

``unseen_vs_all_top1`` / ``unseen_vs_all_top5`` (the headline, :data:`HEADLINE_METRIC`)
    held-out items ranked among **every** class prompt of the dataset: the
    official ``get_acc`` (argmax over all 100 N-ImageNet prompts, also for the
    20 held-out bird classes), so the figure the paper's tables report;
``unseen_vs_unseen_top1`` / ``unseen_vs_unseen_top5`` (secondary)
    held-out items ranked among the held-out classes' prompts only (N-way, e.g.
    20-way on N-ImageNet): easier, since the seen classes, toward which
    pre-training pulls f_E, do not compete; not comparable with the paper;
``seen_vs_all_top1`` / ``seen_vs_all_top5``
    seen-class items among all prompts;
``seen_vs_seen_top1`` / ``seen_vs_seen_top5`` (validation only, model selection)
    seen-class validation items among the seen classes' prompts only: model
    selection sees neither an item nor a prompt of a held-out class.

Class weights are the normalised f_T embeddings of one prompt per class (the
paper's single template). Embeddings come from f_E on event frames
(:func:`~event_clip_ros.train.engine.evaluation.embed_event_items`) or from f_I
on the paired images (the upper bound f_E is distilled toward).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ...batching import batched
from ...model.event_clip import EventClip
from ...model.zero_shot import ensemble_text_weights
from ..engine.evaluation import embed_event_items, zero_shot_accuracy
from .config import VALIDATION_METRICS
from .data import iterate_items, to_pil

__all__ = ["HEADLINE_METRIC", "VALIDATION_METRICS", "ValidationProbe", "ZeroShotProbe", "chance_metrics",
           "held_out_metrics", "validation_metrics"]

#: The zero-shot figure reports, READMEs and comparisons with the paper use.
HEADLINE_METRIC = "unseen_vs_all_top1"


def held_out_metrics(embeddings: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor,
                     seen: Sequence[int], unseen: Sequence[int]) -> dict[str, float]:
    """The test metrics of the module docstring for ``embeddings`` (N, D) with ``labels`` (N,) into
    ``class_weights`` (C, D), one row per class of the dataset."""
    labels = labels.to(embeddings.device)
    out: dict[str, float] = {}
    for name, classes in (("unseen", unseen), ("seen", seen)):
        if not classes:
            continue
        mask = torch.isin(labels, torch.as_tensor(list(classes), device=labels.device))
        if not bool(mask.any()):
            continue
        among_all = zero_shot_accuracy(embeddings[mask], class_weights, labels[mask])
        out.update({f"{name}_vs_all_top1": among_all.top1, f"{name}_vs_all_top5": among_all.top5})
        if name == "unseen":
            among_own = zero_shot_accuracy(embeddings, class_weights, labels, classes=classes)
            out.update(unseen_vs_unseen_top1=among_own.top1, unseen_vs_unseen_top5=among_own.top5)
    return out


def validation_metrics(embeddings: torch.Tensor, labels: torch.Tensor, seen_weights: torch.Tensor) -> dict[str, float]:
    """``seen_vs_seen_top1/top5`` of seen-class items; ``labels`` index ``seen_weights`` (the seen prompts' rows)."""
    acc = zero_shot_accuracy(embeddings, seen_weights, labels)
    return {"seen_vs_seen_top1": acc.top1, "seen_vs_seen_top5": acc.top5}


def chance_metrics(num_classes: int, seen: Sequence[int], unseen: Sequence[int]) -> dict[str, float]:
    """The expected metrics of a random ranking."""
    out: dict[str, float] = {}
    if unseen:
        out.update(unseen_vs_all_top1=1 / num_classes, unseen_vs_all_top5=min(5, num_classes) / num_classes,
                   unseen_vs_unseen_top1=1 / len(unseen), unseen_vs_unseen_top5=min(5, len(unseen)) / len(unseen))
    if seen:
        out.update(seen_vs_all_top1=1 / num_classes, seen_vs_all_top5=min(5, num_classes) / num_classes,
                   seen_vs_seen_top1=1 / len(seen), seen_vs_seen_top5=min(5, len(seen)) / len(seen))
    return out


class ZeroShotProbe:
    """Evaluates a model on one dataset (items with ``events``, ``label`` and, for images, ``image``)."""

    def __init__(self, dataset: Dataset, prompts: Sequence[str], seen: Sequence[int], unseen: Sequence[int],
                 batch_size: int = 64, workers: int = 0) -> None:
        self.dataset = dataset
        self.prompts = list(prompts)
        self.seen, self.unseen = list(seen), list(unseen)
        self.batch_size = batch_size
        self.workers = workers

    def class_weights(self, model: EventClip) -> torch.Tensor:
        """(C, D) normalised prompt embeddings of f_T."""
        return ensemble_text_weights(model, [[p] for p in self.prompts])

    def events(self, model: EventClip) -> dict[str, float]:
        """Metrics of f_E on the items' event frames."""
        emb, labels = embed_event_items(model, iterate_items(self.dataset, self.batch_size, self.workers), self.batch_size)
        return held_out_metrics(emb, labels, self.class_weights(model), self.seen, self.unseen)

    @torch.inference_mode()
    def images(self, model: EventClip) -> dict[str, float]:
        """Metrics of f_I on the items' paired images."""
        embeddings, labels = [], []
        for batch in batched(iterate_items(self.dataset, self.batch_size, self.workers), self.batch_size):
            images = []
            for item in batch:
                if item["image"] is None:
                    raise ValueError("f_I needs the paired images: load the dataset with its images")
                images.append(to_pil(item["image"]))
                labels.append(int(item["label"]))
            embeddings.append(model.embed_images(images))
        emb = torch.cat(embeddings)
        return held_out_metrics(emb, torch.as_tensor(np.asarray(labels)), self.class_weights(model), self.seen, self.unseen)


class ValidationProbe:
    """Model selection on seen-class validation items, ranked among the seen classes' prompts only.

    Neither a held-out item nor a held-out prompt reaches it: an item of another class is an error.
    """

    def __init__(self, dataset: Dataset, prompts: Sequence[str], seen: Sequence[int], batch_size: int = 64,
                 workers: int = 0) -> None:
        self.dataset = dataset
        self.seen = list(seen)
        self.seen_prompts = [prompts[i] for i in self.seen]
        self.batch_size = batch_size
        self.workers = workers

    def events(self, model: EventClip) -> dict[str, float]:
        emb, labels = embed_event_items(model, iterate_items(self.dataset, self.batch_size, self.workers), self.batch_size)
        remap = {c: i for i, c in enumerate(self.seen)}
        unknown = sorted({int(y) for y in labels.tolist()} - remap.keys())
        if unknown:
            raise ValueError(f"validation items of classes {unknown}, which are not seen classes: model selection "
                             "must not see held-out classes")
        local = torch.as_tensor([remap[int(y)] for y in labels.tolist()], dtype=torch.int64)
        weights = ensemble_text_weights(model, [[p] for p in self.seen_prompts])
        return validation_metrics(emb, local, weights)
