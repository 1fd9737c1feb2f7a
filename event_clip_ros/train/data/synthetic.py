"""A paired event / image / caption dataset that needs no download: glyphs and shapes seen in saccades.

Each item is one procedurally drawn glyph or shape (:mod:`event_clip_ros.sim.glyphs`) and the
events of an N-MNIST-like recording of it (:mod:`event_clip_ros.sim.saccades`), made by
:func:`event_clip_ros.sim.glyph_scene.glyph_instance`: the image is
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
from ...sim.glyph_scene import check_image_size, draw_params, glyph_instance, instance_rng
from ...sim.glyphs import FONTS, GlyphParams, caption, class_prompt, resolve_classes
from ...sim.saccades import SaccadeConfig
from .augment import EventAugmentConfig
from .sample import EventDataset, Sample

_AUGMENT_STREAM = 1  #: keyed-generator stream of the event augmentation (the instance is drawn from SAMPLE_STREAM)


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
        check_image_size(self.image_size)
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
        return draw_params(self.classes[self.label(index)], self.config.image_size, self._sample_rng(index),
                           self.config.fonts, self.config.saccades)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")

    def _sample_rng(self, index: int) -> np.random.Generator:
        return instance_rng(self.seed, self.classes[index % len(self.classes)], index // len(self.classes))

    def _make(self, index: int) -> Sample:
        label = self.label(index)
        params, intensity, events = glyph_instance(self.classes[label], self.config.image_size, self._sample_rng(index),
                                                   self.config.fonts, self.config.saccades)
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
