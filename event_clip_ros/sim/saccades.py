"""Events of a static image seen by a moving sensor, the way N-MNIST and N-Caltech101 were recorded.

Orchard et al. (2015) put an ATIS camera on a pan-tilt unit in front of a
monitor showing a still image and moved it through three short saccades that
trace a triangle (about 100 ms each, a few pixels of motion); only the edges,
sliding over the pixels, fire events. :func:`saccade_events` simulates that:

Motion
    The sensor offset follows the sides of a regular polygon (a triangle for
    three saccades) of side ``amplitude_px`` with a random orientation,
    starting and ending at the origin. Along each side the speed has a smooth
    bell profile (position ``(1 - cos(pi s)) / 2``), as an eye or a pan-tilt
    unit accelerates and brakes. The image is warped to each of
    ``steps_per_saccade`` sub-pixel offsets with ``cv2.warpAffine`` (bilinear),
    i.e. the optics integrate the intensity over the pixel area.

Pixel model (beyond :class:`event_clip_ros.events.simulate.EventSimulator`'s ideal pixel)
    * log intensity ``log(I + log_eps)`` with ``I`` in [0, 1];
    * per-pixel ON and OFF contrast thresholds drawn once per sample from
      ``N(threshold_mean, threshold_sigma)`` (clipped below at
      ``threshold_min``): fixed-pattern mismatch between pixels;
    * the reference level a pixel last reset to is unknown when the recording
      starts: drawn uniformly inside the band where it would not fire;
    * read noise: Gaussian noise of ``read_noise_sigma`` (log units) on every
      sampled log intensity;
    * the k-th crossing between two steps gets the time where the linearly
      interpolated log intensity reaches its level;
    * refractory period: after an event a pixel is blind for
      ``refractory_us``; a crossing inside that time fires when the period
      ends (its change is not lost, as the reference was not reset);
    * background activity: Poisson events uniform over pixels, time and
      polarity at ``noise_rate_hz`` per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from ..events.types import EVENT_DTYPE, SensorSize, concat_events


@dataclass(frozen=True)
class SaccadeConfig:
    """Sensor motion and pixel parameters of :func:`saccade_events` (defaults: an N-MNIST-like recording)."""

    saccades: int = 3  #: sides of the closed path (3: the N-MNIST triangle)
    saccade_us: int = 100_000  #: duration of one saccade
    amplitude_px: tuple[float, float] = (1.5, 3.5)  #: range of the side length, drawn per sample
    steps_per_saccade: int = 12  #: sub-pixel image positions per saccade
    threshold_mean: float = 0.2  #: mean ON / OFF contrast threshold (log units)
    threshold_sigma: float = 0.03  #: pixel-to-pixel spread of the thresholds
    threshold_min: float = 0.05  #: lower clip of a drawn threshold
    log_eps: float = 0.05  #: added to the intensity before the log
    refractory_us: int = 1_000  #: time a pixel is blind after an event
    read_noise_sigma: float = 0.01  #: noise on each sampled log intensity (log units)
    noise_rate_hz: float = 0.3  #: background events per pixel per second

    def __post_init__(self) -> None:
        if self.saccades < 2:
            raise ValueError(f"saccades must be >= 2 (a closed path), got {self.saccades}")
        if self.steps_per_saccade < 1 or self.saccade_us < self.steps_per_saccade:
            raise ValueError("need steps_per_saccade >= 1 and saccade_us >= steps_per_saccade")
        lo, hi = self.amplitude_px
        if not 0 <= lo <= hi:
            raise ValueError(f"amplitude_px must be (low, high) with 0 <= low <= high, got {self.amplitude_px}")
        if self.threshold_min <= 0 or self.threshold_mean <= 0 or self.threshold_sigma < 0:
            raise ValueError("thresholds must be positive (threshold_sigma >= 0)")
        if self.log_eps <= 0 or self.refractory_us < 0 or self.read_noise_sigma < 0 or self.noise_rate_hz < 0:
            raise ValueError("log_eps must be positive; refractory_us, read_noise_sigma, noise_rate_hz >= 0")

    @property
    def duration_us(self) -> int:
        """Length of a recording: all saccades."""
        return self.saccades * self.saccade_us

    @property
    def max_offset_px(self) -> float:
        """Largest distance of the sensor from its start: the farthest vertex of the widest polygon."""
        n = self.saccades
        return self.amplitude_px[1] * np.sin(np.pi * (n // 2) / n) / np.sin(np.pi / n)


def saccade_path(config: SaccadeConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sensor offsets (S + 1, 2) float in pixels (x, y) and their times (S + 1,) int64 us.

    ``S = saccades * steps_per_saccade``; the path starts and ends at (0, 0).
    """
    n, steps = config.saccades, config.steps_per_saccade
    side = rng.uniform(*config.amplitude_px)
    radius = side / (2.0 * np.sin(np.pi / n))
    angles = rng.uniform(0.0, 2.0 * np.pi) + 2.0 * np.pi * np.arange(n + 1) / n
    vertices = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    vertices -= vertices[0]
    s = np.arange(1, steps + 1) / steps
    ease = (1.0 - np.cos(np.pi * s)) / 2.0  # bell-shaped speed along each side
    sides = vertices[:-1, None, :] + ease[None, :, None] * (vertices[1:] - vertices[:-1])[:, None, :]
    offsets = np.concatenate([vertices[:1], sides.reshape(-1, 2)])
    step_us = config.saccade_us / steps
    times = np.round(np.arange(n * steps + 1) * step_us).astype(np.int64)
    return offsets, times


