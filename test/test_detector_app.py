"""The detector pipeline without ROS: the node's input (event_clip_ros.apps.event_input) and its Detector.

* Results equal the offline path (windows on sensor time -> EventClip.embed_windows ->
  ZeroShotClassifier / TextAnomalyScorer), window by window, for EVT3 packets.
* Window stamps: sensor time mapped to ROS time with one offset per stream (evt3: first
  event; mono: time_base; EventArray: first event), relearned after a bag loop.
* Bad input (unknown encoding, garbage, size change, seq gaps) is counted, never raised.
* Run-time label / template / threshold changes; parameters and config/detector.yaml.
* The statistics used by /diagnostics (the inference queue and its worker: test_inference_queue.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.detector_params import (
    PARAMETERS,
    config_from_parameters,
    load_parameters_yaml,
    normalise_msgtype,
)
from event_clip_ros.apps.detector_stats import LatencyTracker, RateMeter, assess
from event_clip_ros.apps.event_input import EventInput, make_input
from event_clip_ros.apps.heads import ANOMALY, NORMAL, AnomalyHead, ClassifierHead
from event_clip_ros.events.encoders import encode_evt3, encode_mono
from event_clip_ros.events.ros_cdr import encode_event_array, encode_event_packet
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.windows import WindowConfig, iter_windows
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.anomaly import AnomalyScorer, ReferenceAnomalyScorer, TextAnomalyScorer
from event_clip_ros.model.checkpoint import save_checkpoint
from event_clip_ros.model.few_shot import FewShotClassifier
from event_clip_ros.model.zero_shot import ZeroShotClassifier

REPO = Path(__file__).resolve().parents[1]
SIZE = SensorSize(64, 48)
LABELS = ("disc", "bar", "square")
WINDOW = WindowConfig(duration_us=10_000, min_events=50)
STAMP0_NS = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


def scene(n: int = 12_000, duration_us: int = 100_000, seed: int = 0, t0_us: int = 5_000) -> np.ndarray:
    """Events with a moving blob, so windows differ from each other."""
    rng = np.random.default_rng(seed)
    t = t0_us + np.sort(rng.integers(0, duration_us, n))
    cx = (8 + (t - t0_us) * 48 // duration_us).astype(np.int64)
    x = np.clip(cx + rng.integers(-6, 7, n), 0, SIZE.width - 1)
    y = np.clip(24 + rng.integers(-8, 9, n), 0, SIZE.height - 1)
    return make_events(t, x, y, rng.integers(0, 2, n))


def evt3_packets(events: np.ndarray, n_packets: int, stamp0_ns: int = STAMP0_NS, seq0: int = 0) -> list[bytes]:
    """EVT3 EventPackets as a driver sends them: header stamp = host time of the first event."""
    out, prev = [], None
    for i, chunk in enumerate(np.array_split(events, n_packets)):
        stamp = stamp0_ns + (int(chunk["t"][0]) - int(events["t"][0])) * 1000
        out.append(encode_event_packet(encode_evt3(chunk, prev), encoding="evt3", width=SIZE.width,
                                       height=SIZE.height, seq=seq0 + i, stamp_ns=stamp, frame_id="cam"))
        prev = int(chunk["t"][-1])
    return out


EVENT_PACKET = "event_camera_msgs/msg/EventPacket"


def detector(model, msgtype: str = EVENT_PACKET, **kwargs) -> tuple[EventInput, Detector]:
    """The node's data path: the input of ``msgtype`` and a loaded detector of ``model``."""
    config = DetectorConfig(**{"labels": LABELS, "window": WINDOW, "top_k": 3, **kwargs})
    det = Detector(config, model=model)
    det.load()
    return make_input(msgtype, config), det


def run(pipe: tuple[EventInput, Detector], packets: list[bytes]) -> list:
    """Every message through the input, in order, then the end of the stream; every window inferred."""
    source, det = pipe
    return run_without_flush(pipe, packets) + det.infer_all(source.flush())


def run_without_flush(pipe: tuple[EventInput, Detector], packets: list[bytes]) -> list:
    source, det = pipe
    return [r for raw in packets for r in det.infer_all(source.feed(raw))]


def counters(pipe: tuple[EventInput, Detector]) -> dict[str, int]:
    """The counters the node reports: its input's and its detector's."""
    source, det = pipe
    return {**source.counters(), **det.counters()}


