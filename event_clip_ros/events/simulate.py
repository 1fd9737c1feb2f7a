"""Event simulation from intensity frames, and a moving-shapes scene.

:func:`frames_to_events` models an ideal DVS pixel the way ESIM-style simulators
do: each pixel keeps a reference log intensity; when the log intensity moves by
a contrast threshold ``C`` the pixel fires an event (ON up, OFF down) and the
reference moves by ``C``. Between two frames the log intensity is taken to
change linearly, so the k-th crossing of a pixel whose log intensity changes by
``d`` gets the time ``t0 + k * C / |d| * (t1 - t0)``. Optional background noise
fires uniformly random events at ``noise_rate_hz`` per pixel.

The project uses it to make the small recording it ships (data/samples/) and,
in later stages, synthetic training data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .types import EVENT_DTYPE, SensorSize, concat_events, empty_events


@dataclass(frozen=True)
class SimulatorConfig:
    contrast_threshold: float = 0.2  #: log-intensity step per event
    noise_rate_hz: float = 0.0  #: background events per pixel per second
    log_eps: float = 1.0 / 255.0  #: added to intensities in [0, 1] before the log
    seed: int = 0


class EventSimulator:
    """Turns a stream of (time_us, grayscale frame in [0, 1]) into events."""

    def __init__(self, size: SensorSize, config: SimulatorConfig = SimulatorConfig()) -> None:
        self.size = size
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._ref: np.ndarray | None = None
        self._t_prev_us: int | None = None

    def push(self, t_us: int, frame: np.ndarray) -> np.ndarray:
        """Add the next frame; return the events fired since the previous frame, sorted by t."""
        c = self.config.contrast_threshold
        if frame.shape != (self.size.height, self.size.width):
            raise ValueError(f"frame shape {frame.shape} does not match sensor {self.size}")
        log_i = np.log(self.config.log_eps + frame.astype(np.float32)).ravel()
        if self._ref is None or self._t_prev_us is None:
            self._ref, self._t_prev_us = log_i.copy(), int(t_us)
            return empty_events()
        t0, dt = self._t_prev_us, int(t_us) - self._t_prev_us
        if dt <= 0:
            raise ValueError(f"frame times must increase ({t_us} after {t0})")
        d = log_i - self._ref
        n = np.floor(np.abs(d) / c).astype(np.int64)
        idx = np.flatnonzero(n)
        counts = n[idx]
        self._ref[idx] += np.sign(d[idx]) * counts * c
        pix = np.repeat(idx, counts)
        # k-th crossing of each pixel (1-based): position inside its repeat group
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        k = np.arange(pix.size) - starts + 1
        frac = k * c / np.abs(d[pix])
        ev = np.empty(pix.size, dtype=EVENT_DTYPE)
        ev["t"] = t0 + np.minimum(frac, 1.0) * dt
        ev["x"] = pix % self.size.width
        ev["y"] = pix // self.size.width
        ev["p"] = d[pix] > 0
        chunks = [ev, self._noise(t0, dt)]
        self._t_prev_us = int(t_us)
        out = concat_events(chunks)
        return out[np.argsort(out["t"], kind="stable")]

    def _noise(self, t0_us: int, dt_us: int) -> np.ndarray:
        rate = self.config.noise_rate_hz
        if rate <= 0:
            return empty_events()
        n = self._rng.poisson(rate * self.size.width * self.size.height * dt_us * 1e-6)
        ev = np.empty(n, dtype=EVENT_DTYPE)
        ev["t"] = t0_us + self._rng.integers(0, dt_us, n)
        ev["x"] = self._rng.integers(0, self.size.width, n)
        ev["y"] = self._rng.integers(0, self.size.height, n)
        ev["p"] = self._rng.integers(0, 2, n)
        return ev


def frames_to_events(
    frames: Iterable[tuple[int, np.ndarray]], size: SensorSize, config: SimulatorConfig = SimulatorConfig()
) -> Iterator[np.ndarray]:
    """Yield the events between consecutive (time_us, frame) pairs."""
    sim = EventSimulator(size, config)
    for t_us, frame in frames:
        ev = sim.push(t_us, frame)
        if ev.size:
            yield ev


def moving_shapes(
    size: SensorSize, duration_us: int, frame_interval_us: int = 1000, seed: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """A textured background with a bright disc, a dark square and a triangle moving across it.

    Yields (time_us, frame) with intensities in [0, 1]; deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    w, h = size.width, size.height
    bg = cv2.GaussianBlur(rng.uniform(0.3, 0.6, (h, w)).astype(np.float32), (0, 0), 3)
    r = max(3, min(w, h) // 8)
    for t_us in range(0, duration_us + 1, frame_interval_us):
        s = t_us / 1e6
        img = bg.copy()
        cx = int((0.2 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * 1.0 * s))) * w)
        cy = int(0.3 * h)
        cv2.circle(img, (cx, cy), r, 0.95, -1, lineType=cv2.LINE_AA)
        sx = int((0.8 - 0.6 * s % 0.6) * w)
        sy = int(0.7 * h)
        cv2.rectangle(img, (sx - r, sy - r), (sx + r, sy + r), 0.05, -1, lineType=cv2.LINE_AA)
        ang = 2 * np.pi * 0.5 * s
        c = np.array([0.5 * w, 0.55 * h])
        tri = c + 1.2 * r * np.stack([np.cos(ang + np.arange(3) * 2 * np.pi / 3), np.sin(ang + np.arange(3) * 2 * np.pi / 3)], 1)
        cv2.fillPoly(img, [np.round(tri * 16).astype(np.int32)], 0.85, lineType=cv2.LINE_AA, shift=4)
        yield t_us, img
