"""Bag evaluation without ROS: metrics against hand computations, ground-truth sources, the offline pass through
the node's Detector path, the report files, and bad input (missing topic, mixed types, truncated bags,
non-overlapping truth, interruption) still giving clear errors or partial results."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Reader, Writer
from shipped_samples import CLASSES, GLYPH_TRUTH, GLYPHS, TOY

from event_clip_ros.apps.bag_writer import BagWriteConfig, write_event_bag
from event_clip_ros.apps.detector import DetectionResult, Detector
from event_clip_ros.apps.detector_config import DetectorConfig
from event_clip_ros.apps.evaluation.bag_input import open_bag_topics
from event_clip_ros.apps.evaluation.health import input_problems, worse_status
from event_clip_ros.apps.evaluation.metrics import (
    NO_PREDICTION,
    OTHER_TRUTH,
    average_precision,
    classification_metrics,
    roc_auc,
)
from event_clip_ros.apps.evaluation.offline import EvaluationSetup, evaluate_bag
from event_clip_ros.apps.evaluation.scoring import resolve_label, score_results
from event_clip_ros.apps.evaluation.sources import load_ground_truth
from event_clip_ros.apps.evaluation.truth import (
    GroundTruthError,
    PerWindow,
    Range,
    TimeRanges,
    WholeLabel,
    anomaly_truth,
    load_truth_csv,
    load_ucf_annotations,
    ranges_from_label_messages,
)
from event_clip_ros.apps.event_input import make_input
from event_clip_ros.cli import main as cli_main
from event_clip_ros.events.readers.base import EventFileError
from event_clip_ros.events.windows import WindowConfig
from event_clip_ros.model import ModelSpec
from event_clip_ros.model.checkpoint import load_checkpoint
from event_clip_ros.model.zero_shot import LabelScore

from cdr_helpers import event_typestore

ORIGIN_NS = 1_700_000_000_000_000_000


def result(index: int, t0_us: int, t1_us: int, labels=(), score=None, threshold=0.5, stamp_offset_ns=0) -> DetectionResult:
    return DetectionResult(index=index, t_start_us=t0_us, t_end_us=t1_us, n_events=100,
                           stamp_ns=stamp_offset_ns + t1_us * 1000, frame_id="cam",
                           labels=tuple(LabelScore(label, s) for label, s in labels), anomaly_score=score,
                           is_anomaly=None if score is None else score > threshold)


# ------------------------------------------------------------------ metrics
def test_roc_auc_and_average_precision_by_hand():
    y, s = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    assert roc_auc(y, s) == pytest.approx(3 / 4)  # 3 of the 4 (positive, negative) pairs ranked right
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # P at each positive's rank
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1], [0.2, 0.3]) is None and average_precision([0, 0], [0.2, 0.3]) is None
    assert roc_auc([1, 0, 0], [0.9, 0.1, 0.2]) == 1.0
    with pytest.raises(ValueError, match="finite"):
        roc_auc([1, 0], [np.nan, 0.1])


def test_classification_metrics_by_hand():
    truth = ["cat", "cat", "dog", "cow", "dog"]
    ranked = [["cat", "dog"], ["dog", "cat"], ["dog"], ["cat"], []]
    m = classification_metrics(["cat", "dog"], truth, ranked, top_k=5)
    assert m.windows == 5 and m.top1 == pytest.approx(2 / 5) and m.top5 == pytest.approx(3 / 5)
    assert m.per_class == {"cat": 0.5, "dog": 0.5} and m.support == {"cat": 2, "dog": 2}
    assert m.rows == ("cat", "dog", OTHER_TRUTH) and m.columns == ("cat", "dog", NO_PREDICTION)
    assert m.confusion.tolist() == [[1, 1, 0], [0, 1, 1], [1, 0, 0]]
    assert classification_metrics(["cat"], ["cat"], [["cat"]], top_k=3).top5 is None  # fewer than 5 labels reported
    assert classification_metrics(["cat"], [], [], top_k=5).top1 is None


def test_true_labels_name_classes_exactly_or_by_their_last_word():
    assert resolve_label("digit 2", CLASSES) == "digit 2"
    assert resolve_label("2", CLASSES) == "digit 2"
    assert resolve_label("x", CLASSES) == "x"
    assert resolve_label("2", ("digit 2", "number 2")) == "2"  # ambiguous: left as is (a miss)


# ------------------------------------------------------------------ ground truth
def test_ranges_csv_on_either_clock_and_majority_overlap(tmp_path):
    sensor = tmp_path / "sensor.csv"
    sensor.write_text("t_start_us,t_end_us,label\n0,100,cat\n100,300,dog\n")
    truth = load_truth_csv(sensor)
    assert isinstance(truth, TimeRanges) and truth.clock == "sensor"
    assert truth.label_of(result(0, 50, 200)) == "dog"  # 100 us of dog beat 50 us of cat
    assert truth.label_of(result(0, 0, 200)) == "cat"  # a tie goes to the earlier range
    assert truth.label_of(result(0, 300, 400)) is None
    ros = tmp_path / "ros.csv"
    ros.write_text("stamp_start_ns,stamp_end_ns,label\n5000000,5200000,cat\n")
    truth = load_truth_csv(ros)
    assert truth.clock == "ros"
    # the window [100, 300) us sensor time ends at stamp 5.3e6 ns: [5.1e6, 5.3e6) ns ROS time overlaps cat
    assert truth.label_of(result(0, 100, 300, stamp_offset_ns=5_000_000)) == "cat"
    assert truth.label_of(result(0, 100, 300)) is None
    per_window = tmp_path / "w.csv"
    per_window.write_text("window,label\n3,cat\n4,\n")
    truth = load_truth_csv(per_window)
    assert isinstance(truth, PerWindow) and truth.label_of(result(3, 0, 1)) == "cat" and truth.label_of(result(4, 0, 1)) is None


@pytest.mark.parametrize("text, message", [
    ("start,end,label\n1,2,a\n", "unknown ground-truth columns"),
    ("t_start_us,t_end_us\n1,2\n", "no 'label' column"),
    ("t_start_us,t_end_us,label\n1,x,a\n", ":2: t_end_us 'x' is not an integer"),
    ("t_start_us,t_end_us,label\n5,5,a\n", "is empty"),
])
def test_bad_truth_csv_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(GroundTruthError, match=message):
        load_truth_csv(path)
    with pytest.raises(GroundTruthError, match="cannot read"):
        load_truth_csv(tmp_path / "missing.csv")


def test_label_topic_messages_hold_until_the_next():
    truth = ranges_from_label_messages([(30, "dog"), (10, "cat"), (50, ""), (70, "cow")], 100, "t")
    assert truth.clock == "ros"
    assert truth.ranges == (Range(10, 30, "cat"), Range(30, 50, "dog"), Range(70, 100, "cow"))


def test_ucf_annotations_frames_to_sensor_time(tmp_path):
    path = tmp_path / "Temporal_Anomaly_Annotation.txt"
    path.write_text("Other001.mp4 Normal -1 -1 -1 -1\nBag002.mp4  Arrest  30  59  90 119\n")
    truth = load_ucf_annotations(path, "/data/Bag002", fps=30.0, origin_ns=1_000)
    # frames 30-59 at 30 fps: [1 s, 2 s) after the origin; 90-119: [3 s, 4 s)
    assert [(r.start_ns, r.end_ns, r.label) for r in truth.ranges][:4] == [
        (1_000, 1_000_001_000, "normal"), (1_000_001_000, 2_000_001_000, "anomaly"),
        (2_000_001_000, 3_000_001_000, "normal"), (3_000_001_000, 4_000_001_000, "anomaly")]
    assert anomaly_truth(truth.label_at(3_500_000_000, "sensor")) is True
    assert anomaly_truth(truth.label_at(9_000_000_000, "sensor")) is False
    with pytest.raises(GroundTruthError, match="no annotation line"):
        load_ucf_annotations(path, "Bag003", 30.0, 0)
    assert anomaly_truth("Normal") is False and anomaly_truth("1") is True
    with pytest.raises(GroundTruthError, match="neither anomalous"):
        anomaly_truth("maybe")


def test_frame_level_anomaly_by_hand():
    # windows of 100 ms; frames every 50 ms; truth anomalous in [200, 300) ms
    results = [result(i, i * 100_000, (i + 1) * 100_000, score=s) for i, s in enumerate([0.1, 0.3, 0.8, 0.2])]
    truth = TimeRanges((Range(0, 200_000_000, "normal"), Range(200_000_000, 300_000_000, "anomaly"),
                        Range(300_000_000, 400_000_000, "normal")), "sensor")
    ev = score_results(results, truth, "anomaly", ("normal", "anomaly"), 2, frame_step_ns=50_000_000)
    assert ev.window_anomaly.samples == 4 and ev.window_anomaly.roc_auc == 1.0
    assert ev.window_anomaly.accuracy == 1.0  # only window 2 is above 0.5, and it is the anomalous one
    frames = ev.frame_anomaly
    assert frames.samples == 8 and frames.positives == 2 and frames.roc_auc == 1.0
    # window 1 (normal) now scores 0.9: its two frames rank above the two anomalous ones
    results[1] = result(1, 100_000, 200_000, score=0.9)
    ev = score_results(results, truth, "anomaly", ("normal", "anomaly"), 2, frame_step_ns=50_000_000)
    assert ev.frame_anomaly.roc_auc == pytest.approx(4 / 6)  # positives beat 4 of 6 negatives
    assert ev.frame_anomaly.average_precision == pytest.approx(0.5)  # recall 1 reached at precision 2/4


# ------------------------------------------------------------------ the offline pass
@pytest.fixture(scope="module")
def toy_model():
    torch.set_num_threads(1)
    return load_checkpoint(TOY)


def toy_config() -> DetectorConfig:
    return DetectorConfig(labels=CLASSES, templates=("the {}",), top_k=5,
                          window=WindowConfig(duration_us=300_000, min_events=100, max_events=2_000_000),
                          model=ModelSpec(checkpoint=str(TOY), device="cpu"))


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def glyph_bag(request, tmp_path_factory) -> Path:
    truth = load_truth_csv(GLYPH_TRUTH)
    out = tmp_path_factory.mktemp(f"glyph_{request.param}") / "glyphs"
    write_event_bag(GLYPHS, out, BagWriteConfig(packet_ms=5, storage=request.param, stamp_origin_ns=ORIGIN_NS), truth)
    return out


def test_offline_evaluation_equals_the_detector_on_the_raw_messages(glyph_bag, toy_model, tmp_path):
    bag = open_bag_topics(glyph_bag)
    setup = EvaluationSetup(toy_config(), load_ground_truth("topic:/labels", bag), "labels topic", batch_size=4)
    run, ev = evaluate_bag(glyph_bag, setup, tmp_path / "out", model=toy_model)
    # the node's path, message by message: each raw message of the topic through its input, then Detector.infer
    reference = Detector(toy_config(), model=toy_model)
    reference.load()
    source = make_input(bag.msgtype, toy_config())
    with Reader(glyph_bag) as reader:
        expected = [r for _, _, raw in reader.messages([c for c in reader.connections if c.topic == bag.event_topic])
                    for r in reference.infer(source.feed(raw))]
    got = [w.result for w in ev.windows]
    assert len(got) == len(expected) == 9  # the 10th window is still open when the bag ends, as on the node
    for a, b in zip(got, expected):
        assert (a.index, a.t_start_us, a.t_end_us, a.n_events, a.stamp_ns, a.frame_id) == \
               (b.index, b.t_start_us, b.t_end_us, b.n_events, b.stamp_ns, b.frame_id)
        assert [s.label for s in a.labels] == [s.label for s in b.labels]
        assert [s.score for s in a.labels] == pytest.approx([s.score for s in b.labels], abs=1e-5)
    # truth from the label topic (ROS clock) equals the CSV (sensor clock) it was written from
    csv_truth = load_truth_csv(GLYPH_TRUTH)
    assert [w.truth for w in ev.windows] == [resolve_label(csv_truth.label_of(r), CLASSES) for r in got]
    hits = [bool(r.labels) and r.labels[0].label == w.truth for r, w in zip(got, ev.windows)]
    assert ev.classification.top1 == pytest.approx(sum(hits) / 9) and sum(hits) >= 6
    assert run.status == "complete" and run.counters["packets"] == bag.message_count


def test_report_files(glyph_bag, toy_model, tmp_path):
    bag = open_bag_topics(glyph_bag)
    setup = EvaluationSetup(toy_config(), load_ground_truth(str(GLYPH_TRUTH), bag), "csv")
    run, ev = evaluate_bag(glyph_bag, setup, tmp_path, model=toy_model)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["problems"] == []
    c = metrics["metrics"]["classification"]
    assert c["top1"] == ev.classification.top1 and sum(c["support"].values()) == 9
    assert np.array(c["confusion"]["counts"]).sum() == 9
    rows = list(csv.DictReader(open(tmp_path / "windows.csv")))
    assert [int(r["index"]) for r in rows] == [w.result.index for w in ev.windows]
    assert sum(int(r["correct"]) for r in rows) == round(9 * ev.classification.top1)
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    assert "top-1 accuracy" in report and "| letter k |" in report and "wall_s" in report


def test_anomaly_evaluation_writes_roc_and_pr(glyph_bag, toy_model, tmp_path):
    truth = TimeRanges((Range(0, 1_500_000_000, "normal"), Range(1_500_000_000, 3_000_000_000, "anomaly")), "sensor")
    config = DetectorConfig(mode="anomaly", window=toy_config().window, model=toy_config().model)
    run, ev = evaluate_bag(glyph_bag, EvaluationSetup(config, truth, "ranges"), tmp_path, model=toy_model)
    scores = np.array([w.result.anomaly_score for w in ev.windows])
    y = np.array([w.truth == "anomaly" for w in ev.windows])
    assert ev.window_anomaly.roc_auc == pytest.approx(roc_auc(y, scores)) and ev.window_anomaly.positives == y.sum() > 0
    assert ev.frame_anomaly.samples == pytest.approx(9 * 300 / (1000 / 30), abs=2)
    for name in ("roc.png", "pr.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"]["anomaly_frame"]["roc_auc"] is not None


# ------------------------------------------------------------------ bad input
def test_truth_that_misses_the_recording_still_writes_results(glyph_bag, toy_model, tmp_path):
    truth = TimeRanges((Range(10**12, 10**12 + 5, "digit 2"),), "sensor", "late.csv")
    run, ev = evaluate_bag(glyph_bag, EvaluationSetup(toy_config(), truth, "late"), tmp_path, model=toy_model)
    problems = json.loads((tmp_path / "metrics.json").read_text())["problems"]
    assert any("does not overlap" in p and "sensor clock" in p for p in problems)
    assert len(list(csv.DictReader(open(tmp_path / "windows.csv")))) == 9 and ev.scored == 0


def test_interrupted_pass_writes_partial_results(glyph_bag, toy_model, tmp_path):
    count = 0

    def stop_after_half() -> None:
        nonlocal count
        count += 1
        if count == 300:
            raise KeyboardInterrupt

    run, ev = evaluate_bag(glyph_bag, EvaluationSetup(toy_config(), WholeLabel("digit 2"), "whole"), tmp_path,
                           model=toy_model, on_message=stop_after_half)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and "interrupted after 300 of 600 messages" in metrics["problems"][0]
    assert 0 < len(ev.windows) < 9 and ev.classification.windows == len(ev.windows)


def test_bag_problems_are_clear_errors(glyph_bag, tmp_path):
    with pytest.raises(EventFileError, match="no topic '/nope'"):
        open_bag_topics(glyph_bag, "/nope")
    with pytest.raises(EventFileError, match="not a supported event message"):
        open_bag_topics(glyph_bag, "/labels")
    store = event_typestore()
    mixed = tmp_path / "mixed"
    with Writer(mixed, version=9) as writer:
        for msgtype in ("event_camera_msgs/msg/EventPacket", "dvs_msgs/msg/EventArray"):
            writer.add_connection("/events", msgtype, typestore=store)
    with pytest.raises(EventFileError, match="mixes message types"):
        open_bag_topics(mixed, "/events")
    mcap = next(glyph_bag.glob("*.mcap"), None)
    if mcap is not None:  # an MCAP cut short (no footer) opens: its messages before the cut are read
        cut = tmp_path / "cut.mcap"
        cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
        assert open_bag_topics(cut).event_topic
    with pytest.raises(EventFileError, match="no such bag"):
        open_bag_topics(tmp_path / "missing")


def test_cli_evaluate(glyph_bag, tmp_path, capsys):
    args = ["evaluate", str(glyph_bag), "--ground-truth", str(GLYPH_TRUTH), "--out", str(tmp_path / "out"),
            "--checkpoint", str(TOY), "--labels", ",".join(CLASSES), "--prompts", "the {}", "--window-ms", "300",
            "--min-events", "100", "--device", "cpu"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "offline evaluation (complete): 9 windows, 9 with truth; top-1" in out
    assert (tmp_path / "out" / "report.md").exists()
    # the node's parameter file gives the same configuration
    params = tmp_path / "detector.yaml"
    params.write_text(f"detector:\n  ros__parameters:\n    checkpoint: {TOY}\n    labels: {list(CLASSES)}\n"
                      f"    prompt_templates: ['the {{}}']\n    window_duration_ms: 300.0\n    min_events: 100\n"
                      "    device: cpu\n")
    assert cli_main(["evaluate", str(glyph_bag), "--ground-truth", "topic:/labels", "--out", str(tmp_path / "out2"),
                     "--config", str(params)]) == 0
    first = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    second = json.loads((tmp_path / "out2" / "metrics.json").read_text())["metrics"]
    assert first["classification"]["confusion"] == second["classification"]["confusion"]
    # the architecture that ran (the checkpoint's), not the 'model' setting it overrides
    settings = json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]
    assert settings["model"] == "EventCLIP-Toy48"
    capsys.readouterr()
    assert cli_main(["evaluate", str(glyph_bag), "--ground-truth", "topic:/nope", "--out", str(tmp_path / "o3"),
                     "--config", str(params)]) == 2
    assert "no label topic '/nope'" in capsys.readouterr().err
    # a parameter file of several cameras: one camera at a time, with its settings and topic
    two = tmp_path / "two.yaml"
    two.write_text(f"detector:\n  ros__parameters:\n    checkpoint: {TOY}\n    prompt_templates: ['the {{}}']\n"
                   "    window_duration_ms: 300.0\n    min_events: 100\n    device: cpu\n    inputs: [glyphs, other]\n"
                   f"    glyphs: {{topic: /event_camera/events, labels: {list(CLASSES)}}}\n"
                   "    other: {topic: /other/events, mode: anomaly}\n")
    truth = ["--ground-truth", "topic:/labels", "--config", str(two)]
    assert cli_main(["evaluate", str(glyph_bag), "--out", str(tmp_path / "o4"), *truth]) == 2
    assert "configures 2 cameras (glyphs, other): choose one" in capsys.readouterr().err
    assert cli_main(["evaluate", str(glyph_bag), "--out", str(tmp_path / "o5"), *truth, "--camera", "other"]) == 2
    assert "/other/events" in capsys.readouterr().err  # its topic is not in the bag
    assert cli_main(["evaluate", str(glyph_bag), "--out", str(tmp_path / "o6"), *truth, "--camera", "glyphs"]) == 0
    third = json.loads((tmp_path / "o6" / "metrics.json").read_text())["metrics"]
    assert third["classification"]["confusion"] == first["classification"]["confusion"]


# ------------------------------------------------------------------ damaged input: status degraded
def _copy_bag(src: Path, dst: Path, change) -> Path:
    """``src`` rewritten to ``dst`` with each EventPacket's raw CDR passed through ``change(packet index, raw)``."""
    store = event_typestore()
    with Reader(src) as reader, Writer(dst, version=9) as writer:
        out = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=store) for c in reader.connections}
        packet = 0
        for conn, log_time_ns, raw in reader.messages():
            if conn.msgtype == "event_camera_msgs/msg/EventPacket":
                raw, packet = change(packet, bytes(raw)), packet + 1
            writer.write(out[conn.id], log_time_ns, raw)
    return dst