def test_zero_shot_results_equal_the_offline_path(model):
    events = scene()
    results = run(detector(model), evt3_packets(events, 37))
    clf = ZeroShotClassifier(model, LABELS)
    windows = list(iter_windows([events], WINDOW))
    expected = clf.classify(model.embed_windows([w.events for w in windows], SIZE), top_k=3)
    assert len(results) == len(windows) == 10
    for r, w, top in zip(results, windows, expected):
        assert (r.t_start_us, r.t_end_us, r.n_events) == (w.t_start_us, w.t_end_us, w.events.size)
        assert [s.label for s in r.labels] == [s.label for s in top]
        assert [s.score for s in r.labels] == pytest.approx([s.score for s in top], abs=1e-5)
        assert r.frame_id == "cam" and r.anomaly_score is None
        # the window's end mapped to ROS time: offset from the first packet's stamp and first event
        assert r.stamp_ns == STAMP0_NS + (r.t_end_us - int(events["t"][0])) * 1000
    assert len({round(r.labels[0].score, 4) for r in results}) >= 5  # the windows differ


def test_top_k_and_score_threshold(model):
    pipe = detector(model, top_k=2)
    results = run(pipe, evt3_packets(scene(), 5))
    assert all(len(r.labels) == 2 and r.labels[0].score >= r.labels[1].score for r in results)
    pipe[1].set_score_threshold(0.999)
    assert all(r.labels == () for r in run(pipe, evt3_packets(scene(seed=1), 5)))


def test_run_time_label_and_template_changes(model):
    pipe = detector(model)
    source, det = pipe
    first = run(pipe, evt3_packets(scene(), 5))
    assert det.set_labels(["cat", "dog"]) and not det.set_labels(["cat", "dog"])
    after = run(pipe, evt3_packets(scene(seed=0, t0_us=200_000), 5))
    assert {s.label for r in after for s in r.labels} == {"cat", "dog"}
    assert det.labels == ("cat", "dog") and {s.label for r in first for s in r.labels} == set(LABELS)
    det.set_templates(["a {} in the dark."])
    expected = ZeroShotClassifier(model, ["cat", "dog"], ["a {} in the dark."])
    w = list(iter_windows([scene(seed=3)], WINDOW))[0]
    got = det.infer(source.feed_events(w.events.copy(), SIZE) + source.flush())[0]
    want = expected.classify(model.embed_windows([w.events], SIZE), top_k=3)[0]
    assert [(s.label, round(s.score, 5)) for s in got.labels] == [(s.label, round(s.score, 5)) for s in want]
    with pytest.raises(ValueError, match="no labels"):
        det.set_labels([" ", ""])
    assert det.labels == ("cat", "dog")


def test_anomaly_mode_from_prompts(model):
    pipe = detector(model, mode="anomaly", anomaly=AnomalyConfig(threshold=0.5))
    det = pipe[1]
    events = scene()
    results = run(pipe, evt3_packets(events, 9))
    scorer = TextAnomalyScorer(model)
    windows = list(iter_windows([events], WINDOW))
    expected = scorer.score(model.embed_windows([w.events for w in windows], SIZE))
    assert det.labels == (NORMAL, ANOMALY)
    assert [r.anomaly_score for r in results] == pytest.approx(expected.tolist(), abs=1e-5)
    for r in results:
        assert sum(s.score for s in r.labels) == pytest.approx(1.0)
        assert r.is_anomaly == (r.anomaly_score > 0.5)
        assert r.labels[0].label == (ANOMALY if r.is_anomaly else NORMAL)
    # a threshold below every score flags every window, and the decided class comes first
    det.set_anomaly(AnomalyConfig(threshold=0.0))
    flagged = run(pipe, evt3_packets(scene(seed=2), 9))
    assert flagged and all(r.is_anomaly and r.labels[0].label == ANOMALY for r in flagged)
    assert det.counters()["anomalies"] >= len(flagged)


