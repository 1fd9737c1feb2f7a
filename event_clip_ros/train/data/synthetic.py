"""A paired event / image / caption dataset that needs no download: glyphs and shapes seen in saccades.

Each item is one procedurally drawn glyph or shape (:mod:`.glyphs`) and the
events of an N-MNIST-like recording of it (:mod:`.saccades`): the image is
static and the simulated sensor makes three small saccades over it. The
paired image is the rendered intensity image (uint8, H x W) at the start of
the recording, the caption describes the instance ("a small bold letter k,
tilted left, at the top left, in a serif font") and :meth:`prompts` gives
the plain class prompts ("the letter k") for zero-shot evaluation.

Items are made on the fly in ``__getitem__`` (about 2 ms at 48 x 48, 4 ms at
64 x 64 on one core) and are deterministic: item ``i`` is instance
``i // n_classes`` of class ``classes[i % n_classes]`` (so every class has
``samples_per_class`` items, interleaved), drawn from a generator keyed by
``(seed, class id in ALL_CLASSES, instance)``. A class subset therefore holds
the same instances as the full set with the same seed; use different seeds
for training and evaluation sets. ``cache=True`` keeps made items in the
memory of the process that made them, which pays off with ``num_workers=0``
or persistent workers (re-created workers start empty). Optional event
augmentation varies with :meth:`set_epoch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...events.types import SensorSize
from .augment import EventAugmentConfig
from .glyphs import ALL_CLASSES, FONTS, GlyphParams, caption, class_prompt, render, resolve_classes, sample_params
from .saccades import SaccadeConfig, saccade_events
from .sample import EventDataset, Sample, keyed_rng

_SAMPLE_STREAM, _AUGMENT_STREAM = 0, 1


@dataclass(frozen=True)
class SyntheticConfig:
    """What :class:`SyntheticGlyphs` draws."""

    image_size: int = 48  #: side of the square image and sensor (pixels)
    classes: str | tuple[str, ...] | list[str] = "all"  #: class names (a tuple once made), or a group: all, glyphs, digits, letters, shapes
    samples_per_class: int = 100
    seed: int = 0
    fonts: tuple[str, ...] = tuple(FONTS)  #: Hershey fonts glyphs are drawn with (keys of glyphs.FONTS)
    saccades: SaccadeConfig = SaccadeConfig()  #: sensor motion and pixel model
    augment: EventAugmentConfig | None = None  #: event augmentation (None: events as simulated)
    cache: bool = False  #: keep made items in memory

    def __post_init__(self) -> None:
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [16, 1024], got {self.image_size}")
        if self.samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1, got {self.samples_per_class}")
        unknown = [f for f in self.fonts if f not in FONTS]
        if unknown or not self.fonts:
            raise ValueError(f"unknown fonts {unknown}; fonts: {', '.join(FONTS)}")
        object.__setattr__(self, "classes", resolve_classes(self.classes))


class SyntheticGlyphs(EventDataset):
    """Glyphs and shapes with their saccade events, images and descriptive captions."""

    kind = "synthetic"

    def __init__(self, config: SyntheticConfig = SyntheticConfig()) -> None:
        super().__init__(config.seed, config.augment)
        self.config = config
        self.classes = list(config.classes)
        self.size = SensorSize(config.image_size, config.image_size)
        self._class_ids = [ALL_CLASSES.index(c) for c in self.classes]
        # keep glyphs clear of the border strip the saccades move out of view
        self._margin = config.saccades.max_offset_px / config.image_size
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.classes) * self.config.samples_per_class

    @staticmethod
    def class_prompt(name: str) -> str:
        """"the letter k", "the digit 3", "a star shape"."""
        return class_prompt(name)

    def prompts(self) -> list[str]:
        """The class prompts, in class order (for zero-shot evaluation)."""
        return [class_prompt(c) for c in self.classes]

    def label(self, index: int) -> int:
        """Class index of item ``index`` (without making it)."""
        self._check_index(index)
        return index % len(self.classes)

    def labels(self) -> np.ndarray:
        """Class index of every item (int64, length ``len(self)``)."""
        return np.arange(len(self), dtype=np.int64) % len(self.classes)

    def params(self, index: int) -> GlyphParams:
        """The drawn look of item ``index``."""
        return sample_params(self.classes[self.label(index)], self._sample_rng(index), self.config.fonts,
                             self._margin)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")

    def _sample_rng(self, index: int) -> np.random.Generator:
        label = index % len(self.classes)
        return keyed_rng(self.seed, self._class_ids[label], index // len(self.classes), _SAMPLE_STREAM)

    def _make(self, index: int) -> Sample:
        rng = self._sample_rng(index)
        label = self.label(index)
        params = sample_params(self.classes[label], rng, self.config.fonts, self._margin)
        intensity = render(params, self.config.image_size)
        events = saccade_events(intensity, self.config.saccades, rng)
        image = np.rint(intensity * np.float32(255.0)).astype(np.uint8)
        return Sample(events=events, size=self.size, image=image, label=label, caption=caption(params))

    def __getitem__(self, index: int) -> Sample:
        self._check_index(index)
        sample = self._cache.get(index)
        if sample is None:
            sample = self._make(index)
            if self.config.cache:
                assert sample["image"] is not None  # glyph samples carry their image
                sample["events"].flags.writeable = False
                sample["image"].flags.writeable = False
                self._cache[index] = sample
        if self.augment is None:
            return sample
        events = self.augment_events(sample["events"], self.size, self.item_rng(index, _AUGMENT_STREAM))
        return {**sample, "events": events}


@dataclass(frozen=True)
class Segment:
    """A time range of a recording and its ground-truth label (sensor time, us; end exclusive)."""

    t_start_us: int
    t_end_us: int
    label: str


def glyph_sequence(classes: str | tuple[str, ...] | list[str], image_size: int = 48,
                   seed: int = 7) -> tuple[np.ndarray, SensorSize, list[Segment]]:
    """One recording of instances shown one after another, each through its own saccades (the toy model's domain).

    Instance ``k`` is item ``k`` of a :class:`SyntheticGlyphs` of ``classes`` with one sample per class and
    ``seed`` (keep it apart from training seeds), its events shifted to start at ``k`` saccade-path durations.
    Returns the events, the sensor size and one :class:`Segment` per instance (for ground truth and windows).
    """
    dataset = SyntheticGlyphs(SyntheticConfig(image_size=image_size, classes=tuple(resolve_classes(classes)),
                                              samples_per_class=1, seed=seed))
    duration_us = dataset.config.saccades.duration_us
    parts, segments = [], []
    for k in range(len(dataset)):
        events = dataset[k]["events"].copy()
        events["t"] += k * duration_us
        parts.append(events)
        segments.append(Segment(k * duration_us, (k + 1) * duration_us, dataset.classes[k]))
    return np.concatenate(parts), dataset.size, segments
