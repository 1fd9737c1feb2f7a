"""Cut an event stream into windows on sensor time or event count.

A :class:`Windower` is fed the stream chunk by chunk (``push``) and returns the
windows each chunk completes; ``flush`` ends the stream. The windows, their
boundaries and their contents never depend on how the stream was cut into
chunks, so a file read in 1M-event chunks and a live topic delivering small
packets give the same windows.

Duration windows (``duration_us``)
    Window ``k`` is the half-open interval ``[t0 + k*hop, t0 + k*hop + D)``,
    anchored at the first event's time ``t0`` (``hop = D``: tumbling windows;
    ``hop < D``: sliding, overlapping windows; ``hop > D``: sampled windows,
    events between them belong to none). A window is complete once an event with
    ``t >= end`` has arrived; ``flush`` emits the windows still open at the end
    of the stream (nominal boundaries, holding the events that arrived).
    Windows with fewer than ``min_events`` events, gaps without events
    included, are skipped and counted (a long gap is jumped over, not walked
    window by window).

Count windows (``event_count``)
    Consecutive, non-overlapping groups of ``N`` events, with
    ``t_start_us = first t`` and ``t_end_us = last t + 1``; the final partial
    group is emitted by ``flush`` only if it holds at least ``min_events``.

Time going backwards
    Sensor time must not decrease. An event more than ``reset_tolerance_us``
    before the running maximum time is a stream restart (camera or driver
    restart, a looping bag): the open windows are closed as by ``flush`` and
    windowing starts again anchored at that event (``stats.time_resets``). A
    smaller backward step is jitter: the event's time is clamped to the running
    maximum (in a copy; ``stats.clamped_events``). The default tolerance, 10 ms,
    is above packet-merge jitter and below any real restart. A lone event far in
    the future (a bit error the decoder did not catch) raises the running
    maximum, so the normal events after it restart the stream.

Memory
    Pushed events are stored once in a contiguous buffer (a decoder can write
    into it directly through :meth:`Windower.reserve`: push what it returned
    before pushing anything else); emitted ``Window.events`` are read-only views
    of it, since overlapping sliding windows share events. Only events a future
    window can still contain are kept. ``max_events`` caps a duration window:
    it keeps the *latest* ``max_events`` of its events (the most recent motion),
    so the buffer never holds more than about ``2 * max_events`` events.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import SupportsIndex, cast

import numpy as np
from numba import njit

from .noise import NoiseFilter
from .types import EVENT_DTYPE, Counters, SensorSize

_NO_TIME = np.iinfo(np.int64).min  # running max before the first event of a stream

#: Longest window (duration or hop) on sensor time: one hour; a longer one is a unit mistake, not a window.
MAX_WINDOW_US = 3_600_000_000
#: Most events a window may be asked to hold (event_count, min_events, max_events): 1.6 GB of events.
MAX_WINDOW_EVENTS = 100_000_000
#: Upper bound of each integer field (None: unbounded).
_FIELD_MAX = {"duration_us": MAX_WINDOW_US, "hop_us": MAX_WINDOW_US, "event_count": MAX_WINDOW_EVENTS,
              "min_events": MAX_WINDOW_EVENTS, "max_events": MAX_WINDOW_EVENTS, "reset_tolerance_us": None}


def _checked_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """``value`` as a Python int in [``minimum``, ``maximum``] (numpy integers accepted; floats and bools not)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(cast(SupportsIndex, value))  # TypeError when it is not an integer
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {number}")
    return number


def _ms_to_us(name: str, value_ms: float) -> int:
    """A duration in ms as whole microseconds; ValueError for NaN, infinity or anything not a number."""
    try:
        finite = math.isfinite(value_ms)
    except TypeError:
        finite = False
    if not finite:
        raise ValueError(f"{name} must be a finite number of milliseconds, got {value_ms!r}")
    return round(value_ms * 1000)


