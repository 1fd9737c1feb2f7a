"""The inference queue, its worker and cross-camera batches, without ROS (event_clip_ros.apps.inference_queue,
event_clip_ros.ros.worker, event_clip_ros.apps.detector_inputs).

* Windows completed together (a burst, several cameras) are taken together, up to max_batch, oldest first;
  only stale windows are dropped: older than max_age_us behind their camera's newest (0: latest-only),
  or beyond max_windows per camera; counted per camera. A stream restart ages nothing.
* The worker drains on a clean stop, drops (and counts) on a plain one, survives a failing batch.
* One forward pass for the windows of several cameras (different sensor sizes, labels, modes) gives each
  camera the results its own detector gives.
* The node's inputs from parameters: the single default input, named inputs with their own settings.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.detector_inputs import input_names, input_specs, narrow_to_input, queue_config
from event_clip_ros.apps.detector_params import defaults, load_parameters_yaml
from event_clip_ros.apps.event_input import PendingWindow
from event_clip_ros.apps.inference_queue import InferenceQueue, QueueConfig, QueuedWindow, infer_batch
from event_clip_ros.events.types import SensorSize, empty_events, make_events
from event_clip_ros.events.windows import Window, WindowConfig
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.ros.worker import BatchWorker

REPO = Path(__file__).resolve().parents[1]
SIZE = SensorSize(64, 48)


def pending(index: int, t_end_ms: float, events: np.ndarray | None = None, size: SensorSize = SIZE,
            frame_id: str = "cam", duration_ms: float = 50) -> PendingWindow:
    t_end_us = round(t_end_ms * 1000)
    window = Window(index, t_end_us - round(duration_ms * 1000), t_end_us, empty_events() if events is None else events)
    return PendingWindow(window, size, 1_700_000_000_000_000_000 + t_end_us * 1000, frame_id, 0)


def ends_ms(batch: list[QueuedWindow]) -> list[float]:
    return [item.window.window.t_end_us / 1000 for item in batch]


# ------------------------------------------------------------------ the queue
def test_a_burst_is_taken_as_one_batch_and_nothing_is_dropped():
    queue = InferenceQueue(QueueConfig(max_batch=8, max_age_us=500_000))
    # a burst: 35 packets of 408 ms of sensor time arrive at once and complete 8 windows of 50 ms
    for k in range(8):
        queue.put(0, [pending(k, 50 * (k + 1))], arrival_ns=1_000 + k)
    assert queue.depth == 8
    batch = queue.take()
    assert ends_ms(batch) == [50, 100, 150, 200, 250, 300, 350, 400]
    assert [item.arrival_ns for item in batch] == list(range(1_000, 1_008))
    assert queue.counters() == {"queued_windows": 8, "dropped_windows": 0, "dropped_old_windows": 0,
                                "dropped_overflow_windows": 0, "dropped_stopped_windows": 0}
    assert queue.batch_sizes() == {"p50": 8.0, "max": 8.0} and queue.take(timeout_s=0.01) is None


def test_batches_are_bounded_and_the_rest_waits_for_the_next():
    queue = InferenceQueue(QueueConfig(max_batch=8, max_age_us=2_000_000, max_windows=32))
    queue.put(0, [pending(k, 50 * (k + 1)) for k in range(20)])
    assert [len(queue.take()) for _ in range(3)] == [8, 8, 4]
    assert queue.counters()["dropped_windows"] == 0 and queue.batches == 3 and queue.depth_max == 20


def test_windows_older_than_max_age_behind_their_cameras_newest_are_stale():
    queue = InferenceQueue(QueueConfig(max_batch=100, max_age_us=300_000))
    for k in range(20):  # 50 .. 1000 ms: the worker never got to them
        queue.put(0, [pending(k, 50 * (k + 1))])
    assert ends_ms(queue.take()) == [700, 750, 800, 850, 900, 950, 1000]  # within 300 ms of 1000 ms
    assert queue.counters()["dropped_old_windows"] == 13 and queue.counters()["dropped_windows"] == 13
    latest_only = InferenceQueue(QueueConfig(max_age_us=0))
    for k in range(5):
        latest_only.put(0, [pending(k, 50 * (k + 1))])
    assert ends_ms(latest_only.take()) == [250] and latest_only.counters()["dropped_old_windows"] == 4


def test_the_queue_bound_drops_the_oldest_of_a_camera():
    queue = InferenceQueue(QueueConfig(max_batch=100, max_age_us=10_000_000, max_windows=4), cameras=2)
    queue.put(0, [pending(k, k + 1.0, duration_ms=1) for k in range(10)])  # 1 ms windows: the age keeps them all
    queue.put(1, [pending(0, 5.0, frame_id="other")])
    batch = queue.take()
    assert [(item.camera, item.window.window.t_end_us) for item in batch] == \
           [(0, 7_000), (0, 8_000), (0, 9_000), (0, 10_000), (1, 5_000)]
    assert queue.counters(0)["dropped_overflow_windows"] == 6 and queue.counters(1)["dropped_windows"] == 0


def test_cameras_age_on_their_own_clocks_and_batch_in_arrival_order():
    queue = InferenceQueue(QueueConfig(max_batch=8, max_age_us=100_000), cameras=2)
    queue.put(0, [pending(0, 50)], arrival_ns=10)
    queue.put(1, [pending(0, 10_000, frame_id="b")], arrival_ns=20)  # camera 1's clock is far ahead
    queue.put(0, [pending(1, 100)], arrival_ns=30)
    assert [(item.camera, item.arrival_ns) for item in queue.take()] == [(0, 10), (1, 20), (0, 30)]
    assert queue.counters()["dropped_windows"] == 0


def test_time_going_back_ages_nothing():
    queue = InferenceQueue(QueueConfig(max_age_us=100_000))
    queue.put(0, [pending(0, 5_000), pending(1, 5_050)])
    queue.put(0, [pending(0, 50)])  # the stream restarted: sensor time back at 50 ms
    assert ends_ms(queue.take()) == [5_000, 5_050, 50] and queue.counters()["dropped_windows"] == 0


def test_close_drains_or_drops_and_counts():
    queue = InferenceQueue(QueueConfig(max_batch=2))
    queue.put(0, [pending(k, 50 * (k + 1)) for k in range(3)])
    queue.close(drain=True)
    assert [len(queue.take()), len(queue.take())] == [2, 1] and queue.take() is None
    queue.put(0, [pending(3, 200)])  # after close: dropped
    assert queue.counters()["dropped_stopped_windows"] == 1
    dropping = InferenceQueue()
    dropping.put(0, [pending(0, 50), pending(1, 100)])
    dropping.close()
    assert dropping.take() is None and dropping.counters()["dropped_stopped_windows"] == 2


def test_times_for_diagnostics():
    queue = InferenceQueue()
    queue.put(0, [pending(0, 50)], arrival_ns=0)  # arrived long ago (monotonic 0)
    (item,) = queue.take()
    queue.published(item, now_ns=item.arrival_ns + 7_000_000)
    values = queue.values()
    assert values["queue_depth"] == 0 and values["queue_depth_max"] == 1 and values["batches"] == 1
    assert values["batch_size_p50"] == 1.0 and values["wait_ms_p50"] > 0
    assert values["latency_ms_p50"] == pytest.approx(7.0) and "inference_ms_p50" not in values


@pytest.mark.parametrize("bad", [dict(max_batch=0), dict(max_windows=0), dict(max_age_us=-1), dict(max_batch=2.5)])
def test_queue_config_is_validated(bad):
    with pytest.raises(ValueError):
        QueueConfig(**bad)


# ------------------------------------------------------------------ the worker
def test_worker_drains_on_a_clean_stop_drops_otherwise_and_survives_errors():
    started, release = threading.Event(), threading.Event()
    handled: list[list[float]] = []

    def handle(batch: list[QueuedWindow]) -> None:
        handled.append(ends_ms(batch))
        started.set()
        release.wait(10)
        if ends_ms(batch) == [100.0]:
            raise RuntimeError("bad batch")

    for drain, expected, dropped in ((True, [[50.0], [100.0, 150.0]], 0), (False, [[50.0]], 2)):
        started.clear(), release.clear(), handled.clear()
        worker = BatchWorker(InferenceQueue(), handle)
        worker.start()
        worker.queue.put(0, [pending(0, 50)])
        assert started.wait(10)
        worker.queue.put(0, [pending(1, 100), pending(2, 150)])  # waits while the first batch is handled
        threading.Timer(0.05, release.set).start()
        worker.stop(drain=drain)
        assert handled == expected and worker.queue.counters()["dropped_stopped_windows"] == dropped
        assert not worker.running
    errors = BatchWorker(InferenceQueue(QueueConfig(max_batch=1)), handle)
    release.set()
    errors.start()
    errors.queue.put(0, [pending(1, 100), pending(2, 150)])
    errors.stop(drain=True)
    assert errors.handled == 2 and errors.errors == 1 and "bad batch" in errors.last_error


# ------------------------------------------------------------------ batches across cameras
@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))


def blob_events(n: int, size: SensorSize, t0_us: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0_us + np.sort(rng.integers(0, 50_000, n))
    cx, cy = rng.integers(8, size.width - 8), rng.integers(8, size.height - 8)
    return make_events(t, np.clip(cx + rng.integers(-6, 7, n), 0, size.width - 1),
                       np.clip(cy + rng.integers(-6, 7, n), 0, size.height - 1), rng.integers(0, 2, n))


def test_one_forward_pass_for_several_cameras_gives_each_its_own_results(model, monkeypatch):
    window = WindowConfig(duration_us=50_000, min_events=10)
    zero_shot = Detector(DetectorConfig(labels=("disc", "bar", "square"), window=window, top_k=3), model=model)
    other_labels = Detector(DetectorConfig(labels=("cat", "dog"), window=window, top_k=2), model=model)
    anomaly = Detector(DetectorConfig(mode="anomaly", window=window, anomaly=AnomalyConfig(threshold=0.4)), model=model)
    detectors = [zero_shot, other_labels, anomaly]
    for d in detectors:
        d.load()
    sizes = [SensorSize(64, 48), SensorSize(128, 96), SensorSize(320, 240)]
    windows = [[pending(k, 50 * (k + 1), blob_events(500 + 100 * k, size, 50_000 * k, seed=10 * cam + k), size,
                        frame_id=f"cam{cam}") for k in range(3)] for cam, size in enumerate(sizes)]
    expected = [d.infer(ws) for d, ws in zip(detectors, windows)]  # each camera on its own
    batch = [QueuedWindow(cam, windows[cam][k], 0) for k in range(3) for cam in (2, 0, 1)]  # interleaved

    calls = []
    encode = model.encode_frames
    monkeypatch.setattr(model, "encode_frames", lambda frames, **kw: calls.append(len(frames)) or encode(frames, **kw))
    queue = InferenceQueue(cameras=3)
    pairs = infer_batch(detectors, batch, queue)
    assert calls == [9]  # one forward pass for the three cameras
    assert [item for item, _ in pairs] == batch
    for cam in range(3):
        got = [r for item, r in pairs if item.camera == cam]
        for r, e in zip(got, expected[cam], strict=True):
            assert (r.index, r.stamp_ns, r.frame_id, r.n_events) == (e.index, e.stamp_ns, e.frame_id, e.n_events)
            assert [s.label for s in r.labels] == [s.label for s in e.labels]
            assert [s.score for s in r.labels] == pytest.approx([s.score for s in e.labels], abs=1e-5)
            assert r.anomaly_score == pytest.approx(e.anomaly_score, abs=1e-5) if e.anomaly_score is not None \
                else r.anomaly_score is None
    assert {s.label for _, r in pairs for s in r.labels if _.camera == 1} <= {"cat", "dog"}
    assert len(queue.inference) == 1


def test_detector_infers_windows_of_different_sensor_sizes_in_one_call(model):
    det = Detector(DetectorConfig(labels=("disc", "bar"), window=WindowConfig(duration_us=50_000, min_events=10)),
                   model=model)
    det.load()
    small, large = SensorSize(64, 48), SensorSize(640, 480)
    a = pending(0, 50, blob_events(800, small, 0, seed=1), small)
    b = pending(0, 50, blob_events(900, large, 0, seed=2), large)
    mixed = det.infer([a, b])
    alone = det.infer([a]) + det.infer([b])
    assert [r.labels[0].score for r in mixed] == pytest.approx([r.labels[0].score for r in alone], abs=1e-5)
    shared = det.infer([a, b], embeddings=det.embed([a, b]))  # the classifier on given embeddings
    assert [r.labels for r in shared] == [r.labels for r in mixed]


# ------------------------------------------------------------------ inputs from parameters
def test_one_default_input_without_inputs():
    (spec,) = input_specs({"labels": ["a", "b"]})
    assert (spec.name, spec.topic, spec.output("classification")) == ("", "~/events", "~/classification")
    (image,) = input_specs({"labels": ["a"], "input_type": "sensor_msgs/msg/Image", "inputs": []})
    assert image.topic == "~/image" and image.msgtype == "sensor_msgs/msg/Image"


def test_named_inputs_with_their_own_settings(tmp_path):
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("x\ny\n")
    node = {**defaults(), "inputs": ["left", "right", "rgb"], "labels": ["a", "b"], "labels_file": str(labels_file)}
    left, right, rgb = input_specs(node, {
        "left": {"topic": "/left_camera/events", "labels": ["person", "car"]},
        "right": {"input_type": "dvs_msgs/EventArray", "mode": "anomaly"},
        "rgb": {"input_type": "sensor_msgs/msg/Image", "labels_file": ""},
    })
    assert (left.topic, left.msgtype, left.config.labels) == ("/left_camera/events",
                                                             "event_camera_msgs/msg/EventPacket", ("person", "car"))
    assert left.output("frame") == "~/left/frame"
    assert (right.topic, right.msgtype, right.config.mode) == ("~/right/events", "dvs_msgs/msg/EventArray", "anomaly")
    assert (rgb.topic, rgb.config.labels) == ("~/rgb/image", ("x", "y"))  # the node's labels_file
    assert right.config.window == left.config.window and right.config.model == left.config.model
    assert queue_config({"batch_max_windows": 4, "queue_max_age_ms": 0.0}) == QueueConfig(4, 0, 32)


def test_the_two_camera_example_file_is_valid():
    node = {**load_parameters_yaml(REPO / "config" / "detector.yaml")}
    two = load_parameters_yaml(REPO / "config" / "two_cameras.yaml")
    own = {name: two.pop(name) for name in two["inputs"]}  # ROS reads these as left.topic, ...
    left, right = input_specs({**node, **two}, own)
    assert (left.name, left.topic, left.config.labels) == ("left", "/left_camera/events", ("person", "car", "bicycle"))
    assert (right.msgtype, right.config.mode) == ("dvs_msgs/msg/EventArray", "anomaly")


def test_one_camera_of_the_two_camera_file_for_bag_evaluation():
    values = {**load_parameters_yaml(REPO / "config" / "detector.yaml"),
              **load_parameters_yaml(REPO / "config" / "two_cameras.yaml")}
    left, topic = narrow_to_input(values, "left")
    assert topic == "/left_camera/events" and left["labels"] == ["person", "car", "bicycle"]
    assert "inputs" not in left and "right" not in left and "left" not in left
    (spec,) = input_specs(left)  # the node's one-camera path takes it as it is
    assert spec.config.labels == ("person", "car", "bicycle") and spec.config.mode == "zero_shot"
    right, _ = narrow_to_input(values, "right")
    assert (right["input_type"], right["mode"]) == ("dvs_msgs/msg/EventArray", "anomaly")
    with pytest.raises(ValueError, match=r"configures 2 cameras \(left, right\): choose one"):
        narrow_to_input(values, None)
    with pytest.raises(ValueError, match="camera 'middle': the parameter file's inputs are left, right"):
        narrow_to_input(values, "middle")
    one = {"labels": ["a"]}
    assert narrow_to_input(one, None) == (one, None)
    with pytest.raises(ValueError, match="configures one camera"):
        narrow_to_input(one, "left")
    assert narrow_to_input({"inputs": ["a"], "a": {"topic": "~/a/events"}}, "a")[1] is None  # private: no bag topic


@pytest.mark.parametrize("inputs, own, message", [
    (["0cam"], {}, "not a valid input name"),
    (["a", "b", "a"], {}, "a named more than once"),
    (["a"], {"b": {"topic": "/x"}}, "b, which inputs does not name"),
    (["a"], {"a": {"input_type": "foo/Bar"}}, "input a: input_type 'foo/Bar' is not supported"),
    (["a"], {"a": {"mode": "zero_shot", "labels": []}}, None),
])
def test_bad_inputs_are_named(inputs, own, message):
    node = {"inputs": inputs, "labels": ["a"]}
    if message is None:  # an empty own label list keeps the node's labels
        assert input_specs(node, own)[0].config.labels == ("a",)
        return
    with pytest.raises(ValueError, match=message):
        input_specs(node, own)
    assert input_names(None) == ()