def test_anomaly_mode_from_a_reference_bank(model, tmp_path):
    windows = list(iter_windows([scene(seed=5)], WINDOW))
    bank = ReferenceAnomalyScorer()
    bank.fit(model.embed_windows([w.events for w in windows], SIZE))
    bank.save(tmp_path / "bank.npz")
    pipe = detector(model, mode="anomaly", anomaly=AnomalyConfig(reference_file=str(tmp_path / "bank.npz"), threshold=0.9))
    results = run(pipe, evt3_packets(scene(seed=6), 9))
    expected = bank.score(model.embed_windows([w.events for w in iter_windows([scene(seed=6)], WINDOW)], SIZE))
    assert [r.anomaly_score for r in results] == pytest.approx(expected.tolist())
    assert [r.is_anomaly for r in results] == [bool(s > 0.9) for s in expected]


def test_a_head_built_elsewhere_runs_as_the_configured_one(model):
    """Detector.for_head: a few-shot classifier (the CLI's --shot) gives its labels through infer; its labels are
    fixed (a run-time change is refused, nothing changes); a head of the other mode is refused."""
    windows = list(iter_windows([scene()], WINDOW))
    emb = model.embed_windows([w.events for w in windows], SIZE)
    few = FewShotClassifier(ZeroShotClassifier(model, LABELS), alpha=0.9)
    few.fit(emb[:6], [LABELS[i % 3] for i in range(6)])
    det = Detector.for_head(model, ClassifierHead(few), top_k=2)
    source = EventInput(EVENT_PACKET, WINDOW)
    results = det.infer_all(source.feed_events(scene(), SIZE) + source.flush())
    expected = few.classify(emb, top_k=2)
    assert [[(s.label, round(s.score, 6)) for s in r.labels] for r in results] == \
           [[(s.label, round(s.score, 6)) for s in top] for top in expected]
    assert det.labels == LABELS and det.config.top_k == 2
    with pytest.raises(ValueError, match="FewShotClassifier are fixed"):
        det.set_labels(["cat", "dog"])
    assert det.labels == LABELS and det.config.labels == LABELS
    wrong = Detector(DetectorConfig(mode="anomaly"), model=model)
    with pytest.raises(ValueError, match="zero_shot head for a anomaly detector"):
        wrong.load(ClassifierHead(few))


class _FixedScores(AnomalyScorer):
    """Scores given in advance (float32, as the real scorers return them): the head's decision alone under test."""

    def __init__(self, scores: list[float], threshold: float) -> None:
        self.scores, self.threshold = np.asarray(scores, np.float32), threshold

    def score(self, embeddings) -> np.ndarray:
        return self.scores[: len(embeddings)]


def test_anomaly_decisions_are_those_of_the_reported_scores():
    """The decision compares the reported (float64) score with the threshold: a float32 score just above 0.1 that
    rounds to float32(0.1) is reported above it and decided anomalous (compared in float32 it was not)."""
    scorer = _FixedScores([0.1, 0.05, 0.5], threshold=0.1)
    verdicts = AnomalyHead(scorer).judge(torch.zeros(3, 1, 4), DetectorConfig(mode="anomaly"))
    assert [v.anomaly_score > 0.1 for v in verdicts] == [v.is_anomaly for v in verdicts] == [True, False, True]
    assert [v.labels[0].label for v in verdicts] == [ANOMALY, NORMAL, ANOMALY]
    views = AnomalyHead(_FixedScores([0.2, 0.4, 0.9, 0.7], threshold=0.5)).judge(torch.zeros(2, 2, 4), DetectorConfig(mode="anomaly"))
    assert [v.anomaly_score for v in views] == pytest.approx([0.3, 0.8]) and [v.is_anomaly for v in views] == [False, True]
    with pytest.raises(ValueError, match="one view per window"):
        ClassifierHead(ZeroShotClassifier.from_text_embeddings(["a", "b"], torch.eye(2, 4), 100.0)).judge(
            torch.zeros(1, 2, 4), DetectorConfig(labels=("a", "b")))


