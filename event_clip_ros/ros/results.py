"""The Classifications a detector node publishes, collected in arrival order."""

from __future__ import annotations

import time
from collections.abc import Callable

from rclpy.node import Node
from vision_msgs.msg import Classification

from .session import NS_PER_S, RosSession


class ResultCollector:
    """Classifications of a detector node (~/classification and ~/anomaly), in arrival order."""

    def __init__(self, node: Node, node_fqn: str, on_result: Callable[[Classification], None] | None = None) -> None:
        self.received: list[Classification] = []
        self._on_result = on_result
        for topic in ("classification", "anomaly"):
            node.create_subscription(Classification, f"{node_fqn}/{topic}", self._add, 100)

    def _add(self, msg: Classification) -> None:
        self.received.append(msg)
        if self._on_result is not None:
            self._on_result(msg)

    def wait_for(self, session: RosSession, count: int, deadline_s: float, quiet_s: float = 3.0) -> None:
        """Until ``count`` results arrived, ``quiet_s`` passed without one, or the deadline."""
        quiet_until = time.monotonic() + quiet_s
        while len(self.received) < count and time.monotonic() < min(deadline_s, quiet_until):
            before = len(self.received)
            session.spin_once(0.1)
            if len(self.received) > before:
                quiet_until = time.monotonic() + quiet_s

    def by_stamp(self) -> dict[int, list[tuple[str, float]]]:
        """stamp (ns) -> [(class_id, score), ...] best/decided first."""
        return {m.header.stamp.sec * NS_PER_S + m.header.stamp.nanosec: [(h.class_id, float(h.score)) for h in m.results]
                for m in self.received}
