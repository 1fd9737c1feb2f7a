"""Accuracy of the compared methods on the evaluation items: zero-shot, few-shot prototypes, fine-tuned.

Every method ranks **all** the dataset's classes for each evaluation item (the official ``get_acc``: the
argmax over every class prompt, also for the held-out classes; the headline ``top1`` / ``top5``); when the
targets are a subset (the held-out classes), ``nway`` gives the same ranking among the targets only
(easier, not the paper's protocol). Zero-shot ranks by the cosine of the f_E
embedding with the class-prompt embeddings (:func:`~event_clip_ros.train.engine.zero_shot_accuracy`),
few-shot by the logits of a :class:`~event_clip_ros.model.few_shot.FewShotClassifier` whose prototypes
are the f_E embeddings of the k-shot training items (no training). Reports hold top-1, top-5 (top-min(5, C)),
the mean per-class top-1 and the per-class top-1 by class name (null for a class without items).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from ...model.event_clip import EventClip
from ...model.few_shot import FewShotClassifier
from ...model.zero_shot import ZeroShotClassifier, ensemble_text_weights
from ..engine.evaluation import ZeroShotAccuracy, embed_event_items, zero_shot_accuracy
from .data import FinetuneData


def embed_items(model: EventClip, dataset: Dataset, indices: Sequence[int] | np.ndarray, *, batch_size: int = 64,
                workers: int = 0, desc: str = "embed", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """f_E embeddings (N, D) and labels (N,) of ``dataset[indices]``, in order, loaded by ``workers`` processes."""
    loader = DataLoader(Subset(dataset, [int(i) for i in indices]), batch_size=None, num_workers=workers, collate_fn=_as_is)
    items = tqdm(loader, desc=desc, total=len(indices), unit="item", leave=False, disable=not progress)
    return embed_event_items(model, items, batch_size)


def _as_is(item: Any) -> Any:
    """collate_fn of an item-by-item loader: the item unchanged (PyTorch's default would convert its arrays)."""
    return item


def score_accuracy(scores: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> ZeroShotAccuracy:
    """Top-1 / top-5 / per-class accuracy of (N, C) class scores for labels in [0, C).

    :func:`zero_shot_accuracy` ranks cosines; L2-normalising a row keeps its ranking, so with identity
    class weights it ranks by the scores themselves.
    """
    return zero_shot_accuracy(scores, torch.eye(scores.shape[1], device=scores.device), labels)


def few_shot_accuracy(model: EventClip, class_weights: torch.Tensor, candidates: Sequence[int], shot_emb: torch.Tensor,
                      shot_labels: torch.Tensor, eval_emb: torch.Tensor, eval_labels: torch.Tensor,
                      alpha: float) -> ZeroShotAccuracy:
    """Accuracy of a :class:`FewShotClassifier` over ``candidates`` (indices into ``class_weights`` (C, D)).

    Shots of other classes are ignored; a candidate without shots is scored by its text weight alone.
    ``per_class`` follows the order of ``candidates``; every evaluation label must be a candidate.
    """
    names = [str(c) for c in candidates]
    position = {c: i for i, c in enumerate(candidates)}
    text = ZeroShotClassifier.from_text_embeddings(names, class_weights[list(candidates)], model.logit_scale,
                                                   device=model.device)
    few = FewShotClassifier(text, alpha=alpha)
    keep = [i for i, y in enumerate(shot_labels.tolist()) if y in position]
    if not keep:
        raise ValueError("none of the shots belongs to a candidate class")
    few.fit(shot_emb[keep], [names[position[int(y)]] for y in shot_labels[keep].tolist()])
    return score_accuracy(torch.from_numpy(few.logits(eval_emb)), [position[y] for y in eval_labels.tolist()])


def accuracy_report(acc: ZeroShotAccuracy, class_names: Sequence[str], only: Sequence[int] | None = None,
                    nway: ZeroShotAccuracy | None = None) -> dict[str, Any]:
    """JSON-ready: ``top1``, ``top5``, ``mean_per_class``, ``count``, ``per_class`` {name: top-1 or null} (the
    classes ``only`` when given: indices into ``class_names`` and ``acc.per_class``) and, with ``nway``, the
    N-way figures among the targets only."""
    rows = range(len(class_names)) if only is None else only
    out: dict[str, Any] = {
        "top1": _finite_or_none(acc.top1),
        "top5": _finite_or_none(acc.top5),
        "mean_per_class": _finite_or_none(acc.mean_per_class),
        "count": acc.count,
        "per_class": {class_names[i]: _finite_or_none(float(acc.per_class[i])) for i in rows},
    }
    if nway is not None:
        out["nway"] = {"classes": len(nway.per_class), "top1": _finite_or_none(nway.top1),
                       "top5": _finite_or_none(nway.top5), "mean_per_class": _finite_or_none(nway.mean_per_class)}
    return out


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class _Loading(TypedDict):
    """How :func:`embed_items` loads the items."""

    batch_size: int
    workers: int
    progress: bool


class MethodComparison:
    """Embeds a run's evaluation items (and shots) with a model and reports the methods' accuracy."""

    def __init__(self, data: FinetuneData, *, batch_size: int = 64, workers: int = 0, progress: bool = True) -> None:
        self.data = data
        self.loading = _Loading(batch_size=batch_size, workers=workers, progress=progress)

    def zero_shot(self, model: EventClip, split: str = "eval", weights: torch.Tensor | None = None) -> ZeroShotAccuracy:
        """Zero-shot accuracy among all classes on the test items (``split="eval"``) or the validation items (``"val"``).

        ``weights``: the class-prompt embeddings when already computed (f_T is frozen: they never change).
        """
        return self._zero_shot(model, split, weights)[0]

    def zero_shot_report(self, model: EventClip, weights: torch.Tensor | None = None) -> dict[str, Any]:
        """eval.json's entry of ``model``'s zero-shot accuracy on the test items (headline and ``nway``)."""
        acc, nway = self._zero_shot(model, "eval", weights)
        return accuracy_report(acc, self.data.classes, self.data.targets, nway)

    def _zero_shot(self, model: EventClip, split: str, weights: torch.Tensor | None
                   ) -> tuple[ZeroShotAccuracy, ZeroShotAccuracy | None]:
        data = self.data
        if split == "eval":
            dataset, indices = data.eval_dataset, data.eval_indices
        elif data.val is None:
            raise ValueError("this run has no validation split")
        else:
            dataset, indices = data.val, data.val_indices
        emb, labels = embed_items(model, dataset, indices, desc=f"embed {split}", **self.loading)
        weights = ensemble_text_weights(model, [[p] for p in data.prompts]) if weights is None else weights
        nway = zero_shot_accuracy(emb, weights, labels, classes=data.targets) if data.nway else None
        return zero_shot_accuracy(emb, weights, labels), nway

    def zero_and_few_shot(self, model: EventClip, alpha: float) -> dict[str, Any]:
        """eval.json's ``zero_shot`` and (with shots) ``few_shot`` entries for ``model`` (no training)."""
        data = self.data
        weights = ensemble_text_weights(model, [[p] for p in data.prompts])
        eval_emb, eval_labels = embed_items(model, data.eval_dataset, data.eval_indices, desc=f"embed {data.eval_split}",
                                            **self.loading)
        everything = list(range(len(data.classes)))
        zero = zero_shot_accuracy(eval_emb, weights, eval_labels)
        zero_nway = zero_shot_accuracy(eval_emb, weights, eval_labels, classes=data.targets) if data.nway else None
        out = {"zero_shot": accuracy_report(zero, data.classes, data.targets, zero_nway)}
        if data.shots is None:
            return out
        shot_emb, shot_labels = embed_items(model, data.shots, data.train_indices, desc="embed shots", **self.loading)
        few = few_shot_accuracy(model, weights, everything, shot_emb, shot_labels, eval_emb, eval_labels, alpha)
        few_nway = (few_shot_accuracy(model, weights, data.targets, shot_emb, shot_labels, eval_emb, eval_labels, alpha)
                    if data.nway else None)
        out["few_shot"] = {**accuracy_report(few, data.classes, data.targets, few_nway), "alpha": alpha}
        return out