def test_window_embeddings_of_a_mixed_batch_are_those_of_its_parts(model):
    """Event windows of two sensors and windows that carry frames (image input), in one forward pass: each window's
    embedding is the one it has alone; windows with different numbers of views are refused."""
    from event_clip_ros.apps.embedding import window_embeddings
    from event_clip_ros.apps.event_input import PendingWindow
    from event_clip_ros.events.types import empty_events
    from event_clip_ros.events.windows import Window

    small = EventInput(EVENT_PACKET, WINDOW).feed_events(scene(), SIZE)[:2]
    large_size = SensorSize(128, 96)
    large = EventInput(EVENT_PACKET, WINDOW).feed_events(scene(seed=4), large_size)[:1]
    rng = np.random.default_rng(0)
    framed = [PendingWindow(Window(i, 0, 1, empty_events()), SIZE, 0, "", 0, rng.random((n, 48, 64), np.float32))
              for i, n in enumerate((1, 2))]
    mixed = window_embeddings(model, [small[0], large[0], framed[0], small[1]])
    alone = torch.cat([window_embeddings(model, [w]) for w in (small[0], large[0], framed[0], small[1])])
    assert mixed.shape == (4, 1, model.embed_dim)
    torch.testing.assert_close(mixed, alone, atol=1e-5, rtol=1e-5)
    assert window_embeddings(model, framed[1:]).shape == (1, 2, model.embed_dim)
    with pytest.raises(ValueError, match="as many views"):
        window_embeddings(model, framed)


def test_mono_stamps_follow_time_base_and_event_arrays_their_first_event(model):
    events = scene(n=4000, duration_us=40_000)
    pipe = detector(model, window=WindowConfig(duration_us=10_000, min_events=10))
    packets, chunks = [], np.array_split(events, 4)
    base0_us = int(chunks[0]["t"][0]) - 500  # time_base: 0.5 ms before each packet's first event
    for i, chunk in enumerate(chunks):
        base_us = int(chunk["t"][0]) - 500
        packets.append(encode_event_packet(encode_mono(chunk, base_us * 1000), encoding="mono", width=SIZE.width,
                                           height=SIZE.height, seq=i, time_base_ns=base_us * 1000,
                                           stamp_ns=STAMP0_NS + (base_us - base0_us) * 1000, frame_id="mono_cam"))
    results = run(pipe, packets)
    assert len(results) == 4
    for r in results:  # header.stamp belongs to time_base, not to the first event
        assert r.stamp_ns == STAMP0_NS + (r.t_end_us - base0_us) * 1000
        assert r.frame_id == "mono_cam"
    first_base_us = int(events["t"][0])
    arrays = detector(model, "dvs_msgs/msg/EventArray", window=WindowConfig(duration_us=10_000, min_events=10))
    msgs = [encode_event_array(c, SIZE.width, SIZE.height, stamp_ns=STAMP0_NS + i, frame_id="dvs")
            for i, c in enumerate(np.array_split(events, 4))]
    from_arrays = run(arrays, msgs)
    assert [(r.t_end_us, r.labels) for r in from_arrays] == [(r.t_end_us, r.labels) for r in results]
    assert from_arrays[0].stamp_ns == STAMP0_NS + (from_arrays[0].t_end_us - first_base_us) * 1000


def test_bag_loop_closes_windows_and_relearns_the_clock(model):
    pipe = detector(model)
    events = scene()
    first = run_without_flush(pipe, evt3_packets(events, 10))
    # the bag starts again: seq back to 0, same sensor times, header stamps 10 s later
    again = run_without_flush(pipe, evt3_packets(events, 10, stamp0_ns=STAMP0_NS + 10**10))
    c = counters(pipe)
    assert c["stream_restarts"] == 1 and c["lost_packets"] == 0
    assert len(again) == len(first) + 1  # the open window of the first pass was closed by the restart
    loop = again[1:]
    assert [r.t_end_us for r in loop] == [r.t_end_us for r in first]
    assert [r.stamp_ns - 10**10 for r in loop] == [r.stamp_ns for r in first]


def test_packets_decoded_into_the_window_buffer_give_windows_of_exactly_their_events():
    """EventInput decodes each packet straight into its windower's buffer (no copy); the windows hold exactly the
    recording's events, also after a bag loop, whose restart moves the first packet's events to a new buffer."""
    events = scene()
    expected = [w.events.copy() for w in iter_windows([events], WINDOW)]
    source = EventInput(EVENT_PACKET, WINDOW)
    for _ in range(2):  # the bag, then the bag played again (seq back to 0: a restart)
        windows = [p.window.events.copy() for raw in evt3_packets(events, 10) for p in source.feed(raw)]
        windows += [p.window.events.copy() for p in source.flush()]
        assert len(windows) == len(expected)
        assert all(np.array_equal(got, want) for got, want in zip(windows, expected))
    assert source.counters()["events"] == 2 * len(events)


