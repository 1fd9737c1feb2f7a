"""Per-dataset frame and augmentation settings of the official loaders (paper-method.md 1.4, 1.6).

================ ============== ===== ======================= ================================
kind             representation clamp window (events)         event augmentation
================ ============== ===== ======================= ================================
``n-imagenet``   official       none  30,000                  flip, shift 20, correlated (224)
``n-caltech101`` official       20    30,000                  shift 20, correlated (sensor px)
``n-mnist``      official       10    2,000                   shift 20, correlated (sensor px)
``n-cars``       official       none  whole sample (100 ms)   shift 10, correlated (sensor px)
``dvs-gesture``  official       none  30,000 of a segment     shift 20, correlated (sensor px)
``synthetic``    paper          none  whole sample            none
================ ============== ===== ======================= ================================

"official" is the released code's input (per-polarity counts, each divided
by its max + 1, averaged, mapped to [-1, 1)); "paper" the paper's formula
(E / (max E + 1)), which the toy reproduction used (section 6). The
N-Caltech101 / N-MNIST settings come from the disassembled ``.pyc`` loaders
(no time flip there; the shift is applied at sensor resolution, so +-20 px
on N-MNIST's 34 x 34 sensor drops many events, as in the original).
N-Cars and DVS-Gesture have no official loader in the paper's code: their
settings follow EventCLIP's N-Cars loader (shift +-10 px) and leave time flips
out (a gesture played backwards turns clockwise into counter-clockwise).
The frame's ``out_size`` is the model's input size, so it is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...events.frames import FrameConfig, Representation
from .augment import EventAugmentConfig


@dataclass(frozen=True)
class DatasetDefaults:
    """The official frame settings, events per window and train-time augmentation of one dataset kind."""

    representation: Representation
    clamp: float | None
    num_events: int | None  #: events per training window (None: the whole sample)
    augment: EventAugmentConfig | None


_SENSOR_PX = EventAugmentConfig(time_flip_p=0.0, reference_size=None)

RECOMMENDED: dict[str, DatasetDefaults] = {
    "n-imagenet": DatasetDefaults("official", None, 30_000, EventAugmentConfig()),
    "n-caltech101": DatasetDefaults("official", 20.0, 30_000, _SENSOR_PX),
    "n-mnist": DatasetDefaults("official", 10.0, 2_000, _SENSOR_PX),
    "n-cars": DatasetDefaults("official", None, None, EventAugmentConfig(time_flip_p=0.0, max_shift_px=10.0,
                                                                       reference_size=None)),
    "dvs-gesture": DatasetDefaults("official", None, 30_000, _SENSOR_PX),
    "synthetic": DatasetDefaults("paper", None, None, None),
}


def dataset_defaults(kind: str) -> DatasetDefaults:
    """The :class:`DatasetDefaults` of a dataset kind (a dataset's ``.kind``)."""
    try:
        return RECOMMENDED[kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(RECOMMENDED)}") from None


def recommended_frame_config(kind: str, out_size: tuple[int, int] = (224, 224)) -> FrameConfig:
    """The FrameConfig the official loader of ``kind`` implies, at the model's ``out_size`` (H, W)."""
    d = dataset_defaults(kind)
    return FrameConfig(representation=d.representation, clamp=d.clamp, out_size=out_size)
