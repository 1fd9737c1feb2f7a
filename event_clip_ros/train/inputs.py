"""The input statistics of f_E a training run records in its checkpoint (``event_mean`` / ``event_std``).

The rule and the one place that applies them are in :mod:`event_clip_ros.model.event_clip`
(:func:`~event_clip_ros.model.event_clip.event_input_stats`, :meth:`EventClip.frames_to_input`); this
module takes CLIP's image statistics from the model being trained.
"""

from __future__ import annotations

import open_clip

from ..model.event_clip import EventClip, event_input_stats


def event_normalisation(model: EventClip, representation: str, mode: str = "auto") -> tuple[list[float], list[float]]:
    """The (mean, std) f_E's input gets: ``auto`` follows :func:`~event_clip_ros.model.event_clip.event_input_stats`
    (CLIP's image statistics for "paper" frames, none for "official" ones), ``clip`` / ``none`` force one."""
    if mode == "none":
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    image = open_clip.get_model_preprocess_cfg(model.clip)
    mean, std = list(image["mean"]), list(image["std"])
    return event_input_stats("paper" if mode == "clip" else representation, mean, std)