@dataclass(frozen=True)
class WindowConfig:
    """How to cut a stream into windows; exactly one of ``duration_us`` / ``event_count``.

    Use :meth:`by_duration_ms` or :meth:`by_count` for the common cases. Durations are whole
    microseconds up to :data:`MAX_WINDOW_US` (one hour), event numbers at most
    :data:`MAX_WINDOW_EVENTS`; anything else (NaN, infinity, 1e300 ms, 0) is a ValueError.
    """

    duration_us: int | None = None  #: window length in microseconds
    event_count: int | None = None  #: events per window (count windows)
    hop_us: int | None = None  #: start-to-start distance of duration windows; None = duration_us (tumbling)
    min_events: int = 1  #: windows with fewer events are skipped and counted
    max_events: int | None = None  #: duration windows keep only their latest max_events events
    reset_tolerance_us: int = 10_000  #: a larger backward time step is a stream restart

    def __post_init__(self) -> None:
        if (self.duration_us is None) == (self.event_count is None):
            raise ValueError("set exactly one of duration_us and event_count")
        for name, maximum in _FIELD_MAX.items():
            value = getattr(self, name)
            if value is not None:
                minimum = 0 if name == "reset_tolerance_us" else 1
                object.__setattr__(self, name, _checked_int(name, value, minimum, maximum))
        if self.event_count is not None:
            if self.hop_us is not None or self.max_events is not None:
                raise ValueError("hop_us and max_events apply to duration windows only")
            if self.min_events > self.event_count:
                raise ValueError(f"min_events ({self.min_events}) exceeds event_count ({self.event_count})")
        elif self.max_events is not None and self.max_events < self.min_events:
            raise ValueError(f"max_events ({self.max_events}) is below min_events ({self.min_events})")

    @classmethod
    def by_duration_ms(cls, duration_ms: float, hop_ms: float | None = None, **kwargs) -> "WindowConfig":
        """Duration windows given in milliseconds (rounded to whole microseconds)."""
        hop_us = None if hop_ms is None else _ms_to_us("hop_ms", hop_ms)
        return cls(duration_us=_ms_to_us("duration_ms", duration_ms), hop_us=hop_us, **kwargs)

    @classmethod
    def by_count(cls, event_count: int, **kwargs) -> "WindowConfig":
        """Windows of ``event_count`` consecutive events."""
        return cls(event_count=event_count, **kwargs)

    @property
    def step_us(self) -> int:
        """Start-to-start distance of duration windows (``hop_us`` or ``duration_us``)."""
        if self.duration_us is None:
            raise ValueError("count windows have no time step")
        return self.hop_us if self.hop_us is not None else self.duration_us


@dataclass
class Window:
    """The events of one window; time interval half-open ``[t_start_us, t_end_us)``."""

    index: int  #: 0, 1, 2, ... in emission order over the windower's life
    t_start_us: int
    t_end_us: int
    events: np.ndarray  #: EVENT_DTYPE, time-ordered, read-only (may share memory with other windows)


@dataclass
class WindowStats(Counters):
    """Counters of a :class:`Windower`; anomalies are logged once per kind."""

    events: int = 0  #: events pushed
    windows: int = 0  #: windows emitted
    skipped_windows: int = 0  #: windows with fewer than min_events events (empty gaps included)
    capped_windows: int = 0  #: duration windows that held more than max_events events
    time_resets: int = 0  #: times time went back more than reset_tolerance_us (stream restarted)
    clamped_events: int = 0  #: events whose small backward time step was clamped
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)


@njit(cache=True, nogil=True)
def _first_disorder(t, running_max):
    """Index of the first time below the running maximum, or -1 if ``t`` is in order."""
    m = running_max
    for i in range(t.shape[0]):
        if t[i] < m:
            return i
        m = t[i]
    return -1


@njit(cache=True, nogil=True)
def _repair_order(t, running_max, tolerance, resets):
    """Clamp small backward steps in place and list the restart positions.

    Returns (number of restarts written to ``resets``, number of clamped times).
    """
    m = running_max
    n_resets = 0
    n_clamped = 0
    for i in range(t.shape[0]):
        ti = t[i]
        if ti >= m:
            m = ti
        elif m - ti > tolerance:
            resets[n_resets] = i
            n_resets += 1
            m = ti
        else:
            t[i] = m
            n_clamped += 1
    return n_resets, n_clamped


def _read_only(events: np.ndarray) -> np.ndarray:
    view = events.view()
    view.flags.writeable = False
    return view


@njit(cache=True, nogil=True)
def _data_address(events):
    """Address of the first record of ``events`` (a third of what ``events.ctypes.data`` costs)."""
    return events.ctypes.data


#: Whether a reference count tells that no view of an array is left (not so without the GIL).
_REFCOUNTS_TELL = getattr(sys, "_is_gil_enabled", lambda: True)()


