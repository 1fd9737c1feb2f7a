"""One background thread owned by a node part: start, running, join on stop, errors counted.

The detector node's input thread (:class:`~event_clip_ros.ros.input_loop.InputLoop`) and its
inference worker (:class:`~event_clip_ros.ros.worker.BatchWorker`) share these mechanics; each
implements ``_run`` and its own ``stop`` (how to wake its thread), which ends with :meth:`_join`.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("event_clip_ros.ros.background")


class BackgroundThread:
    """A daemon thread running ``self._run``; counts the errors its work reports through :meth:`_count_error`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self.errors = 0  #: units of work that raised (logged; the thread goes on)
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (nothing when it runs already)."""
        if self.running:
            return
        self._prepare_start()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _prepare_start(self) -> None:
        """Reset what a restart needs reset, before the thread starts (nothing by default)."""

    def _run(self) -> None:
        raise NotImplementedError

    def _join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; False (logged) when it is still running after ``timeout_s``."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("%s did not stop within %.1f s", self._name, timeout_s)
            return False
        self._thread = None
        return True

    def _count_error(self, exc: Exception) -> int:
        """Record a failed unit of work; returns how many have failed."""
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        return self.errors
