"""An rclpy context with one node and an executor, for the tools that talk to ROS from a plain process
(``event-clip replay``, ``record``, ``evaluate --live`` and the demo)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

NS_PER_S = 1_000_000_000


class ReplayError(RuntimeError):
    """The node could not be reached or exited; the message says which."""


#: the signals that stop a session's tool (raised as KeyboardInterrupt in the main thread)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


class RosSession:
    """An rclpy context with one node and an executor: nothing global, so several can live in one process.

    Created on the main thread, it makes SIGINT and SIGTERM raise KeyboardInterrupt there until it is
    closed (the handlers before it are put back then), which the tools catch to stop cleanly: SIGTERM
    too, and SIGINT also when the process inherited it ignored, as every background job of a
    non-interactive shell does (CI, nohup); a looping replay could not be stopped but by SIGKILL then.
    rclpy's own handler (installed by ``rclpy.init``) runs first and wakes the executor's wait.
    """

    def __init__(self, name: str) -> None:
        self._handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._handlers[signum] = signal.signal(signum, _interrupt)
        self.context = Context()
        rclpy.init(context=self.context)
        self.node: Node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_once(self, timeout_s: float) -> None:
        self.executor.spin_once(timeout_sec=max(0.0, timeout_s))

    def wait_until(self, due_ns: int) -> None:
        """Process callbacks until the wall clock reaches ``due_ns`` (time.time_ns)."""
        while (now := time.time_ns()) < due_ns:
            self.spin_once((due_ns - now) * 1e-9)

    def close(self) -> None:
        try:
            self.executor.shutdown()
            self.node.destroy_node()
            self.context.try_shutdown()
        finally:
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self._handlers.clear()

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