class _EventBuffer:
    """Contiguous, growable event buffer whose handed-out views stay valid.

    Windows are views of this buffer, so pushed events are stored once,
    contiguously. A decoder can write straight into the free tail
    (:meth:`reserve`, passed as the decoder's ``alloc``): pushing that array
    then only commits it, with no copy. Anything else pushed is copied in.
    ``take`` hands out the buffered events and detaches the memory, so emitted
    windows keep their events while new pushes arrive; the next buffer is
    sized from the last one taken, and is one taken before once nothing refers
    to it any more (no window or view of it is left: its reference count says
    so), which saves fresh pages (a page fault each 4 KiB) and finds the memory
    in cache.
    """

    _VOID = np.dtype((np.void, EVENT_DTYPE.itemsize))
    _MIN_CAPACITY = 1 << 14
    #: Arrays handed out by take() kept for reuse (the oldest is let go beyond this).
    _SPARES = 4

    def __init__(self) -> None:
        self._array: np.ndarray | None = None
        self._address = 0  # of self._array's data
        self._n = 0
        self._capacity_hint = self._MIN_CAPACITY
        self._reserved = 0  # length of the tail handed out by reserve() (at self._n)
        self._spares: list[np.ndarray] = []

    def __len__(self) -> int:
        return self._n

    def _ensure(self, capacity: int) -> np.ndarray:
        old = self._array
        if old is None or capacity > old.shape[0]:
            array = self._spare(capacity)
            if array is None:
                array = np.empty(max(capacity, self._capacity_hint, 2 * self._n), dtype=EVENT_DTYPE)
            if old is not None and self._n:
                array.view(self._VOID)[: self._n] = old.view(self._VOID)[: self._n]
            self._array = array
            self._address = _data_address(array)
            return array
        return old

    def _spare(self, capacity: int) -> np.ndarray | None:
        """The largest array taken before that nothing refers to any more, if it holds ``capacity``."""
        spares = self._spares
        best = -1
        for i in range(len(spares)):
            # the list and getrefcount's argument are the only references: no view of it is left
            if sys.getrefcount(spares[i]) == 2 and (best < 0 or spares[i].shape[0] > spares[best].shape[0]):
                best = i
        if best < 0 or spares[best].shape[0] < capacity:
            return None
        return spares.pop(best)

    def reserve(self, n: int) -> np.ndarray:
        """A writable array of ``n`` records at the free tail (for a decoder to fill)."""
        tail = self._ensure(self._n + n)[self._n : self._n + n]
        self._reserved = n
        return tail

    def append(self, events: np.ndarray) -> None:
        need = self._n + events.shape[0]
        array = self._ensure(need)
        reserved, self._reserved = self._reserved, 0
        if (events.base is array and events.shape[0] <= reserved
                and _data_address(events) == self._address + self._n * EVENT_DTYPE.itemsize):
            self._n = need  # written in place through reserve(): commit
            return
        array.view(self._VOID)[self._n : need] = events.view(self._VOID)
        self._n = need

    def take(self) -> np.ndarray:
        """The buffered events (a view); the buffer starts empty, on other memory."""
        if self._array is None:
            return np.empty(0, dtype=EVENT_DTYPE)
        out = self._array[: self._n]
        self._capacity_hint = max(self._MIN_CAPACITY, self._n + self._n // 4)
        if _REFCOUNTS_TELL:
            self._spares.append(self._array)
            del self._spares[: -self._SPARES]
        self._array, self._n, self._reserved = None, 0, 0
        return out


class Windower:
    """Streaming windower: ``push`` chunks, get completed windows, ``flush`` at the end.

    ``push`` is vectorised (window boundaries by ``np.searchsorted`` on ``t``,
    time order checked by a compiled scan); pushed events are stored once in a
    contiguous buffer (:class:`_EventBuffer`) from which windows are views. Pass
    :meth:`reserve` to a decoder (``decoder.decode(payload, alloc=windower.reserve)``)
    and the decoder writes into that buffer directly, saving a copy of every event.
    """

    def __init__(self, config: WindowConfig) -> None:
        self.config = config
        self.stats = WindowStats()
        self._next_index = 0
        self.reset()

    def reset(self) -> None:
        """Drop buffered events; the next push starts a new stream (stats and index continue)."""
        self._buffer = _EventBuffer()
        self._running_max = _NO_TIME
        self._t0: int | None = None  # duration windows: anchor of the window grid
        self._k = 0  # duration windows: first window not yet emitted or skipped
        self._capped_until = _NO_TIME  # duration windows: time of the latest event dropped by max_events

    def reserve(self, n: int) -> np.ndarray:
        """Room for ``n`` events at the end of the buffer; push the filled part to commit it."""
        return self._buffer.reserve(n)

    @property
    def pending_events(self) -> int:
        """Events buffered for windows not yet emitted."""
        return len(self._buffer)

    def push(self, events: np.ndarray, keep: np.ndarray | None = None, ordered: bool = False) -> list[Window]:
        """Add the next chunk of the stream; return the windows it completes.

        ``keep`` (bool, one per event; e.g. a :class:`~event_clip_ros.events.noise.NoiseFilter`'s mask):
        only the kept events go into windows, while every event still sets the stream's time (the
        grid's anchor, completion, restarts), so removing events never moves a window boundary.
        ``ordered``: the caller knows the chunk's times never go back (a decoder's output: its
        time guard keeps it so), which spares a pass over them; the step from the last chunk is
        still checked.
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            raise ValueError("push expects a 1-D EVENT_DTYPE array")
        n = events.shape[0]
        if keep is not None and (keep.dtype != np.bool_ or keep.shape != (n,)):
            raise ValueError("keep must be a bool array with one entry per event")
        if n == 0:
            return []
        self.stats.events += n
        t = events["t"]
        if (t[0] >= self._running_max) if ordered else _first_disorder(t, self._running_max) < 0:
            self._running_max = int(events["t"][-1])
            return self._push_ordered(events, keep)
        return self._push_disordered(events, keep)

    def flush(self) -> list[Window]:
        """End the stream: emit the open windows that hold enough events, then reset."""
        if self.config.event_count is not None:
            out = self._flush_count()
        else:
            out = self._flush_duration()
        self.reset()
        return out

    # -- time order -------------------------------------------------------------------

    def _push_disordered(self, events: np.ndarray, keep: np.ndarray | None) -> list[Window]:
        events = events.copy()
        t = events["t"]
        resets = np.empty(t.shape[0], dtype=np.int64)
        n_resets, n_clamped = _repair_order(t, self._running_max, self.config.reset_tolerance_us, resets)
        if n_clamped:
            self.stats.clamped_events += int(n_clamped)
            self.stats.warn_once("clamped", "windows: event time stepped back; clamped to the latest time")
        bounds = [0, *resets[:n_resets].tolist(), t.shape[0]]
        out: list[Window] = []
        for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            if i > 0:
                self.stats.time_resets += 1
                self.stats.warn_once(
                    "reset",
                    f"windows: time went back more than {self.config.reset_tolerance_us} us; "
                    "closing the open windows and restarting",
                )
                out.extend(self.flush())
            if hi > lo:
                self._running_max = int(t[hi - 1])
                out.extend(self._push_ordered(events[lo:hi], None if keep is None else keep[lo:hi]))
        return out

    def _push_ordered(self, events: np.ndarray, keep: np.ndarray | None = None) -> list[Window]:
        if self.config.event_count is not None:
            return self._push_count(events if keep is None else events[keep])  # count windows: kept events only
        return self._push_duration(events, keep)

    # -- buffer -----------------------------------------------------------------------

    def _append(self, events: np.ndarray) -> None:
        if events.shape[0]:
            self._buffer.append(events)
        cap = self.config.max_events
        if cap is not None and len(self._buffer) > 2 * cap:
            self._keep_latest(cap)

    def _keep_latest(self, n: int) -> None:
        """Drop the oldest buffered events so that ``n`` remain (max_events)."""
        merged = self._buffer.take()
        dropped = merged[: merged.shape[0] - n]
        self._capped_until = max(self._capped_until, int(dropped["t"][-1]))
        self._buffer.append(merged[-n:])

    def _take_buffer(self, events: np.ndarray | None = None) -> np.ndarray:
        """The buffered events followed by ``events``, as one array; the buffer is emptied."""
        if events is not None and events.shape[0]:
            self._buffer.append(events)
        return self._buffer.take()

    def _emit(self, t_start: int, t_end: int, events: np.ndarray) -> Window:
        window = Window(self._next_index, t_start, t_end, _read_only(events))
        self._next_index += 1
        self.stats.windows += 1
        return window

    # -- count windows ----------------------------------------------------------------

    def _push_count(self, events: np.ndarray) -> list[Window]:
        size = self.config.event_count
        assert size is not None  # count windows
        if len(self._buffer) + events.shape[0] < size:
            self._append(events)
            return []
        merged = self._take_buffer(events)
        full = merged.shape[0] // size
        t = merged["t"]
        out = [
            self._emit(int(t[i * size]), int(t[(i + 1) * size - 1]) + 1, merged[i * size : (i + 1) * size])
            for i in range(full)
        ]
        self._append(merged[full * size :])
        return out

    def _flush_count(self) -> list[Window]:
        rest = self._take_buffer()
        if rest.shape[0] == 0:
            return []
        if rest.shape[0] < self.config.min_events:
            self.stats.skipped_windows += 1
            return []
        return [self._emit(int(rest["t"][0]), int(rest["t"][-1]) + 1, rest)]

    # -- duration windows -------------------------------------------------------------

    def _start(self, k: int) -> int:
        assert self._t0 is not None  # set by the first push of duration windows
        return self._t0 + k * self.config.step_us

    def _push_duration(self, events: np.ndarray, keep: np.ndarray | None = None) -> list[Window]:
        if self._t0 is None:
            self._t0 = int(events["t"][0])
            self._k = 0
        duration, step = self.config.duration_us, self.config.step_us
        assert duration is not None  # duration windows
        t_last = int(events["t"][-1])
        if keep is not None:
            events = events[keep]  # the grid and completion above come from every event
        if t_last < self._start(self._k) + duration:  # nothing completes
            self._append(events)
            return []
        merged = self._take_buffer(events)
        last_complete = (t_last - self._t0 - duration) // step
        out = self._emit_duration(merged, last_complete)
        keep_from = int(np.searchsorted(merged["t"], self._start(self._k), side="left"))
        self._append(merged[keep_from:])
        return out

    def _flush_duration(self) -> list[Window]:
        if self._t0 is None or len(self._buffer) == 0:
            return []
        merged = self._take_buffer()
        last_open = (self._running_max - self._t0) // self.config.step_us  # the stream's latest time, kept or not
        return self._emit_duration(merged, last_open)

    def _emit_duration(self, merged: np.ndarray, k_last: int) -> list[Window]:
        """Emit or skip windows ``self._k .. k_last`` from the time-ordered ``merged``.

        Runs of windows without events are jumped over in one step, so the cost
        is per window with events, not per window of the grid.
        """
        cfg = self.config
        duration, step, cap = cfg.duration_us, cfg.step_us, cfg.max_events
        t0 = self._t0
        assert duration is not None and t0 is not None  # duration windows, after the first push
        t = merged["t"]
        out: list[Window] = []
        k = self._k
        while k <= k_last:
            start = self._start(k)
            lo = int(np.searchsorted(t, start, side="left"))
            if lo == t.shape[0]:
                self.stats.skipped_windows += k_last - k + 1
                k = k_last + 1
                break
            first_with_event = (int(t[lo]) - t0 - duration) // step + 1
            if first_with_event > k:  # empty windows up to the first one holding t[lo]
                jump_to = min(first_with_event, k_last + 1)
                self.stats.skipped_windows += jump_to - k
                k = jump_to
                continue
            hi = int(np.searchsorted(t, start + duration, side="left"))
            if hi - lo < cfg.min_events:
                self.stats.skipped_windows += 1
            else:
                if cap is not None and (hi - lo > cap or self._capped_until >= start):
                    self.stats.capped_windows += 1
                    lo = max(lo, hi - cap)
                out.append(self._emit(start, start + duration, merged[lo:hi]))
            k += 1
        self._k = k
        return out


def iter_windows(
    chunks: Iterable[np.ndarray], config: WindowConfig, noise: NoiseFilter | None = None, size: SensorSize | None = None
) -> Iterator[Window]:
    """Window a whole recording given as time-ordered chunks (push each, then flush).

    ``noise`` (with the recording's ``size``): a noise filter run on each chunk before windowing; the
    windows keep the boundaries of the unfiltered stream (see :meth:`Windower.push`).
    """
    if noise is not None and size is None:
        raise ValueError("iter_windows: a noise filter needs the sensor size")
    windower = Windower(config)
    for chunk in chunks:
        mask = noise.keep(chunk, size) if noise is not None and size is not None and chunk.shape[0] else None
        yield from windower.push(chunk, mask)
    yield from windower.flush()
