"""Windows of one or more cameras waiting for the one inference worker, batched across cameras (ROS-free).

The node's input thread :meth:`~InferenceQueue.put`\\ s the windows each
message completes; the worker thread :meth:`~InferenceQueue.take`\\ s what is
waiting whenever it is free (oldest first, at most ``max_batch`` windows, any
mix of cameras) and :func:`infer_batch` runs them through the encoder in one
forward pass, then each camera's classifier or scorer. So the windows a driver
burst completes together, or several cameras at once, are inferred together
instead of only the newest of them.

Stale windows
    A waiting window is *stale*, and dropped (counted for its camera), as soon as

    * its camera has completed a window that ends more than ``max_age_us`` of
      sensor time after it (``dropped_old_windows``): a burst that completes
      windows spanning less than that loses none of them; a worker slower than
      the input keeps each camera's backlog within ``max_age_us`` of its newest
      window. ``max_age_us = 0`` keeps only each camera's newest window (the
      latest-only hand-off);
    * its camera already has ``max_windows`` newer windows waiting
      (``dropped_overflow_windows``): the memory bound, for windows shorter than
      ``max_age_us / max_windows`` (event-count windows, short durations).

    "Newest" is the camera's last completed window in arrival order, so after a
    stream restart (sensor time going back) the earlier stream's windows are not
    aged against the new one (only the memory bound applies to them). Nothing else
    drops a window: a window that is not stale is inferred once the worker gets to
    it. Windows still waiting when the worker stops without draining count as
    ``dropped_stopped_windows``; ``dropped_windows`` is the sum of the three.

Times (monotonic clock, ns)
    A window's *arrival* is when the message that completed it (the last packet
    the window needed) arrived, as the transport stamped it, not when the node
    got to decode it: a burst queues messages before the node decodes them. From it:
    ``wait`` (arrival to the start of its batch's inference: queueing in the
    transport, the decoder and here), ``inference`` (one batch: frames, encoder,
    heads) and ``latency`` (arrival to its result being handed to the publisher,
    :meth:`InferenceQueue.published`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .detector import DetectionResult, Detector
from .detector_stats import LatencyTracker
from .event_input import PendingWindow

#: Batch sizes remembered for the percentiles in diagnostics.
_RECENT = 1000


@dataclass(frozen=True)
class QueueConfig:
    """How many windows one forward pass takes and when a waiting window is stale (see module doc)."""

    max_batch: int = 8  #: windows per forward pass (all cameras together)
    max_age_us: int = 500_000  #: sensor time behind its camera's newest window after which a window is stale
    max_windows: int = 32  #: waiting windows per camera (the oldest beyond are stale)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.max_age_us, bool) or not isinstance(self.max_age_us, int) or self.max_age_us < 0:
            raise ValueError(f"max_age_us must be an integer >= 0, got {self.max_age_us!r}")


@dataclass(frozen=True)
class QueuedWindow:
    """A completed window of one camera (index into the node's inputs) and when its last message arrived."""

    camera: int
    window: PendingWindow
    arrival_ns: int  #: time.monotonic_ns() of the arrival of the message that completed the window


@dataclass
class CameraCounters:
    """What happened to one camera's windows in the queue (cumulative)."""

    queued_windows: int = 0  #: windows put
    dropped_old_windows: int = 0  #: stale by age (max_age_us behind the camera's newest)
    dropped_overflow_windows: int = 0  #: stale by the queue bound (max_windows newer ones waiting)
    dropped_stopped_windows: int = 0  #: waiting when the worker stopped without draining

    @property
    def dropped_windows(self) -> int:
        return self.dropped_old_windows + self.dropped_overflow_windows + self.dropped_stopped_windows

    def as_dict(self) -> dict[str, int]:
        return {"queued_windows": self.queued_windows, "dropped_windows": self.dropped_windows,
                "dropped_old_windows": self.dropped_old_windows,
                "dropped_overflow_windows": self.dropped_overflow_windows,
                "dropped_stopped_windows": self.dropped_stopped_windows}


def _add(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    for key, value in part.items():
        total[key] = total.get(key, 0) + value
    return total


class InferenceQueue:
    """The windows of ``cameras`` cameras waiting for inference, stale ones dropped (thread-safe; see module doc)."""

    def __init__(self, config: QueueConfig = QueueConfig(), cameras: int = 1) -> None:
        if cameras < 1:
            raise ValueError(f"cameras must be >= 1, got {cameras}")
        self.config = config
        self._items: deque[QueuedWindow] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._drain = False
        self._newest_end_us: list[int | None] = [None] * cameras
        self._waiting = [0] * cameras
        self._counters = [CameraCounters() for _ in range(cameras)]
        self.depth_max = 0  #: most windows ever waiting at once
        self.batches = 0  #: batches taken
        self._batch_sizes: deque[int] = deque(maxlen=_RECENT)
        self.wait = LatencyTracker()  #: arrival -> start of the batch's inference, s
        self.inference = LatencyTracker()  #: one batch's inference, s (see infer_batch)
        self.latency = LatencyTracker()  #: arrival -> result published, s (all cameras)
        self.camera_latency = [LatencyTracker() for _ in range(cameras)]

    @property
    def cameras(self) -> int:
        return len(self._counters)

    @property
    def depth(self) -> int:
        """Windows waiting now."""
        return len(self._items)

    # ------------------------------------------------------------------ producer side
    def put(self, camera: int, windows: Iterable[PendingWindow], arrival_ns: int | None = None) -> None:
        """Queue the windows one message of ``camera`` completed (in completion order); drop what is stale now.

        ``arrival_ns``: time.monotonic_ns() of the message's arrival (default: now).
        After :meth:`close` windows are dropped (counted as stopped).
        """
        windows = list(windows)
        if not windows:
            return
        arrival_ns = time.monotonic_ns() if arrival_ns is None else arrival_ns
        counters = self._counters[camera]
        with self._cond:
            counters.queued_windows += len(windows)
            if self._closed:
                counters.dropped_stopped_windows += len(windows)
                return
            self._items.extend(QueuedWindow(camera, w, arrival_ns) for w in windows)
            self._waiting[camera] += len(windows)
            self._newest_end_us[camera] = windows[-1].window.t_end_us
            self._drop_stale(camera)
            self.depth_max = max(self.depth_max, len(self._items))
            self._cond.notify()

    def _drop_stale(self, camera: int) -> None:
        """Remove ``camera``'s stale windows (lock held): too old for its newest, then beyond the bound."""
        newest, max_age = self._newest_end_us[camera], self.config.max_age_us
        assert newest is not None  # set by the push that calls this
        excess = self._waiting[camera] - self.config.max_windows
        counters = self._counters[camera]
        old = 0

        def keep(item: QueuedWindow) -> bool:
            nonlocal excess, old
            if item.camera != camera:
                return True
            if newest - item.window.window.t_end_us > max_age:
                old += 1
                excess -= 1
                return False
            if excess > 0:  # the oldest of the camera beyond max_windows
                excess -= 1
                counters.dropped_overflow_windows += 1
                return False
            return True

        kept = [item for item in self._items if keep(item)]
        if len(kept) != len(self._items):
            counters.dropped_old_windows += old
            self._waiting[camera] -= len(self._items) - len(kept)
            self._items = deque(kept)

    # ------------------------------------------------------------------ worker side
    def take(self, timeout_s: float | None = None) -> list[QueuedWindow] | None:
        """Block until windows wait, then the oldest ``max_batch`` of them (any cameras).

        None: the queue was closed (and, when closed with ``drain``, is empty), or
        ``timeout_s`` passed with nothing waiting.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout_s):
                return None
            if not self._items or (self._closed and not self._drain):
                return None
            n = min(self.config.max_batch, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            for item in batch:
                self._waiting[item.camera] -= 1
            self.batches += 1
            self._batch_sizes.append(n)
        now = time.monotonic_ns()
        for item in batch:
            self.wait.add((now - item.arrival_ns) * 1e-9)
        return batch

    def published(self, item: QueuedWindow, now_ns: int | None = None) -> None:
        """Record that ``item``'s result went out (its latency from arrival)."""
        seconds = ((time.monotonic_ns() if now_ns is None else now_ns) - item.arrival_ns) * 1e-9
        self.latency.add(seconds)
        self.camera_latency[item.camera].add(seconds)

    def close(self, drain: bool = False) -> None:
        """No more windows: :meth:`take` returns what waits (``drain``) or None at once (the waiting
        windows dropped, counted as stopped); later puts are dropped."""
        with self._cond:
            self._closed, self._drain = True, drain
            if not drain:
                for item in self._items:
                    self._counters[item.camera].dropped_stopped_windows += 1
                self._items.clear()
                self._waiting = [0] * self.cameras
            self._cond.notify_all()

    # ------------------------------------------------------------------ diagnostics
    def counters(self, camera: int | None = None) -> dict[str, int]:
        """Cumulative window counters of one camera, or summed over all (``camera`` None)."""
        with self._cond:
            if camera is not None:
                return self._counters[camera].as_dict()
            total: dict[str, int] = {}
            for counters in self._counters:
                _add(total, counters.as_dict())
            return total

    def batch_sizes(self) -> dict[str, float]:
        """``{"p50": ..., "max": ...}`` of the recent batches' sizes (windows); empty before the first."""
        with self._cond:
            sizes = np.fromiter(self._batch_sizes, dtype=np.float64)
        if sizes.size == 0:
            return {}
        return {"p50": float(np.percentile(sizes, 50)), "max": float(sizes.max())}

    def values(self) -> dict[str, float | int]:
        """The queue's part of /diagnostics: depth, batches, wait and inference times, latency."""
        out: dict[str, float | int] = {"queue_depth": self.depth, "queue_depth_max": self.depth_max,
                                       "batches": self.batches}
        out.update({f"batch_size_{k}": v for k, v in self.batch_sizes().items()})
        for name, tracker in (("wait", self.wait), ("inference", self.inference), ("latency", self.latency)):
            out.update({f"{name}_ms_{k}": v for k, v in tracker.percentiles_ms().items()})
        return out


def infer_batch(detectors: Sequence[Detector], batch: Sequence[QueuedWindow],
                queue: InferenceQueue | None = None) -> list[tuple[QueuedWindow, DetectionResult]]:
    """Results of a batch of windows of several cameras: one encoder forward pass for all of them, then
    each camera's classifier or scorer (``detectors[camera]``; they must share one model).

    Windows whose embedding is not finite get no result (counted by their camera's detector).
    ``queue``: records the batch's inference time in its ``inference`` tracker.
    """
    if not batch:
        return []
    start = time.monotonic_ns()
    embeddings = detectors[batch[0].camera].embed([item.window for item in batch])
    rows_by_camera: dict[int, list[int]] = {}
    for row, item in enumerate(batch):
        rows_by_camera.setdefault(item.camera, []).append(row)
    paired: dict[int, DetectionResult] = {}
    for camera, rows in rows_by_camera.items():
        results = iter(detectors[camera].infer([batch[r].window for r in rows], embeddings[rows]))
        result = next(results, None)
        for row in rows:  # results come for the finite windows only, in order
            window = batch[row].window
            if result is not None and (result.index, result.stamp_ns) == (window.window.index, window.stamp_ns):
                paired[row] = result
                result = next(results, None)
    if queue is not None:
        queue.inference.add((time.monotonic_ns() - start) * 1e-9)
    return [(batch[row], paired[row]) for row in sorted(paired)]
