"""Zero-shot accuracy of a run's encoders on seen and held-out classes.

Metrics (fractions; top-5 is top-min(5, C)):

``unseen_top1`` / ``unseen_top5``
    held-out items ranked among the held-out classes' prompts only (the
    paper's zero-shot protocol on its 20 held-out N-ImageNet classes);
``unseen_vs_all_top1`` / ``unseen_vs_all_top5``
    held-out items ranked among all classes' prompts (harder: the seen classes
    compete, and f_E was pulled toward them during pre-training);
``seen_vs_all_top1`` / ``seen_vs_all_top5``
    seen-class items among all prompts.

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

from ...model.event_clip import EventClip
from ...model.zero_shot import ensemble_text_weights
from ..engine.evaluation import embed_event_items, zero_shot_accuracy
from .data import iterate_items, to_pil


def held_out_metrics(embeddings: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor,
                     seen: Sequence[int], unseen: Sequence[int]) -> dict[str, float]:
    """The metrics of the module docstring for ``embeddings`` (N, D) with ``labels`` (N,) into ``class_weights`` (C, D)."""
    labels = labels.to(embeddings.device)
    out: dict[str, float] = {}
    groups = (("unseen", unseen), ("seen", seen))
    for name, classes in groups:
        if not classes:
            continue
        mask = torch.isin(labels, torch.as_tensor(list(classes), device=labels.device))
        if not bool(mask.any()):
            continue
        if name == "unseen":
            among_own = zero_shot_accuracy(embeddings, class_weights, labels, classes=classes)
            out.update(unseen_top1=among_own.top1, unseen_top5=among_own.top5)
        among_all = zero_shot_accuracy(embeddings[mask], class_weights, labels[mask])
        out.update({f"{name}_vs_all_top1": among_all.top1, f"{name}_vs_all_top5": among_all.top5})
    return out


def chance_metrics(num_classes: int, seen: Sequence[int], unseen: Sequence[int]) -> dict[str, float]:
    """The expected metrics of a random ranking."""
    out: dict[str, float] = {}
    if unseen:
        out.update(unseen_top1=1 / len(unseen), unseen_top5=min(5, len(unseen)) / len(unseen),
                   unseen_vs_all_top1=1 / num_classes, unseen_vs_all_top5=min(5, num_classes) / num_classes)
    if seen:
        out.update(seen_vs_all_top1=1 / num_classes, seen_vs_all_top5=min(5, num_classes) / num_classes)
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
        embeddings, labels, batch = [], [], []
        for item in iterate_items(self.dataset, self.batch_size, self.workers):
            batch.append(to_pil(item["image"]))
            labels.append(int(item["label"]))
            if len(batch) == self.batch_size:
                embeddings.append(model.embed_images(batch))
                batch = []
        if batch:
            embeddings.append(model.embed_images(batch))
        emb = torch.cat(embeddings)
        return held_out_metrics(emb, torch.as_tensor(np.asarray(labels)), self.class_weights(model), self.seen, self.unseen)