@njit(cache=True, nogil=True)
def _crossings(log_i, t_us, c_on, c_off, ref, refractory_us, width, out):
    """Emit the threshold crossings of every pixel between consecutive samples; return the count (-1: out full).

    ``log_i`` (S + 1, N) float32 log intensities, ``ref`` (N,) the reference
    levels (updated in place). Events of one step come out in pixel order.
    """
    n_pix = log_i.shape[1]
    last = np.full(n_pix, -(1 << 60), dtype=np.int64)
    n = 0
    for s in range(log_i.shape[0] - 1):
        t0 = t_us[s]
        t1 = t_us[s + 1]
        dt = t1 - t0
        for i in range(n_pix):
            a = log_i[s, i]
            b = log_i[s + 1, i]
            r = ref[i]
            while True:
                if b - r >= c_on[i]:
                    level = r + c_on[i]
                    pol = 1
                elif r - b >= c_off[i]:
                    level = r - c_off[i]
                    pol = 0
                else:
                    break
                frac = (level - a) / (b - a) if b != a else 1.0
                frac = min(max(frac, 0.0), 1.0)
                t = t0 + np.int64(frac * dt)
                if t < last[i] + refractory_us:
                    t = last[i] + refractory_us
                if t > t1:
                    break  # still refractory at the end of the step: fires in a later one
                if n >= out.shape[0]:
                    return -1
                out[n].t = t
                out[n].x = i % width
                out[n].y = i // width
                out[n].p = pol
                n += 1
                r = level
                last[i] = t
            ref[i] = r
    return n


def _background(n_pixels: int, size: SensorSize, duration_us: int, rate_hz: float,
                rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate_hz * n_pixels * duration_us * 1e-6) if rate_hz > 0 else 0
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["t"] = rng.integers(0, duration_us + 1, n)
    ev["x"] = rng.integers(0, size.width, n)
    ev["y"] = rng.integers(0, size.height, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def saccade_events(image: np.ndarray, config: SaccadeConfig, rng: np.random.Generator) -> np.ndarray:
    """Events (sorted by t, from t = 0 us) of a sensor making ``config.saccades`` saccades over ``image``.

    ``image``: (H, W) float32 intensities in [0, 1]; the sensor is W x H.
    Pixels uncovered at the border repeat the edge (the scene continues).
    """
    if image.ndim != 2 or image.dtype != np.float32:
        raise ValueError(f"expected an (H, W) float32 image, got {image.dtype} {image.shape}")
    h, w = image.shape
    size = SensorSize(w, h)
    offsets, times = saccade_path(config, rng)
    log_i = np.empty((offsets.shape[0], h * w), dtype=np.float32)
    for k, (dx, dy) in enumerate(offsets):
        shift = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]])  # the sensor moves by +d: the image by -d
        log_i[k] = cv2.warpAffine(image, shift, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).ravel()
    log_i += np.float32(config.log_eps)
    np.log(log_i, out=log_i)
    if config.read_noise_sigma > 0:
        log_i += rng.standard_normal(log_i.shape, dtype=np.float32) * np.float32(config.read_noise_sigma)

    n_pix = h * w
    c_on = np.maximum(rng.normal(config.threshold_mean, config.threshold_sigma, n_pix), config.threshold_min)
    c_off = np.maximum(rng.normal(config.threshold_mean, config.threshold_sigma, n_pix), config.threshold_min)
    ref = log_i[0].astype(np.float64) - c_on + rng.uniform(0.0, 1.0, n_pix) * (c_on + c_off)
    # each event moves the reference by at least min(c_on, c_off) towards the signal,
    # which starts less than c_on + c_off away and travels its total variation
    variation = np.abs(np.diff(log_i, axis=0)).sum(axis=0, dtype=np.float64)
    bound = int(np.ceil((variation + c_on + c_off) / np.minimum(c_on, c_off)).sum()) + 1
    out = np.empty(bound, dtype=EVENT_DTYPE)
    n = _crossings(log_i, times, c_on, c_off, ref, np.int64(config.refractory_us), w, out)
    if n < 0:
        raise RuntimeError("saccade_events: event bound exceeded (a bug in the bound)")
    events = concat_events([out[:n], _background(n_pix, size, config.duration_us, config.noise_rate_hz, rng)])
    return events[np.argsort(events["t"], kind="stable")]
