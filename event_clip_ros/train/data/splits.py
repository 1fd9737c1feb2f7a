"""Class splits (seen / held-out classes by name) and k-shot subsets.

A split file is YAML with an ``unseen`` list of class names (see
``training/configs/``); the seen classes are the dataset's others unless a
``seen`` list is given. Names are matched to ``dataset.classes`` by
:func:`match_classes`: exactly, or against the first synonym of an ImageNet
synonym string ("ruffed grouse" matches "ruffed grouse, partridge, Bonasa
umbellus"; "partridge" matches only the class whose first synonym it is).

K-shot subsets (:func:`kshot_indices`) take ``k`` items per class, drawn
without replacement by a seeded generator, in dataset order. The official
few-shot lists (``configs/train_list_{1,2,5}_shot.txt``) are plain N-ImageNet
list files with k files for each of the 20 held-out classes; load them with
:class:`~event_clip_ros.train.data.paired.NImageNetPaired`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml


def _first_synonym(name: str) -> str:
    return name.split(",", 1)[0].strip()


def match_classes(names: Sequence[str], classes: Sequence[str]) -> list[int]:
    """Indices into ``classes`` of ``names`` (exact match first, then a unique first-synonym match)."""
    exact = {c: i for i, c in enumerate(classes)}
    first: dict[str, list[int]] = {}
    for i, c in enumerate(classes):
        first.setdefault(_first_synonym(c), []).append(i)
    out = []
    for name in names:
        if name in exact:
            out.append(exact[name])
        elif len(first.get(name, ())) == 1:
            out.append(first[name][0])
        elif name in first:
            raise ValueError(f"class name {name!r} is ambiguous: {[classes[i] for i in first[name]]}")
        else:
            raise ValueError(f"class name {name!r} is not one of the dataset's {len(classes)} classes")
    if len(set(out)) != len(out):
        raise ValueError(f"class names {list(names)} name some class twice")
    return out


@dataclass(frozen=True)
class ClassSplit:
    """Held-out class names and, optionally, an explicit list of seen ones."""

    unseen: tuple[str, ...]
    seen: tuple[str, ...] | None = None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ClassSplit":
        """Read ``unseen`` (and optional ``seen``) name lists from a YAML mapping."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read class split {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("unseen"), list):
            raise ValueError(f"{path}: expected a YAML mapping with an 'unseen' list of class names")
        seen = data.get("seen")
        if seen is not None and not isinstance(seen, list):
            raise ValueError(f"{path}: 'seen' must be a list of class names")
        return cls(tuple(str(n) for n in data["unseen"]), None if seen is None else tuple(str(n) for n in seen))

    def indices(self, classes: Sequence[str]) -> tuple[list[int], list[int]]:
        """(seen, unseen) class indices into ``classes``; seen defaults to every class not held out."""
        unseen = match_classes(self.unseen, classes)
        if self.seen is None:
            held_out = set(unseen)
            seen = [i for i in range(len(classes)) if i not in held_out]
        else:
            seen = match_classes(self.seen, classes)
            overlap = set(seen) & set(unseen)
            if overlap:
                raise ValueError(f"classes both seen and unseen: {[classes[i] for i in sorted(overlap)]}")
        return seen, unseen


def kshot_indices(labels: Sequence[int] | np.ndarray, k: int, seed: int,
                  classes: Sequence[int] | None = None) -> np.ndarray:
    """Indices of ``k`` items of each class in ``classes`` (default: every label present), sorted.

    Raises ValueError when a class has fewer than ``k`` items.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    labels = np.asarray(labels, dtype=np.int64)
    wanted = np.unique(labels) if classes is None else np.asarray(classes, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = []
    for c in wanted:
        items = np.flatnonzero(labels == c)
        if items.size < k:
            raise ValueError(f"class {int(c)} has {items.size} items, fewer than k={k}")
        picked.append(rng.choice(items, size=k, replace=False))
    return np.sort(np.concatenate(picked))
