"""An rclpy context with one node and an executor, for the tools that talk to ROS from a plain process
(``event-clip replay``, ``record``, ``evaluate --live`` and the demo)."""

from __future__ import annotations

import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

NS_PER_S = 1_000_000_000


class ReplayError(RuntimeError):
    """The node could not be reached or exited; the message says which."""


class RosSession:
    """An rclpy context with one node and an executor: nothing global, so several can live in one process."""

    def __init__(self, name: str) -> None:
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
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