def test_decoded_events_restart_on_time_going_back_or_a_new_size():
    """feed_events has no stream to report restarts: time going back beyond the tolerance, or a new size, is one."""
    source = EventInput(EVENT_PACKET, WINDOW)
    events = scene()
    first = source.feed_events(events, SIZE)
    assert len(first) == 9 and source.restarts == 0  # the 10th window is still open
    late = scene(n=500, duration_us=2_000, t0_us=int(events["t"][-1]) - WINDOW.reset_tolerance_us // 2)
    assert source.feed_events(late, SIZE) == [] and source.restarts == 0  # back, but within the tolerance
    again = source.feed_events(events, SIZE)  # played again from its start
    assert source.restarts == 1
    assert again[0].window.t_start_us == first[-1].window.t_end_us  # the open window, closed by the restart
    assert [w.window.t_end_us for w in again[1:]] == [w.window.t_end_us for w in first]
    assert source.feed_events(scene(n=100, seed=1), SensorSize(128, 96)) != [] and source.restarts == 2  # new size


def test_event_arrays_played_again_restart_once_through_the_stream():
    """Time going back in messages is the stream's to judge: its time guard drops the events until the
    packets confirm the new time, then reports one restart; the input restarts with it, once."""
    source = EventInput("dvs_msgs/msg/EventArray", WINDOW)
    chunks = np.array_split(scene(), 10)

    def messages(stamp0_ns: int) -> list[bytes]:
        return [encode_event_array(c, SIZE.width, SIZE.height, stamp_ns=stamp0_ns + int(c["t"][0]) * 1000, frame_id="dvs")
                for c in chunks]

    first = [w for raw in messages(STAMP0_NS) for w in source.feed(raw)]
    again = [w for raw in messages(STAMP0_NS + 10**10) for w in source.feed(raw)]  # played again 10 s later
    assert source.restarts == 1 and source.counters()["stream_restarts"] == 1
    assert source.counters()["time_dropped_events"] == chunks[0].size  # the message the next one confirmed
    assert again[0].window.t_start_us == first[-1].window.t_end_us  # the open window, closed by the restart
    assert again[1].window.t_start_us == int(chunks[1]["t"][0])  # windows start afresh at the new time ...
    assert all(w.stamp_ns == STAMP0_NS + w.window.t_end_us * 1000 for w in first + again[:1])
    assert all(w.stamp_ns == STAMP0_NS + 10**10 + w.window.t_end_us * 1000 for w in again[1:])  # ... the clock relearned


def test_bad_input_is_counted_not_raised(model):
    pipe = detector(model)
    events = scene()
    good = evt3_packets(events, 10)
    assert run_without_flush(pipe, [b"\x00\x01\x00\x00garbage"]) == []
    assert run_without_flush(pipe, [good[0][:40]]) == []  # truncated message
    unknown = encode_event_packet(b"\x00" * 64, encoding="evt9", width=64, height=48, seq=1)
    assert run_without_flush(pipe, [unknown]) == []
    results = run_without_flush(pipe, good[:4] + good[6:])  # seq gap of 2
    bigger = encode_event_packet(encode_evt3(scene(seed=9)), encoding="evt3", width=128, height=96, seq=20,
                                 stamp_ns=STAMP0_NS)
    results += run_without_flush(pipe, [bigger])  # new geometry: the open window closes with the old size
    c = counters(pipe)
    assert c["bad_packets"] == 3 and c["decode_errors"] >= 3
    assert c["lost_packets"] == 2
    assert c["stream_restarts"] >= 2  # the format changes (evt9, then 128x96)
    assert results and all(r.labels for r in results)


def test_config_validation_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="needs labels"):
        config_from_parameters({})
    with pytest.raises(ValueError, match="cannot read labels file"):
        config_from_parameters({"labels_file": str(tmp_path / "missing.txt")})
    with pytest.raises(ValueError, match="checkpoint .* does not exist"):
        config_from_parameters({"labels": ["a"], "checkpoint": str(tmp_path / "missing.safetensors")})
    with pytest.raises(ValueError, match="mode must be"):
        config_from_parameters({"labels": ["a"], "mode": "detect"})
    with pytest.raises(ValueError, match="not supported"):
        normalise_msgtype("sensor_msgs/Image")
    assert normalise_msgtype("dvs_msgs/EventArray") == "dvs_msgs/msg/EventArray"
    (tmp_path / "labels.txt").write_text("# shapes\ncircle\nsquare, rounded\n")
    config, msgtype = config_from_parameters({"labels": ["x"], "labels_file": str(tmp_path / "labels.txt"),
                                              "prompt_templates": ["n-mnist"], "window_hop_ms": 25.0,
                                              "pretrained": "none", "input_type": "dvs_msgs/msg/EventArray"})
    assert config.labels == ("circle", "square, rounded") and config.templates == ("The digit {}",)
    assert (config.window.duration_us, config.window.hop_us) == (50_000, 25_000)
    assert config.model.pretrained is None and msgtype == "dvs_msgs/msg/EventArray"
    count, _ = config_from_parameters({"labels": ["a"], "window_event_count": 5000, "min_events": 10})
    assert count.window.event_count == 5000 and count.window.duration_us is None


