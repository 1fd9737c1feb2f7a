"""The detector's input thread: takes every message of its input subscriptions off the executor.

Why: rclpy's executor rebuilds its wait set from every entity of the node (parameter
and lifecycle services, timers, the publishers' QoS events) for each message it hands
to a callback. Measured on the 2-core box with 1 ms packets, that costs a bare
subscriber about 190 us of Python per message, more than decoding a 1 ms packet at
20 Mev/s; and on a busy machine every such cost makes Fast DDS's receive thread wait
for a core, which is when a best-effort shared-memory link loses packets
(``bench/bench_input.py``, README "Input rate: what to tune").

:class:`InputLoop` instead waits on the input subscriptions only (and a guard
condition that stops it), and each time it wakes takes every message ready, round
robin over the subscriptions (so per subscription in arrival order, and one busy
camera cannot starve another), calling ``handle(index, raw, info)`` for each on its
own thread; the work in ``handle`` (decoding, windowing) releases the GIL in its
numba and Rust kernels, so the executor's timers and services and the inference
worker run beside it. Create the subscriptions with ``callback_group=UNEXECUTED``
(:func:`unexecuted_group`), so that no executor takes their messages too.

Queueing: each subscription's DDS history (keep last ``depth``) is the queue. A
message it drops when full leaves a gap in the sequence numbers, which the decoder
counts as ``lost_packets`` (in /diagnostics): never silent.

Errors: an exception escaping ``handle`` is counted (:attr:`InputLoop.errors`),
logged (the first, then every 1000th), and the loop goes on. :meth:`InputLoop.stop` wakes the thread, lets it
finish the message in hand and joins it; messages still in the histories are left
there (the caller destroys the subscriptions next).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.context import Context
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.subscription import MessageInfo, Subscription

from .background import BackgroundThread

log = logging.getLogger("event_clip_ros.ros.input_loop")

#: ``handle(index of the subscription, serialised message, rmw message info)``
Handler = Callable[[int, bytes, MessageInfo], None]
#: Longest wait before the thread looks at its stop flag and the context again, ns.
_WAIT_NS = 200_000_000


class _Unexecuted(CallbackGroup):
    """A callback group no executor runs: its entities are left out of every executor's wait set."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


def unexecuted_group() -> CallbackGroup:
    """A callback group for subscriptions an :class:`InputLoop` takes from (executors leave them alone)."""
    return _Unexecuted()


class InputLoop(BackgroundThread):
    """A thread taking the messages of ``subscriptions`` (raw ones) as they come and handing each to ``handle``;
    ``errors`` counts the messages whose ``handle`` raised (logged, the loop goes on)."""

    def __init__(self, subscriptions: Sequence[Subscription], handle: Handler, context: Context,
                 name: str = "detector-input") -> None:
        if not subscriptions:
            raise ValueError("InputLoop needs at least one subscription")
        super().__init__(name)
        self.subscriptions = list(subscriptions)
        self._handle = handle
        self._context = context
        self._stop = threading.Event()
        self._wake = GuardCondition(None, None, context=context)
        self.taken = [0] * len(self.subscriptions)  #: messages taken, per subscription
        self.wakeups = 0  #: waits that ended with something ready (messages per wakeup = sum(taken) / wakeups)

    def _prepare_start(self) -> None:
        self._stop.clear()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Wake the thread, let it finish the message in hand, join it; then release the guard condition."""
        self._stop.set()
        try:
            self._wake.trigger()
        except Exception as exc:  # the context is gone: the thread's wait fails and it ends by itself
            log.debug("%s: waking the input thread: %s", self._name, exc)
        if not self._join(timeout_s):
            return  # it still uses the guard condition
        try:
            self._wake.destroy()
        except Exception as exc:
            log.debug("%s: destroying its guard condition: %s", self._name, exc)

    def _run(self) -> None:
        assert self._context.handle is not None
        wait_set = _rclpy.WaitSet(len(self.subscriptions), 1, 0, 0, 0, 0, self._context.handle)
        try:
            while not self._stop.is_set() and self._context.ok():
                wait_set.clear_entities()
                for sub in self.subscriptions:
                    wait_set.add_subscription(sub.handle)
                wait_set.add_guard_condition(self._wake.handle)
                wait_set.wait(_WAIT_NS)
                if self._drain():
                    self.wakeups += 1
        except Exception as exc:  # the context shut down under the wait, a handle destroyed: nothing more to take
            if not self._stop.is_set() and self._context.ok():
                log.error("%s ended: %s: %s", self._name, type(exc).__name__, exc)

    def _drain(self) -> bool:
        """Take and handle every message ready, one per subscription per round; whether any was."""
        took_any = False
        took = True
        while took and not self._stop.is_set():
            took = False
            for index, sub in enumerate(self.subscriptions):
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, True)
                if taken is None:
                    continue
                took = took_any = True
                self.taken[index] += 1
                raw, info = taken
                try:
                    self._handle(index, raw, info)
                except Exception as exc:  # a bug in the handler must not end the input
                    if self._count_error(exc) % 1000 == 1:  # the first, then every 1000th
                        log.exception("%s: handling a message of %s failed (%d so far)", self._name,
                                      sub.topic_name, self.errors)
        return took_any
