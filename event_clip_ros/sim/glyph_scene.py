"""Glyphs and shapes seen by a sensor making N-MNIST-like saccades: one instance, or a recording of several.

An instance is drawn (:func:`~.glyphs.sample_params`), rendered (:func:`~.glyphs.render`) and seen
through saccades (:func:`~.saccades.saccade_events`) with one generator, :func:`instance_rng`, keyed
by ``(seed, class id in ALL_CLASSES, instance)``: the training set
(:class:`~event_clip_ros.train.data.SyntheticGlyphs`) and ``event-clip simulate --scene glyphs``
(:func:`glyph_sequence`) make the same instance from the same keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..events.types import SensorSize
from .glyphs import ALL_CLASSES, FONTS, GlyphParams, render, resolve_classes, sample_params
from .saccades import SaccadeConfig, saccade_events
from .seeding import keyed_rng

#: Keyed-generator stream of an instance's look and events (other streams: augmentation, ...).
SAMPLE_STREAM = 0
#: Sides of the square images and sensors accepted (pixels).
IMAGE_SIZE_RANGE = (16, 1024)


def check_image_size(image_size: int) -> None:
    """ValueError unless ``image_size`` is in :data:`IMAGE_SIZE_RANGE`."""
    lo, hi = IMAGE_SIZE_RANGE
    if not lo <= image_size <= hi:
        raise ValueError(f"image_size must be in [{lo}, {hi}], got {image_size}")


def instance_rng(seed: int, class_name: str, instance: int) -> np.random.Generator:
    """The generator of instance ``instance`` of class ``class_name``."""
    return keyed_rng(seed, ALL_CLASSES.index(class_name), instance, SAMPLE_STREAM)


def glyph_margin(image_size: int, saccades: SaccadeConfig) -> float:
    """Border strip (fraction of the side) glyphs keep clear of: the saccades move it out of view."""
    return saccades.max_offset_px / image_size


def draw_params(class_name: str, image_size: int, rng: np.random.Generator, fonts: tuple[str, ...],
                saccades: SaccadeConfig) -> GlyphParams:
    """The look of one instance (the first draws of ``rng``)."""
    return sample_params(class_name, rng, fonts, glyph_margin(image_size, saccades))


def glyph_instance(class_name: str, image_size: int, rng: np.random.Generator, fonts: tuple[str, ...] = tuple(FONTS),
                   saccades: SaccadeConfig = SaccadeConfig()) -> tuple[GlyphParams, np.ndarray, np.ndarray]:
    """One instance: its look, its intensity image ((H, W) float32 in [0, 1]) and its events (t from 0 us)."""
    params = draw_params(class_name, image_size, rng, fonts, saccades)
    intensity = render(params, image_size)
    return params, intensity, saccade_events(intensity, saccades, rng)


@dataclass(frozen=True)
class Segment:
    """A time range of a recording and its ground-truth label (sensor time, us; end exclusive)."""

    t_start_us: int
    t_end_us: int
    label: str


def glyph_sequence(classes: str | tuple[str, ...] | list[str], image_size: int = 48,
                   seed: int = 7) -> tuple[np.ndarray, SensorSize, list[Segment]]:
    """One recording of instances shown one after another, each through its own saccades (the toy model's domain).

    Instance ``k`` is instance 0 of class ``classes[k]`` keyed by ``seed`` (keep it apart from training
    seeds; the same instance as item ``k`` of a training set of ``classes`` with one sample per class),
    its events shifted to start at ``k`` saccade-path durations. Returns the events, the sensor size and
    one :class:`Segment` per instance (for ground truth and windows).
    """
    check_image_size(image_size)
    names = resolve_classes(classes)
    saccades = SaccadeConfig()
    duration_us = saccades.duration_us
    parts, segments = [], []
    for k, name in enumerate(names):
        _, _, events = glyph_instance(name, image_size, instance_rng(seed, name, 0), tuple(FONTS), saccades)
        events["t"] += k * duration_us
        parts.append(events)
        segments.append(Segment(k * duration_us, (k + 1) * duration_us, name))
    return np.concatenate(parts), SensorSize(image_size, image_size), segments