def test_shipped_config_file_declares_every_parameter():
    values = load_parameters_yaml(REPO / "config" / "detector.yaml")
    assert set(values) == {p.name for p in PARAMETERS}
    config, msgtype = config_from_parameters(values)
    assert msgtype == "event_camera_msgs/msg/EventPacket" and config.mode == "zero_shot" and config.labels
    for spec in PARAMETERS:  # YAML defaults equal the declared ones (one source of truth)
        if spec.default is not None:
            assert values[spec.name] == spec.default, spec.name


def test_detector_loads_a_checkpoint_and_releases_it(model, tmp_path):
    save_checkpoint(model, tmp_path / "tiny.safetensors")
    spec = ModelSpec(checkpoint=str(tmp_path / "tiny.safetensors"), device="cpu")
    config = DetectorConfig(labels=LABELS, window=WINDOW, model=spec)
    det = Detector(config)
    source = make_input(EVENT_PACKET, config)
    assert not det.loaded
    det.load()
    results = run((source, det), evt3_packets(scene(), 5))
    in_memory = run(detector(model), evt3_packets(scene(), 5))
    assert [[s.label for s in r.labels] for r in results] == [[s.label for s in r.labels] for r in in_memory]
    assert [r.labels[0].score for r in results] == pytest.approx([r.labels[0].score for r in in_memory], abs=1e-6)
    det.release()
    assert not det.loaded
    with pytest.raises(RuntimeError, match="not loaded"):
        det.infer(source.feed_events(scene(), SIZE) + source.flush())
    det.load()
    assert det.loaded


def test_frame_is_the_window_at_sensor_resolution(model):
    source, det = detector(model)
    w = source.feed_events(scene(), SIZE)[0]
    frame = det.frame(w)
    assert frame.shape == (SIZE.height, SIZE.width) and frame.dtype == np.uint8
    ev = w.window.events
    assert frame[ev["y"], ev["x"]].min() > 0 and frame.sum() > 0
    assert (frame > 0).sum() == len(set(zip(ev["x"].tolist(), ev["y"].tolist())))


def test_statistics_for_diagnostics():
    tracker = LatencyTracker(capacity=100)
    assert tracker.percentiles_ms() == {}
    for ms in range(1, 201):  # only the latest 100 (101..200 ms) are kept
        tracker.add(ms / 1000)
    p = tracker.percentiles_ms()
    assert p["p50"] == pytest.approx(150.5) and p["max"] == pytest.approx(200.0)
    meter = RateMeter()
    assert meter.update({"events": 100}, 10.0) == ({}, {})
    rates, inc = meter.update({"events": 600}, 12.0)
    assert rates["events"] == 250.0 and inc["events"] == 500
    assert assess(True, None, {"events": 5, "dropped_windows": 2}).level == "warn"
    assert "2 windows dropped" in assess(True, None, {"events": 5, "dropped_windows": 2}).message
    lost = assess(True, None, {"events": 5, "lost_packets": 3})  # says what to tune
    assert lost.level == "warn" and "3 packets lost" in lost.message and "fastdds_profile:=realtime" in lost.message
    assert assess(True, None, {"events": 0}).level == "stale"
    assert assess(True, None, {"events": 5}).level == "ok"
    assert assess(False, "configure failed: x", {}).level == "error"


# ------------------------------------------------------------------ real faults (issue 11)


