"""What an index takes in through a model: event windows, images and texts, with their labels and time intervals."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

import numpy as np
from PIL import Image

from ...events.windows import Window

EventWindow = Union[Window, np.ndarray]
ImageSource = Union[Image.Image, str, os.PathLike]


def item_labels(labels: Sequence[str | None] | None, n: int) -> list[str | None]:
    """One label (or None) per item, from None, one label or a sequence of ``n``."""
    if labels is None:
        return [None] * n
    labels = [labels] if isinstance(labels, str) else list(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} items")
    return labels


def interval(window: EventWindow) -> tuple[int | None, int | None]:
    """[t_start_us, t_end_us) of a window, or of a bare event array's events."""
    if isinstance(window, Window):
        return window.t_start_us, window.t_end_us
    if len(window) == 0:
        return None, None
    return int(window["t"][0]), int(window["t"][-1]) + 1


def open_image(image: ImageSource) -> Image.Image:
    """An RGB PIL image from a PIL image or a file path (the file is closed after reading)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(image) as im:
        return im.convert("RGB")
