"""``event-clip evaluate --live``: the detector node in a subprocess, a bag's event topic played into it,
what it publishes scored like the offline evaluation."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..apps.detector import Detector
from ..apps.detector_params import NODE_NAME
from ..apps.evaluation.bag_input import BagTopics, bag_messages
from ..apps.evaluation.live import bag_windows, join_results
from ..apps.evaluation.offline import Pass, score_and_write
from .interfaces import EVENT_QOS, message_class
from .node_process import NodeWatch, probe_message, start_detector_node, stop_process, wait_connected
from .replay import play
from .results import ResultCollector
from .session import ReplayError, RosSession


def evaluate_live(bag: BagTopics, setup, parameters: dict[str, Any], out_dir: str | Path, rate: float = 1.0,
                  timeout_s: float = 120.0, torch_threads: int = 1):
    """Start the node with ``parameters``, play the bag's event topic into it, score what it publishes.

    Returns (RunInfo, Evaluation) as :func:`~event_clip_ros.apps.evaluation.offline.evaluate_bag` does;
    windows the node did not answer are counted (``dropped_windows``) and make the status incomplete.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    config = setup.config
    windows, counters = bag_windows(bag, bag.msgtype, config.window)
    namespace = f"evaluate{os.getpid()}"
    fqn = f"/{namespace}/{NODE_NAME}"
    params = {**parameters, "input_type": bag.msgtype, "torch_threads": torch_threads, "diagnostics_period_s": 0.1}
    proc = start_detector_node(namespace, params)
    done = Pass()
    try:
        with RosSession(f"event_clip_evaluate_{os.getpid()}") as session:
            publisher = session.node.create_publisher(message_class(bag.msgtype), f"{fqn}/events", EVENT_QOS)
            watch = NodeWatch(session.node, fqn)
            collector = ResultCollector(session.node, fqn)
            deadline = time.monotonic() + timeout_s
            first = next(bag_messages(bag, [bag.event_topic]), None)
            if first is None:
                raise ReplayError(f"{bag.path}: no message on {bag.event_topic}")
            wait_connected(session, publisher, probe_message(bag.msgtype, first.raw), watch, deadline, proc)
            start = time.perf_counter()
            try:
                messages = play(session, bag, {bag.event_topic: publisher}, rate)
                collector.wait_for(session, len(windows), deadline)
            except KeyboardInterrupt:
                done.status = "interrupted"
                done.problems.append("interrupted while playing the bag")
                messages = watch.packets
            wall_s = time.perf_counter() - start
            received = collector.by_stamp()
    finally:
        stop_process(proc)
    done.results, missing = join_results(windows, received, config.mode)
    if missing:
        if done.status == "complete":
            done.status = "incomplete"
        done.problems.append(f"the node published no result for {len(missing)} of {len(windows)} windows "
                             f"(dropped under load or lost); first: window {missing[0].index}")
    done.counters = {**counters, "inferred_windows": len(done.results), "dropped_windows": len(missing)}
    done.timing = {"wall_s": round(wall_s, 4), "windows_per_s": round(len(done.results) / wall_s, 2) if wall_s else 0.0,
                   "messages": messages, "rate": rate}
    return score_and_write(bag, setup, Detector(config), done, out_dir, source="live")
