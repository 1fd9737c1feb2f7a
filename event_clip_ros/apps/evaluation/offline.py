"""Offline evaluation: a bag's event topic through the node's own Detector, then scored and reported.

Every message of the topic goes, in log-time order, through the node's input
(:func:`~event_clip_ros.apps.event_input.make_input`, ``feed``: the node's
subscription callback path) and the windows it completes through
:meth:`Detector.infer_all` in batches, so each
window and its result equal what the node would publish for it when it drops
nothing (batching changes scores only by float rounding). Like the node, the
window still open when the bag ends is not evaluated.

Ctrl-C or storage damage ends the pass early; the results so far are still
scored and written (``status`` interrupted / incomplete). Input damage the
detector counted (decode errors, lost packets or events, sensor time jumps)
beyond ``max_problem_rate`` makes a complete pass ``degraded``, with the reasons
in ``problems`` (:mod:`.health`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..detector import DetectionResult, Detector
from ..detector_config import DetectorConfig
from ..event_input import EventInput, ImageInput, PendingWindow, make_input
from .bag_input import BagReadStats, BagTopics, bag_messages, open_bag_topics
from .health import DEFAULT_MAX_PROBLEM_RATE, input_problems, worse_status
from .report import RunInfo, write_evaluation
from .scoring import DEFAULT_FRAME_STEP_NS, Evaluation, score_results
from .truth import GroundTruth


@dataclass
class Pass:
    """The results of one pass over a bag and how it went."""

    results: list[DetectionResult] = field(default_factory=list)
    status: str = "complete"
    problems: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)


def run_detector(
    bag: BagTopics,
    source: EventInput | ImageInput,
    detector: Detector,
    batch_size: int = 32,
    on_message: Callable[[], object] | None = None,
) -> Pass:
    """Feed every message of ``bag.event_topic`` to ``source``; infer its windows with the (loaded) detector in batches."""
    out = Pass()
    stats = BagReadStats()
    pending: list[PendingWindow] = []
    decode_s = infer_s = 0.0
    start = time.perf_counter()

    def infer() -> None:
        nonlocal infer_s, pending
        t0 = time.perf_counter()
        out.results.extend(detector.infer_all(pending, batch_size))
        infer_s += time.perf_counter() - t0
        pending = []

    try:
        for message in bag_messages(bag, [bag.event_topic], stats):
            t0 = time.perf_counter()
            pending += source.feed(message.raw)
            decode_s += time.perf_counter() - t0
            if len(pending) >= batch_size:
                infer()
            if on_message is not None:
                on_message()
    except KeyboardInterrupt:
        out.status = "interrupted"
        out.problems.append(f"interrupted after {stats.messages} of {bag.message_count} messages")
    infer()  # the windows completed so far (at most one batch)
    if stats.damaged is not None:
        out.status = "incomplete"
        out.problems.append(f"the bag is damaged after {stats.messages} of {bag.message_count} messages: {stats.damaged}")
    wall_s = time.perf_counter() - start
    out.counters = {**source.counters(), **detector.counters()}
    out.timing = {
        "wall_s": round(wall_s, 4), "decode_s": round(decode_s, 4), "inference_s": round(infer_s, 4),
        "windows_per_s": round(len(out.results) / wall_s, 2) if wall_s > 0 else 0.0,
        "messages": stats.messages,
    }
    return out


@dataclass(frozen=True)
class EvaluationSetup:
    """What to evaluate and how: the detector (as the node is configured), the truth, the outputs."""

    config: DetectorConfig
    truth: GroundTruth | None
    truth_text: str
    batch_size: int = 32
    frame_step_ns: int = DEFAULT_FRAME_STEP_NS
    #: largest share of packets, events or windows the input may lose before the run is degraded
    max_problem_rate: float = DEFAULT_MAX_PROBLEM_RATE


def evaluate_bag(
    bag_path: str | Path,
    setup: EvaluationSetup,
    out_dir: str | Path,
    topic: str | None = None,
    model=None,
    on_message: Callable[[], object] | None = None,
    on_start: Callable[[BagTopics], None] | None = None,
) -> tuple[RunInfo, Evaluation]:
    """Run the detector over a bag, score it and write the evaluation's files into ``out_dir``.

    ``model``: an EventClip to share (benchmarks, tests); otherwise ``setup.config.model`` is built.
    ``on_start`` sees the opened bag (e.g. to size a progress bar), ``on_message`` each message read.
    Raises EventFileError for a bag that cannot be opened or has no usable event topic.
    """
    bag = open_bag_topics(bag_path, topic)
    if on_start is not None:
        on_start(bag)
    source = make_input(bag.msgtype, setup.config)
    detector = Detector(setup.config, model=model)
    detector.load()
    done = run_detector(bag, source, detector, setup.batch_size, on_message)
    return score_and_write(bag, setup, detector, done, out_dir, source="offline")


def score_and_write(bag: BagTopics, setup: EvaluationSetup, detector: Detector, done: Pass, out_dir: str | Path,
                    source: str) -> tuple[RunInfo, Evaluation]:
    """Score a pass's results against the truth and write the files (offline and live share this).

    The input's problems (:func:`.health.input_problems` of the pass's counters) follow the pass's own and make a
    complete pass ``degraded``.
    """
    config = setup.config
    evaluation = score_results(done.results, setup.truth, config.mode, detector.labels, config.top_k,
                               setup.frame_step_ns)
    window = config.window
    damage = input_problems(done.counters, setup.max_problem_rate, window, bag.end_ns - bag.start_ns)
    run = RunInfo(
        bag=str(bag.path), topic=bag.event_topic, msgtype=bag.msgtype, mode=config.mode, classes=list(detector.labels),
        truth=setup.truth_text, source=source, status=worse_status(done.status, "degraded") if damage else done.status,
        problems=list(done.problems) + damage, counters=done.counters, timing=done.timing,
        settings={"window_duration_us": window.duration_us, "window_event_count": window.event_count,
                  "window_hop_us": window.hop_us, "min_events": window.min_events, "top_k": config.top_k,
                  "score_threshold": config.score_threshold, "anomaly_threshold": config.anomaly.threshold,
                  "templates": list(config.templates), "checkpoint": config.model.checkpoint,
                  "model": loaded_arch(detector) or config.model.arch, "batch_size": setup.batch_size,
                  "max_problem_rate": setup.max_problem_rate, "noise_filter": config.noise.describe()},
    )
    write_evaluation(out_dir, run, evaluation)
    return run, evaluation


def loaded_arch(detector: Detector) -> str | None:
    """The architecture of the model the detector ran (a checkpoint's, not the ``model`` setting it overrides)."""
    model = detector.model
    return None if model is None else (model.meta.arch or "custom")
