"""A worker thread with a latest-only hand-off: latency never builds up behind a slow consumer.

The producer (the subscription callback) ``submit``s items; the worker handles
the newest one whenever it is free. An item still waiting when a newer one
arrives is dropped and counted, so at most one item waits and memory stays
bounded whatever the input rate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("event_clip_ros.ros.worker")


class LatestOnlyWorker(Generic[T]):
    """Runs ``handle(item)`` on its own thread for the latest submitted item."""

    def __init__(self, handle: Callable[[T], None], name: str = "detector-worker") -> None:
        self._handle = handle
        self._name = name
        self._cond = threading.Condition()
        self._item: T | None = None
        self._stopping = False
        self._drain = False
        self._thread: threading.Thread | None = None
        self.submitted = 0  #: items offered
        self.handled = 0  #: items handled (including those whose handler raised)
        self.dropped = 0  #: items replaced by a newer one before the worker took them
        self.errors = 0  #: items whose handler raised (logged, the worker goes on)
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        """Offer ``item``; a waiting older item is dropped (counted)."""
        with self._cond:
            self.submitted += 1
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def stop(self, timeout_s: float = 10.0, drain: bool = False) -> None:
        """Finish the item being handled and end the thread.

        The waiting item is dropped (counted), or with ``drain`` handled first (a clean
        shutdown publishes the last results).
        """
        with self._cond:
            self._stopping = True
            self._drain = drain
            if self._item is not None and not drain:
                self.dropped += 1
                self._item = None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("%s did not stop within %.1f s", self._name, timeout_s)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._item is None and not self._stopping:
                    self._cond.wait()
                if self._stopping and not (self._drain and self._item is not None):
                    return
                item, self._item = self._item, None
            assert item is not None  # the wait ends with an item unless stopping
            try:
                self._handle(item)
            except Exception as exc:  # a failing window must not end the worker
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: handling an item failed", self._name)
            finally:
                self.handled += 1