@pytest.fixture(scope="module")
def damaged_bags(tmp_path_factory) -> dict[str, Path]:
    """The glyph bag (600 packets of 5 ms) clean, with a garbage page (5 packets of random payload, valid CDR)
    and with every packet from the 250th on cut to 40 bytes (58 % of the packets, most of the events, lost)."""
    from event_clip_ros.events.ros_cdr import encode_event_packet, parse_event_packet

    root = tmp_path_factory.mktemp("damaged")
    clean = root / "clean"
    write_event_bag(GLYPHS, clean, BagWriteConfig(packet_ms=5, stamp_origin_ns=ORIGIN_NS), load_truth_csv(GLYPH_TRUTH))
    rng = np.random.default_rng(11)

    def garbage(i: int, raw: bytes) -> bytes:
        if not 100 <= i < 105:
            return raw
        m = parse_event_packet(raw)
        noise = rng.integers(0, 256, max(m.events.size, 256), dtype=np.uint8)
        return encode_event_packet(noise, encoding=m.encoding, width=m.width, height=m.height, seq=m.seq,
                                   time_base_ns=m.time_base_ns, stamp_ns=m.stamp_ns, frame_id=m.frame_id)

    return {"clean": clean, "garbage": _copy_bag(clean, root / "garbage", garbage),
            "cut": _copy_bag(clean, root / "cut", lambda i, raw: raw[:40] if i >= 250 else raw)}


