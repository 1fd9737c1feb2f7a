"""Noise filters applied to an event stream before windowing: hot pixels and background activity.

Real sensors fire without a scene: single *background activity* events scattered
over the array, and *hot pixels* that fire far more often than any other. One
hot pixel decides the maximum of the paper's frame (counts / (max + 1)) and
leaves the rest nearly black. :class:`NoiseFilter` removes both, in this order:

Hot-pixel mask (``hot_pixel_learn_us`` > 0)
    Over the first ``hot_pixel_learn_us`` of sensor time of a stream, every
    event is counted per pixel. A pixel is hot while its count is above
    ``hot_pixel_min_count`` and above ``hot_pixel_factor`` times the mean count
    of the pixels that fired so far; its events are dropped. At the end of the
    learning time the mask freezes: pixels hot at that moment stay masked for
    the rest of the stream, the others are never masked. The rule is applied
    event by event while learning, so the first windows are already clean and
    the result does not depend on how the stream is cut into packets.

Background activity (``background_activity_us`` > 0)
    An event is kept when one of its 8 neighbour pixels fired less than
    ``background_activity_us`` before it (polarity ignored; the event's own
    pixel does not count); every event that reaches this filter, kept or not,
    marks its pixel. This is dv-processing's ``dv.noise.BackgroundActivityNoiseFilter``
    (test/test_noise.py checks they agree on a real recording), compiled here
    because feeding dv-processing from numpy costs more than the filter itself
    (bench/bench_noise.py). Events of masked hot pixels mark nothing. An event
    without a neighbour since the stream started is dropped, so the first
    ``background_activity_us`` of a stream lose most of their events.

Streams
    :meth:`NoiseFilter.keep` takes the stream in order, packet by packet, and
    carries its state (time surface, counts, mask) between packets: one packet or
    many give the same result. Sensor time going back more than
    ``reset_tolerance_us`` (a camera restart, a bag loop; the windower's rule)
    starts it afresh, as does :meth:`NoiseFilter.reset` (the input side calls it
    when the stream restarts) and a change of sensor size. Smaller backward steps
    are jitter: they neither reset nor break the support test.

The filter returns a mask rather than fewer events: the windower takes the
stream's time from every event and its contents from the kept ones
(:meth:`~event_clip_ros.events.windows.Windower.push`), so filtering never moves
a window boundary or a stamp. Events outside the sensor are left to the stages
that check them (kept, not filtered). Everything is counted in
:class:`NoiseStats`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .types import EVENT_DTYPE, Counters, SensorSize

#: Longest hot-pixel learning time, us: one hour.
MAX_NOISE_US = 3_600_000_000
#: Longest background-activity support window, us: one second (support from longer ago is no support).
MAX_SUPPORT_US = 1_000_000

_NO_TIME = np.iinfo(np.int64).min  # running max before the first event
# The time surface holds int32 times relative to a base (half the memory of int64, 2.5x the speed here:
# the look-ups are cache misses); the base moves when times leave +-2**30 us (18 minutes) of it.
_REBASE = 1 << 30
_NEVER = -(1 << 31)  # a pixel that never fired (or more than 18 minutes ago): no event is within reach of it
_MAX_COUNT = (1 << 31) - 1  # hot-pixel counts saturate here

# layout of the kernel's int64 state vector
(_RUNNING_MAX, _LEARN_START, _LEARNING, _TOTAL, _ACTIVE, _BA_REMOVED, _HOT_REMOVED, _RESETS, _HOT_PIXELS,
 _BASE) = range(10)
_STATE_LEN = 10


@dataclass(frozen=True)
class NoiseFilterConfig:
    """Which noise filters run before windowing, with their settings (see module doc); all off by default."""

    background_activity_us: int = 0  #: keep an event when a neighbour fired less than this before it; 0: off
    hot_pixel_learn_us: int = 0  #: learn the hot-pixel mask over this much sensor time from the start; 0: off
    hot_pixel_factor: float = 10.0  #: a pixel is hot above this many times the mean count of the active pixels
    hot_pixel_min_count: int = 20  #: ... and above this many events (no mask from a handful of events)

    def __post_init__(self) -> None:
        for name, low, high in (("background_activity_us", 0, MAX_SUPPORT_US), ("hot_pixel_learn_us", 0, MAX_NOISE_US),
                                ("hot_pixel_min_count", 1, 1 << 31)):
            value = getattr(self, name)
            try:
                if isinstance(value, bool):
                    raise TypeError
                number = operator.index(value)
            except TypeError:
                raise ValueError(f"{name} must be an integer, got {value!r}") from None
            if not low <= number <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {number}")
            object.__setattr__(self, name, number)
        factor = self.hot_pixel_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1.0:
            raise ValueError(f"hot_pixel_factor must be a finite number >= 1, got {factor!r}")
        object.__setattr__(self, "hot_pixel_factor", float(factor))

    @classmethod
    def from_ms(cls, background_activity_ms: float = 0.0, hot_pixel_learn_ms: float = 0.0, **kwargs) -> "NoiseFilterConfig":
        """Times given in milliseconds (rounded to whole microseconds; NaN or infinity is a ValueError)."""
        values = {}
        for name, ms in (("background_activity_us", background_activity_ms), ("hot_pixel_learn_us", hot_pixel_learn_ms)):
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
                raise ValueError(f"{name[:-3]}_ms must be a finite number of milliseconds, got {ms!r}")
            values[name] = round(ms * 1000)
        return cls(**values, **kwargs)

    @property
    def enabled(self) -> bool:
        """Whether any filter runs."""
        return self.background_activity_us > 0 or self.hot_pixel_learn_us > 0

    def describe(self) -> str:
        """One line naming the filters that run, e.g. for a log or a report."""
        parts = []
        if self.hot_pixel_learn_us:
            parts.append(f"hot pixels (learned over {self.hot_pixel_learn_us / 1000:g} ms, > {self.hot_pixel_factor:g}x "
                         f"the mean and > {self.hot_pixel_min_count} events)")
        if self.background_activity_us:
            parts.append(f"background activity (neighbour support within {self.background_activity_us} us)")
        return ", ".join(parts) if parts else "off"


@dataclass
class NoiseStats(Counters):
    """Counters of a :class:`NoiseFilter` (cumulative over restarts)."""

    events: int = 0  #: events in
    hot_pixel_removed: int = 0  #: events of masked hot pixels, dropped
    background_removed: int = 0  #: events without neighbour support, dropped
    hot_pixels: int = 0  #: pixels masked when the last learning time ended (or masked so far while learning)
    resets: int = 0  #: times the filter started afresh (time went back, restart, size change)
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def removed(self) -> int:
        return self.hot_pixel_removed + self.background_removed


@njit(cache=True, nogil=True)
def _clear(surface, counts, hot):
    surface[:] = _NEVER
    counts[:] = 0
    hot[:] = False


@njit(cache=True, nogil=True)
def _rebase(surface, shift):
    """Times of the surface relative to a base ``shift`` us later; those beyond reach become never."""
    for j in range(surface.shape[0]):
        v = np.int64(surface[j]) - shift
        surface[j] = _NEVER if v < -_REBASE else min(v, _REBASE - 1)


@njit(cache=True, nogil=True)
def _is_hot(count, total, active, factor, min_count):
    return count > min_count and count * active > factor * total


@njit(cache=True, nogil=True)
def _filter(t, x, y, keep, width, height, surface, counts, hot, state, ba_us, learn_us, factor, min_count, tolerance):
    """Write ``keep`` for the events (t, x, y) in stream order, updating the carried arrays and ``state``.

    The arrays are (height + 2) x (width + 2) with a border no event reaches, so the 8 neighbours need no
    bounds checks. The scalar state lives in locals during the loop (stores into an array on every event
    cost 3x here) and goes back into ``state`` at the end.
    """
    use_hot = learn_us > 0
    use_ba = ba_us > 0
    stride = width + 2
    running_max, learn_start, learning = state[_RUNNING_MAX], state[_LEARN_START], state[_LEARNING]
    total, active, n_hot, base = state[_TOTAL], state[_ACTIVE], state[_HOT_PIXELS], state[_BASE]
    ba_removed, hot_removed, resets = state[_BA_REMOVED], state[_HOT_REMOVED], state[_RESETS]
    for i in range(t.shape[0]):
        ti = t[i]
        if running_max != _NO_TIME and ti < running_max - tolerance:  # a restart: start afresh
            _clear(surface, counts, hot)
            running_max, learn_start, learning = _NO_TIME, _NO_TIME, 1 if use_hot else 0
            total, active, n_hot = 0, 0, 0
            resets += 1
        if running_max == _NO_TIME:
            base = ti
        if ti > running_max:
            running_max = ti
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        if xi >= width or yi >= height:
            keep[i] = True  # not addressable here: left to the stages that check coordinates
            continue
        c = (yi + 1) * stride + xi + 1
        if use_hot:
            if learning == 1:
                if learn_start == _NO_TIME:
                    learn_start = ti
                if ti - learn_start >= learn_us:  # learning time over: freeze the mask
                    n_hot = 0
                    for j in range(counts.shape[0]):
                        h = _is_hot(np.int64(counts[j]), total, active, factor, min_count)
                        hot[j] = h
                        n_hot += h
                    learning = 0
            if learning == 1:
                count = np.int64(counts[c]) + 1
                if count <= _MAX_COUNT:
                    counts[c] = count
                total += 1
                if count == 1:
                    active += 1
                if _is_hot(count, total, active, factor, min_count):
                    if not hot[c]:
                        hot[c] = True
                        n_hot += 1
                    keep[i] = False
                    hot_removed += 1
                    continue
            elif hot[c]:
                keep[i] = False
                hot_removed += 1
                continue
        if use_ba:
            rel = ti - base
            if rel >= _REBASE or rel < -_REBASE:
                _rebase(surface, rel)
                base = ti
                rel = 0
            up, down = c - stride, c + stride
            latest = max(surface[up - 1], surface[up], surface[up + 1], surface[c - 1], surface[c + 1],
                         surface[down - 1], surface[down], surface[down + 1])
            surface[c] = rel
            if rel - np.int64(latest) >= ba_us:
                keep[i] = False
                ba_removed += 1
                continue
        keep[i] = True
    state[_RUNNING_MAX], state[_LEARN_START], state[_LEARNING] = running_max, learn_start, learning
    state[_TOTAL], state[_ACTIVE], state[_HOT_PIXELS], state[_BASE] = total, active, n_hot, base
    state[_BA_REMOVED], state[_HOT_REMOVED], state[_RESETS] = ba_removed, hot_removed, resets


class NoiseFilter:
    """The configured filters over one stream, state carried between packets (see module doc).

    ``keep(events, size)`` returns the boolean mask of the events that pass;
    ``filter`` returns those events. Deterministic: the same stream gives the
    same mask however it is cut into packets.
    """

    def __init__(self, config: NoiseFilterConfig, reset_tolerance_us: int = 10_000) -> None:
        if reset_tolerance_us < 0:
            raise ValueError(f"reset_tolerance_us must be >= 0, got {reset_tolerance_us}")
        self.config = config
        self.reset_tolerance_us = int(reset_tolerance_us)
        self.stats = NoiseStats()
        self._size: SensorSize | None = None
        self._state = np.zeros(_STATE_LEN, dtype=np.int64)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the stream (time surface, counts, mask): the next event starts a new one."""
        if self._arrays is not None:
            self._start(*self._arrays)
        self.stats.resets += 1

    def _start(self, surface: np.ndarray, counts: np.ndarray, hot: np.ndarray) -> None:
        """Empty arrays and a fresh stream state (the removal counters carry on)."""
        _clear(surface, counts, hot)
        state = self._state
        state[_RUNNING_MAX] = state[_LEARN_START] = _NO_TIME
        state[_LEARNING] = 1 if self.config.hot_pixel_learn_us > 0 else 0
        state[_TOTAL] = state[_ACTIVE] = state[_HOT_PIXELS] = 0

    def _allocate(self, size: SensorSize) -> None:
        cfg, n = self.config, (size.width + 2) * (size.height + 2)  # with a border of one pixel (see _filter)
        # arrays of a filter that is off stay one element long: the kernel never indexes them
        surface = np.empty(n if cfg.background_activity_us else 1, dtype=np.int32)
        counts = np.empty(n if cfg.hot_pixel_learn_us else 1, dtype=np.int32)
        hot = np.empty(counts.shape[0], dtype=np.bool_)
        self._arrays = (surface, counts, hot)
        self._size = size
        self._start(surface, counts, hot)

    @property
    def hot_pixel_mask(self) -> np.ndarray | None:
        """(H, W) bool: the pixels masked now (frozen after learning); None before the first event or when off."""
        if self._arrays is None or self._size is None or not self.config.hot_pixel_learn_us:
            return None
        return self._arrays[2].reshape(self._size.height + 2, self._size.width + 2)[1:-1, 1:-1].copy()

    def keep(self, events: np.ndarray, size: SensorSize) -> np.ndarray:
        """The bool mask of ``events`` (EVENT_DTYPE, stream order) that pass; state carries to the next call."""
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise ValueError("NoiseFilter.keep expects a 1-D EVENT_DTYPE array")
        n = events.shape[0]
        if not self.config.enabled or n == 0:
            self.stats.events += n
            return np.ones(n, dtype=np.bool_)
        if size != self._size:
            if self._size is not None:
                self.stats.resets += 1
            self._allocate(size)
        assert self._arrays is not None  # allocated for this size above
        before = self._state.copy()
        keep = np.empty(n, dtype=np.bool_)
        cfg = self.config
        _filter(events["t"], events["x"], events["y"], keep, size.width, size.height, *self._arrays, self._state,
                cfg.background_activity_us, cfg.hot_pixel_learn_us, cfg.hot_pixel_factor, cfg.hot_pixel_min_count,
                self.reset_tolerance_us)
        state, stats = self._state, self.stats
        stats.events += n
        stats.background_removed += int(state[_BA_REMOVED] - before[_BA_REMOVED])
        stats.hot_pixel_removed += int(state[_HOT_REMOVED] - before[_HOT_REMOVED])
        stats.resets += int(state[_RESETS] - before[_RESETS])
        stats.hot_pixels = int(state[_HOT_PIXELS])
        return keep

    def filter(self, events: np.ndarray, size: SensorSize) -> np.ndarray:
        """The events that pass (a copy; the input itself when no filter is configured)."""
        if not self.config.enabled:
            self.stats.events += events.shape[0]
            return events
        return events[self.keep(events, size)]

    def counters(self) -> dict[str, int]:
        """Counters with names that say they are the noise filter's (for diagnostics)."""
        stats = self.stats
        return {
            "noise_events_in": stats.events,
            "noise_hot_pixel_removed": stats.hot_pixel_removed,
            "noise_background_removed": stats.background_removed,
            "noise_hot_pixels": stats.hot_pixels,
        }
