"""Over real DDS: the node's live results on a replayed bag equal the offline evaluation window by window,
also with its event encoder on onnxruntime (backend onnxruntime, the toy model exported to ONNX) against the
offline torch encoder; event-clip replay publishes a bag's messages byte for byte in order (and loops); event-clip record writes
what it receives into a bag."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from shipped_samples import CLASSES, GLYPHS, TOY

from event_clip_ros.apps.bag_writer import BagWriteConfig, write_event_bag
from event_clip_ros.apps.detector_config import DetectorConfig
from event_clip_ros.apps.evaluation.bag_input import bag_messages, open_bag_topics
from event_clip_ros.apps.evaluation.offline import EvaluationSetup, evaluate_bag
from event_clip_ros.apps.evaluation.truth import load_truth_csv
from event_clip_ros.cli import main
from event_clip_ros.events.windows import WindowConfig
from event_clip_ros.model import ModelSpec

pytestmark = pytest.mark.ros

PARAMETERS = {"checkpoint": str(TOY), "labels": list(CLASSES), "prompt_templates": ["the {}"],
              "window_duration_ms": 300.0, "min_events": 100, "device": "cpu", "top_k": 5}


@pytest.fixture(scope="module")
def glyph_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("live") / "glyphs"
    write_event_bag(GLYPHS, out, BagWriteConfig(packet_ms=5, stamp_origin_ns=1_700_000_000_000_000_000),
                    load_truth_csv(GLYPHS.with_suffix(".labels.csv")))
    return out


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_live_results_equal_offline_window_by_window(ros, glyph_bag, tmp_path, capfd, backend):
    """The live node (backend torch, or onnxruntime on the toy model's exported encoder) publishes what the offline
    evaluation with the torch encoder computes, window by window."""
    from event_clip_ros.ros.live_evaluation import evaluate_live

    torch.set_num_threads(1)
    parameters = dict(PARAMETERS)
    if backend == "onnxruntime":
        onnx_file = tmp_path / "toy48.onnx"
        assert main(["export", "--onnx", str(onnx_file), "--checkpoint", str(TOY)]) == 0
        parameters.update(backend="onnxruntime", onnx_file=str(onnx_file))
        score_tolerance = 1e-4  # another runtime: the same labels, scores equal to ~1e-6
    else:
        score_tolerance = 1e-5
    config = DetectorConfig(labels=CLASSES, templates=("the {}",), top_k=5,
                            window=WindowConfig(duration_us=300_000, min_events=100, max_events=2_000_000),
                            model=ModelSpec(checkpoint=str(TOY), device="cpu"))
    bag = open_bag_topics(glyph_bag)
    truth = load_truth_csv(GLYPHS.with_suffix(".labels.csv"))
    _, offline = evaluate_bag(glyph_bag, EvaluationSetup(config, truth, "csv"), tmp_path / "offline")
    run, live = evaluate_live(bag, EvaluationSetup(config, truth, "csv"), parameters, tmp_path / "live", rate=2.0)
    assert f"event encoder on {backend} " in capfd.readouterr().err  # the node's configure log says what runs f_E
    assert run.status == "complete" and run.counters["dropped_windows"] == 0
    assert len(live.windows) == len(offline.windows) == 9
    for a, b in zip(live.windows, offline.windows):
        ra, rb = a.result, b.result
        assert (ra.index, ra.t_start_us, ra.t_end_us, ra.n_events, ra.stamp_ns) == \
               (rb.index, rb.t_start_us, rb.t_end_us, rb.n_events, rb.stamp_ns)
        assert [s.label for s in ra.labels] == [s.label for s in rb.labels]
        assert [s.score for s in ra.labels] == pytest.approx([s.score for s in rb.labels], abs=score_tolerance)
        assert a.truth == b.truth and a.correct == b.correct
    metrics = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert metrics["source"] == "live"
    assert metrics["metrics"]["classification"]["top1"] == offline.classification.top1


def test_replay_loops_the_bag_byte_for_byte_and_record_writes_it(ros, glyph_bag, tmp_path):
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    def padded(raw: bytes) -> bytes:  # Fast DDS pads serialised messages to 4 bytes
        return bytes(raw) + b"\0" * (-len(raw) % 4)

    bag = open_bag_topics(glyph_bag)
    expected = [padded(m.raw) for m in bag_messages(bag, [bag.event_topic])]
    labels = [padded(m.raw) for m in bag_messages(bag, ["/labels"])]
    received: list[bytes] = []
    got_labels: list[bytes] = []
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.VOLATILE)
    ros.node.create_subscription(EventPacket, bag.event_topic, lambda raw: received.append(padded(raw)), qos, raw=True)
    ros.node.create_subscription(String, "/labels", lambda raw: got_labels.append(padded(raw)), 100, raw=True)
    replay = subprocess.Popen([sys.executable, "-m", "event_clip_ros.cli", "replay", str(glyph_bag), "--rate", "4",
                               "--loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def full_pass() -> bool:  # the whole bag, in order, somewhere in what arrived (a later pass is complete)
            if replay.poll() is not None:
                raise AssertionError(replay.communicate())
            first = [i for i, raw in enumerate(received) if raw == expected[0]]
            return any(received[i:i + len(expected)] == expected for i in first)

        ros.spin_until(full_pass, "a complete pass of the bag", timeout_s=60)
        ros.spin_until(lambda: any(got_labels[i:i + len(labels)] == labels for i in range(len(got_labels))),
                       "the label topic", timeout_s=30)
        from event_clip_ros.ros.record import record_bag

        out = tmp_path / "recorded"
        assert record_bag(out, [bag.event_topic], storage="sqlite3", max_messages=40) == 0
        recorded = [padded(m.raw) for m in bag_messages(open_bag_topics(out), [bag.event_topic])]
        assert len(recorded) >= 40
        order = [expected.index(raw) for raw in recorded]  # ValueError for a message not in the bag
        steps = [(b - a) % len(expected) for a, b in zip(order, order[1:])]
        assert sum(step == 1 for step in steps) >= len(steps) - 3  # in bag order (best effort may lose a few)
    finally:
        replay.send_signal(signal.SIGINT)
        try:
            replay.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            replay.kill()  # still a failure, but no looping publisher left to feed the next tests on this domain
            replay.communicate()
            raise


def signalled_cli(ros, args: list[str], ready, what: str, sig: signal.Signals,
                  ignore_sigint: bool) -> tuple[int, str, str]:
    """Run ``event-clip args`` (with SIGINT ignored from the start, as a CI background job has it, when
    ``ignore_sigint``), send ``sig`` once ``ready()`` says it is under way; its exit status, stdout, stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "event_clip_ros.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)
    try:
        def under_way() -> bool:
            if proc.poll() is not None:
                raise AssertionError(proc.communicate())
            return ready()

        ros.spin_until(under_way, what, timeout_s=60)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.parametrize("how", ["SIGINT inherited ignored", "SIGTERM"])
def test_a_looping_replay_stops_on_sigint_even_inherited_ignored_and_on_sigterm(ros, glyph_bag, how):
    """A background job of a non-interactive shell (CI, nohup) starts with SIGINT ignored: the looping replay still
    stops on it (it looped on before, until SIGKILL), and on SIGTERM, cleanly (exit 0) either way."""
    from event_camera_msgs.msg import EventPacket

    from event_clip_ros.ros.interfaces import EVENT_QOS

    bag = open_bag_topics(glyph_bag)
    received: list[bytes] = []
    ros.node.create_subscription(EventPacket, bag.event_topic, received.append, EVENT_QOS, raw=True)
    ignore_sigint = how.startswith("SIGINT")
    returncode, _, err = signalled_cli(ros, ["replay", str(glyph_bag), "--rate", "4", "--loop", "--wait-s", "0"],
                                       lambda: len(received) > 0, "the replay's first messages",
                                       signal.SIGINT if ignore_sigint else signal.SIGTERM, ignore_sigint)
    assert returncode == 0, err
    assert "Traceback" not in err, err  # stopped, not crashed


def test_record_interrupted_while_it_waits_for_a_publisher_exits_130_without_a_traceback(ros, tmp_path):
    """An interrupt no command catches (record is still discovering its topic) ends the CLI with 130 and one line,
    and no bag: SIGTERM as a supervisor sends it, and SIGINT inherited ignored as in a CI background job."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"never_{sig.name}"
        returncode, _, err = signalled_cli(
            ros, ["record", str(out), "--topic", "/no_one_here"],
            # its node appears in the graph once the session (and its handlers) are up
            lambda: any(name.startswith("event_clip_record_") for name in ros.node.get_node_names()),
            "the recorder's node", sig, ignore_sigint=True)
        assert returncode == 130, err
        assert "event-clip record: interrupted" in err and "Traceback" not in err, err
        assert not out.exists()
