"""Synthetic event windows of moving shapes, for tests of the classifiers and anomaly scorers.

Each shape moves in its own way over a static textured background (which fires
no events): a disc slides horizontally, a bar rotates about its centre, a
square slides vertically. Events come from the project's simulator, with a
little background noise. The random-init tiny model separates these kinds by
their event frames (not by name: its text tower knows nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from event_clip_ros.events.simulate import EventSimulator, SimulatorConfig
from event_clip_ros.events.types import SensorSize

SENSOR = SensorSize(64, 48)
SHAPES = ("disc", "bar", "square")
#: where the i-th shape of a window sits, relative to the sensor centre (pixels)
OFFSETS_PX = ((0.0, 0.0), (-20.0, -12.0), (20.0, 12.0))


def _fill(img: np.ndarray, corners: np.ndarray, value: float) -> None:
    cv2.fillPoly(img, [np.round(corners * 16).astype(np.int32)], value, cv2.LINE_AA, shift=4)


def _draw(img: np.ndarray, kind: str, cx: float, cy: float, r: float, t: float, speed: float, angle0: float) -> None:
    """One shape ``t`` frames after the window's middle; ``speed`` in pixels per frame (signed)."""
    if kind == "disc":
        centre = (int(round((cx + t * speed) * 16)), int(round(cy * 16)))
        cv2.circle(img, centre, int(r * 16), 0.95, -1, cv2.LINE_AA, shift=4)
    elif kind == "bar":  # 8 degrees per frame, turning with the sign of speed
        _fill(img, cv2.boxPoints(((cx, cy), (3.0 * r, 0.5 * r), angle0 + 8.0 * t * np.sign(speed))), 0.95)
    elif kind == "square":
        _fill(img, cv2.boxPoints(((cx, cy + t * speed), (2.0 * r, 2.0 * r), 0.0)), 0.95)
    else:
        raise ValueError(f"unknown shape {kind!r}")


def shape_window(kinds: Sequence[str], rng: np.random.Generator, jitter_px: float = 6.0, n_frames: int = 8) -> np.ndarray:
    """The events of one window showing ``kinds`` (at most 3) with random size, speed, direction and position."""
    if len(kinds) > len(OFFSETS_PX):
        raise ValueError(f"at most {len(OFFSETS_PX)} shapes per window, got {len(kinds)}")
    w, h = SENSOR.width, SENSOR.height
    background = cv2.GaussianBlur(rng.uniform(0.3, 0.6, (h, w)).astype(np.float32), (0, 0), 2)
    shapes = []
    for kind, (dx, dy) in zip(kinds, OFFSETS_PX):
        cx, cy = w / 2 + dx + rng.uniform(-jitter_px, jitter_px), h / 2 + dy + rng.uniform(-jitter_px, jitter_px)
        speed = rng.uniform(1.0, 2.0) * rng.choice([-1.0, 1.0])
        shapes.append((kind, cx, cy, rng.uniform(7.0, 9.0), speed, rng.uniform(0.0, 180.0)))
    sim = EventSimulator(SENSOR, SimulatorConfig(noise_rate_hz=20.0, seed=int(rng.integers(2**31))))
    chunks = []
    for i in range(n_frames):
        img = background.copy()
        for kind, cx, cy, r, speed, angle0 in shapes:
            _draw(img, kind, cx, cy, r, i - n_frames / 2, speed, angle0)
        chunks.append(sim.push(i * 1000, img))
    return np.concatenate(chunks)
