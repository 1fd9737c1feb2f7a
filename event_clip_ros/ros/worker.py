"""The inference worker thread: takes batches from an :class:`~event_clip_ros.apps.inference_queue.InferenceQueue`.

The producers (subscription callbacks) put completed windows into the queue;
the worker handles whatever waits whenever it is free, one batch at a time
(which windows wait, and which are stale and dropped, is the queue's business).
A batch whose handler raises is counted and logged; the worker goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..apps.inference_queue import InferenceQueue, QueuedWindow
from .background import BackgroundThread

log = logging.getLogger("event_clip_ros.ros.worker")


class BatchWorker(BackgroundThread):
    """Runs ``handle(batch)`` on its own thread for each batch :meth:`InferenceQueue.take` returns;
    ``errors`` counts the batches whose handler raised (logged, the worker goes on)."""

    def __init__(self, queue: InferenceQueue, handle: Callable[[list[QueuedWindow]], None],
                 name: str = "detector-worker") -> None:
        super().__init__(name)
        self.queue = queue
        self._handle = handle
        self.handled = 0  #: batches handled (including those whose handler raised)

    def stop(self, timeout_s: float = 10.0, drain: bool = False) -> None:
        """Close the queue, finish the batch in hand (``drain``: and every window still waiting), end the thread.

        Without ``drain`` the waiting windows are dropped (counted by the queue).
        """
        self.queue.close(drain=drain)
        self._join(timeout_s)

    def _run(self) -> None:
        while (batch := self.queue.take()) is not None:
            try:
                self._handle(batch)
            except Exception as exc:  # a failing batch must not end the worker
                self._count_error(exc)
                log.exception("%s: handling a batch of %d windows failed", self._name, len(batch))
            finally:
                self.handled += 1
