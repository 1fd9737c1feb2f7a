"""The inference worker thread: takes batches from an :class:`~event_clip_ros.apps.inference_queue.InferenceQueue`.

The producers (subscription callbacks) put completed windows into the queue;
the worker handles whatever waits whenever it is free, one batch at a time
(which windows wait, and which are stale and dropped, is the queue's business).
A batch whose handler raises is counted and logged; the worker goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..apps.inference_queue import InferenceQueue, QueuedWindow

log = logging.getLogger("event_clip_ros.ros.worker")


class BatchWorker:
    """Runs ``handle(batch)`` on its own thread for each batch :meth:`InferenceQueue.take` returns."""

    def __init__(self, queue: InferenceQueue, handle: Callable[[list[QueuedWindow]], None],
                 name: str = "detector-worker") -> None:
        self.queue = queue
        self._handle = handle
        self._name = name
        self._thread: threading.Thread | None = None
        self.handled = 0  #: batches handled (including those whose handler raised)
        self.errors = 0  #: batches whose handler raised (logged, the worker goes on)
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0, drain: bool = False) -> None:
        """Close the queue, finish the batch in hand (``drain``: and every window still waiting), end the thread.

        Without ``drain`` the waiting windows are dropped (counted by the queue).
        """
        self.queue.close(drain=drain)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("%s did not stop within %.1f s", self._name, timeout_s)
            self._thread = None

    def _run(self) -> None:
        while (batch := self.queue.take()) is not None:
            try:
                self._handle(batch)
            except Exception as exc:  # a failing batch must not end the worker
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: handling a batch of %d windows failed", self._name, len(batch))
            finally:
                self.handled += 1
