"""QoS profiles, message classes and status names shared by the node, replay, record and the demo (no torch import)."""

from __future__ import annotations

import importlib
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

#: QoS of the event camera drivers' publishers (a reliable subscriber would not match them).
EVENT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
#: Results: reliable (matches reliable and best-effort subscribers), a short history.
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
#: Label maps: latched, so a late subscriber gets the current one.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def message_class(msgtype: str) -> type[Any]:
    """The Python class of 'pkg/msg/Type'; ValueError when its package is not installed."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"input_type {msgtype}: the message package {package} is not installed ({exc})") from exc


def status_name(node_fqn: str, input_name: str = "") -> str:
    """The detector's /diagnostics status name: the whole node (every input, the queue, the worker), or one named input."""
    return f"{node_fqn}: event_clip detector" + (f" input {input_name}" if input_name else "")