def test_garbage_packet_gives_no_future_windows_and_health_names_decode_errors(model):
    """One EventPacket of random bytes once made the node stamp results up to 14.7 h in the
    future and blame 'windows dropped'. Now: dropped whole, counted, named, and the stream goes on."""
    events = scene()
    packets = evt3_packets(events, 20)
    rng = np.random.default_rng(3)
    garbage = encode_event_packet(
        rng.integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        encoding="evt3",
        width=SIZE.width,
        height=SIZE.height,
        seq=10,
        stamp_ns=STAMP0_NS,
        frame_id="cam",
    )
    pipe = detector(model)
    clean = run(detector(model), packets)
    results = run(pipe, packets[:10] + [garbage] + packets[10:])
    last_end = int(events["t"][-1]) + WINDOW.duration_us
    assert all(r.t_end_us <= last_end for r in results)
    assert max(r.stamp_ns for r in results) <= STAMP0_NS + (last_end - int(events["t"][0])) * 1000
    # the windows the garbage did not touch are unchanged
    assert {(r.t_start_us, r.labels[0].label) for r in clean} >= {(r.t_start_us, r.labels[0].label) for r in results}
    c = counters(pipe)
    assert c["decode_errors"] >= 1 and c["bad_packets"] == 1 and c["stream_restarts"] == 0
    health = assess(True, None, {**{k: 0 for k in c}, "events": 10, "packets": 21, "bad_packets": 1, "decode_errors": 1})
    assert health.level == "warn" and health.message.startswith("1 decode errors")
    all_bad = assess(True, None, {"events": 0, "packets": 20, "bad_packets": 20, "decode_errors": 20})
    assert all_bad.level == "error" and "undecodable" in all_bad.message


def test_garbage_time_base_gives_no_future_windows(model):
    events = scene(t0_us=1_700_000_000_000_000)
    packets = []
    for i, chunk in enumerate(np.array_split(events, 10)):
        tb = int(chunk["t"][0]) * 1000
        sent = tb + (915_000_000_000 if i == 4 else 0)  # one time_base 915 s ahead
        packets.append(
            encode_event_packet(
                encode_mono(chunk, tb),
                encoding="mono",
                width=SIZE.width,
                height=SIZE.height,
                seq=i,
                time_base_ns=sent,
                stamp_ns=STAMP0_NS + i,
            )
        )
    pipe = detector(model)
    results = run(pipe, packets)
    assert results and all(r.t_end_us <= int(events["t"][-1]) + WINDOW.duration_us for r in results)
    assert counters(pipe)["time_dropped_events"] == np.array_split(events, 10)[4].size


def test_frame_is_bounded_whatever_the_claimed_sensor_size(model):
    from event_clip_ros.apps.detector import MAX_FRAME_SIDE, bounded_frame_size
    from event_clip_ros.apps.event_input import PendingWindow
    from event_clip_ros.events.windows import Window

    assert bounded_frame_size(SensorSize(16384, 16384)) == (MAX_FRAME_SIDE, MAX_FRAME_SIDE)
    assert bounded_frame_size(SensorSize(4096, 2048)) == (640, 1280)
    assert bounded_frame_size(SensorSize(640, 480)) == (480, 640)
    _, det = detector(model)
    claimed = SensorSize(65535, 65535)
    window = Window(0, 0, 1000, make_events([1, 2], [0, 65534], [0, 65534], [1, 1]))
    frame = det.frame(PendingWindow(window, claimed, 0, "cam", 0))
    assert frame.shape == (MAX_FRAME_SIDE, MAX_FRAME_SIDE) and frame.dtype == np.uint8
    assert frame[0, 0] > 0 and frame[-1, -1] > 0


def test_stream_limits_come_from_parameters():
    config, _ = config_from_parameters(
        {"labels": ["a"], "max_time_jump_ms": 250.0, "max_sensor_size": 1024, "pretrained": "none", "model": "EventCLIP-Tiny"}
    )
    assert (config.stream_limits.max_jump_us, config.stream_limits.max_width) == (250_000, 1024)
    source = make_input(EVENT_PACKET, config)
    assert source.stream.limits is config.stream_limits
    too_big = encode_event_packet(b"\x00" * 16, encoding="mono", width=2000, height=100, seq=0, stamp_ns=STAMP0_NS)
    assert source.feed(too_big) == [] and source.counters()["bad_packets"] == 1
