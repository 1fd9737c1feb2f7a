"""Live results (the node's Classifications) turned into the offline evaluation's results, ROS-free.

The windows of a bag come from the node's own input side
(:class:`~event_clip_ros.apps.event_input.EventInput`, no model): index, sensor
time span, events and ROS stamp of every window the node will complete. Each
Classification the node publishes is stamped with its window's end in ROS
time, which joins it to its window; windows without one were dropped by the
node (latest-only hand-off) or lost, and are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...events.windows import WindowConfig
from ...model.zero_shot import LabelScore
from ..detector import DetectionResult
from ..event_input import EventInput
from ..heads import ANOMALY
from .bag_input import BagTopics, bag_messages


@dataclass(frozen=True)
class WindowInfo:
    """A window the node completes for the bag (its events not kept)."""

    index: int
    t_start_us: int
    t_end_us: int
    n_events: int
    stamp_ns: int
    frame_id: str


def bag_windows(bag: BagTopics, msgtype: str, window: WindowConfig) -> tuple[list[WindowInfo], dict[str, int]]:
    """Every window the node's input side completes for the bag's event topic, and its counters."""
    source = EventInput(msgtype, window)
    out = []
    for message in bag_messages(bag, [bag.event_topic]):
        out += [WindowInfo(w.window.index, w.window.t_start_us, w.window.t_end_us, w.n_events, w.stamp_ns, w.frame_id)
                for w in source.feed(message.raw)]
    return out, source.counters()


def join_results(windows: Sequence[WindowInfo], received: Mapping[int, Sequence[tuple[str, float]]],
                 mode: str) -> tuple[list[DetectionResult], list[WindowInfo]]:
    """(results of the windows the node answered, in window order; the windows it did not answer)."""
    results, missing = [], []
    for w in windows:
        hypotheses = received.get(w.stamp_ns)
        if hypotheses is None:
            missing.append(w)
            continue
        labels = tuple(LabelScore(label, score) for label, score in hypotheses)
        anomaly: dict = {}
        if mode == "anomaly":
            scores = dict(hypotheses)
            anomaly = {"anomaly_score": scores.get(ANOMALY, 0.0), "is_anomaly": bool(labels) and labels[0].label == ANOMALY}
        results.append(DetectionResult(index=w.index, t_start_us=w.t_start_us, t_end_us=w.t_end_us, n_events=w.n_events,
                                       stamp_ns=w.stamp_ns, frame_id=w.frame_id, labels=labels, **anomaly))
    return results, missing