def _evaluate_damaged(bag: Path, toy_model, out: Path, **setup):
    return evaluate_bag(bag, EvaluationSetup(toy_config(), load_truth_csv(GLYPH_TRUTH), "csv", **setup), out,
                        model=toy_model)


def test_a_garbage_page_degrades_the_evaluation(damaged_bags, toy_model, tmp_path):
    run, _ = _evaluate_damaged(damaged_bags["garbage"], toy_model, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert run.status == metrics["status"] == "degraded"
    assert metrics["problems"] == run.problems and run.problems
    # the reasons name the damage: decode errors, packets dropped for them, or the time jump they caused
    assert any(re.match(r"decode errors: \d+ in 600 packets|packets dropped whole|events dropped \(implausible time\)"
                        r"|sensor time jumped", p) for p in run.problems), run.problems


def test_messages_cut_short_degrade_the_evaluation(damaged_bags, toy_model, tmp_path):
    run, ev = _evaluate_damaged(damaged_bags["cut"], toy_model, tmp_path)
    assert run.status == "degraded" and run.counters["bad_packets"] == 350
    assert run.problems == ["decode errors: 350 in 600 packets (58.3%, limit 0.1%; bad_packets 350)"]
    assert 0 < len(ev.windows) < 9  # the windows before the damage are still scored
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "degraded" and metrics["problems"] == run.problems
    assert metrics["settings"]["max_problem_rate"] == 0.001
    report = (tmp_path / "report.md").read_text().splitlines()
    assert report[2].startswith("**Status: degraded**") and report[3] == f"- {run.problems[0]}"


def test_the_problem_limit_is_configurable(damaged_bags, toy_model, tmp_path):
    run, _ = _evaluate_damaged(damaged_bags["cut"], toy_model, tmp_path, max_problem_rate=0.6)
    assert run.status == "complete" and run.problems == []  # 58.3 % of the packets lost is within 60 %


def test_a_clean_bag_stays_complete(damaged_bags, toy_model, tmp_path):
    run, _ = _evaluate_damaged(damaged_bags["clean"], toy_model, tmp_path, max_problem_rate=0.0)
    assert run.status == "complete" and run.problems == []
    assert (tmp_path / "report.md").read_text().splitlines()[2] == "**Status: complete**"


def test_cli_degraded_warns_and_strict_fails(damaged_bags, tmp_path, capsys):
    args = ["evaluate", str(damaged_bags["cut"]), "--ground-truth", str(GLYPH_TRUTH), "--out", str(tmp_path / "out"),
            "--checkpoint", str(TOY), "--labels", ",".join(CLASSES), "--prompts", "the {}", "--window-ms", "300",
            "--min-events", "100", "--device", "cpu"]
    assert cli_main(args) == 0  # degraded results are results: exit 0, with a warning
    captured = capsys.readouterr()
    assert "offline evaluation (degraded)" in captured.out
    assert "problem: decode errors: 350 in 600 packets" in captured.err
    assert "WARNING: evaluation degraded" in captured.err
    assert cli_main(args + ["--strict"]) == 1
    assert "(--strict: exit 1)" not in capsys.readouterr().err
    assert cli_main(args + ["--max-problem-rate", "0.6", "--strict"]) == 0
    assert "WARNING" not in capsys.readouterr().err


# ------------------------------------------------------------------ input health by hand
def test_input_problems_by_hand():
    clean = {"packets": 1000, "events": 10**6, "decode_errors": 1, "lost_packets": 1, "windows": 100,
             "skipped_windows": 3}
    assert input_problems(clean) == []  # 0.1 % is within the limit, skipped windows within the recording
    assert input_problems({**clean, "decode_errors": 2}) == ["decode errors: 2 in 1000 packets (0.2%, limit 0.1%)"]
    assert input_problems({**clean, "lost_packets": 5}, max_rate=0.004) == \
        ["packets lost (sequence gaps): 5 in 1005 packets (0.498%, limit 0.4%; lost_packets 5)"]
    # counters other engineers' decoders may add are read when present
    extra = input_problems({**clean, "time_dropped": 2000, "dropped_packets": 3, "nonfinite_windows": 1})
    assert [p.split(":")[0] for p in extra] == [
        "packets dropped whole (undecodable)", "events dropped (implausible time)",
        "windows with non-finite embeddings (not scored)"]
    # a decoder's own stats: decode errors summed from their parts
    stats = {"events": 5000, "packets": 10, "bad_packets": 1, "unknown_words": 7, "time_errors": 0}
    assert input_problems(stats) == ["decode errors: 8 in 10 packets (80%, limit 0.1%; bad_packets 1, unknown_words 7)"]
    with pytest.raises(ValueError, match="max_rate"):
        input_problems(clean, max_rate=float("nan"))


def test_skipped_windows_are_a_problem_only_beyond_the_recording():
    window = WindowConfig(duration_us=50_000, min_events=1000)
    quiet = {"packets": 2000, "events": 10**6, "windows": 10, "skipped_windows": 30}  # 2 s of mostly quiet scene
    assert input_problems(quiet, window=window, recorded_ns=2 * 10**9) == []
    jumped = {**quiet, "skipped_windows": 336}  # a 16.78 s jump (a flipped TIME_HIGH bit) in a 2 s recording
    assert input_problems(jumped, window=window, recorded_ns=2 * 10**9) == [
        "sensor time jumped: the windows cover 17.3 s of sensor time in a 2 s recording (336 windows skipped, "
        "fewer than 1000 events)"]
    assert input_problems(jumped, window=WindowConfig(event_count=100), recorded_ns=2 * 10**9) == []


def test_statuses_only_get_worse():
    assert worse_status("complete", "degraded") == "degraded"
    assert worse_status("incomplete", "degraded") == "incomplete"
    assert worse_status("interrupted", "degraded") == "interrupted"
