"""The detector node over real DDS: the node runs in its own process (event_clip_ros.ros.node.main).

* EVT3 EventPackets in lockstep (publish one packet, wait for the windows it completes):
  every Classification equals the ROS-free Detector's result for the same bytes (labels,
  probabilities, header stamp, frame_id); LabelInfo/VisionInfo are latched; ~/frame carries
  the window; /diagnostics counts; a run-time label change applies without a restart;
  bad input (unknown encoding, garbage, size change, seq gaps) is counted, the node goes on.
* mono EventPackets and dvs_msgs EventArrays give the offline results too.
* Overload: bursts far beyond inference speed: windows dropped and counted, memory flat.
* Lifecycle: a missing checkpoint fails configure (reported in /diagnostics), then
  configure / activate / deactivate / cleanup through the lifecycle services.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from event_clip_ros.apps.detector import DetectionResult, Detector
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.event_input import make_input
from event_clip_ros.events.encoders import encode_evt3, encode_mono
from event_clip_ros.events.noise import NoiseFilterConfig
from event_clip_ros.events.ros_cdr import encode_event_array, encode_event_packet
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.windows import WindowConfig
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import save_checkpoint

pytestmark = pytest.mark.ros

SIZE = SensorSize(64, 48)
LABELS = ["disc", "bar", "square"]
WINDOW_MS = 10
MIN_EVENTS = 50
STAMP0_NS = 1_700_000_000_000_000_000

NODE = "import sys\nfrom event_clip_ros.ros.node import main\nsys.exit(main())\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ros_detector") / "tiny.safetensors"
    save_checkpoint(create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu")), path)
    return path


def scene(n: int, duration_us: int, seed: int = 0, t0_us: int = 1_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = t0_us + np.sort(rng.integers(0, duration_us, n))
    cx = (8 + (t - t0_us) * 48 // duration_us).astype(np.int64)
    return make_events(t, np.clip(cx + rng.integers(-6, 7, n), 0, 63), np.clip(24 + rng.integers(-8, 9, n), 0, 47),
                       rng.integers(0, 2, n))


def evt3_packets(events: np.ndarray, n: int, seq0: int = 0, width: int = SIZE.width, height: int = SIZE.height) -> list[bytes]:
    out, prev = [], None
    for i, chunk in enumerate(np.array_split(events, n)):
        stamp = STAMP0_NS + (int(chunk["t"][0]) - int(events["t"][0])) * 1000
        out.append(encode_event_packet(encode_evt3(chunk, prev), encoding="evt3", width=width, height=height,
                                       seq=seq0 + i, stamp_ns=stamp, frame_id="cam"))
        prev = int(chunk["t"][-1])
    return out


class OfflineDetector:
    """The node's data path without ROS or a worker: its input and its Detector, every window inferred."""

    def __init__(self, config: DetectorConfig, msgtype: str = "event_camera_msgs/msg/EventPacket") -> None:
        self.input = make_input(msgtype, config)
        self.detector = Detector(config)
        self.detector.load()

    def process(self, raw: bytes) -> list[DetectionResult]:
        """The results of the windows one serialised message completes."""
        return self.detector.infer_all(self.input.feed(raw))

    def counters(self) -> dict[str, int]:
        """The counters the node reports: its input's and its detector's."""
        return {**self.input.counters(), **self.detector.counters()}


def offline_config(checkpoint: Path, **kwargs) -> DetectorConfig:
    window = WindowConfig(duration_us=WINDOW_MS * 1000, min_events=MIN_EVENTS, max_events=2_000_000)
    return DetectorConfig(**{"labels": LABELS, "top_k": 3, "window": window,
                             "model": ModelSpec(checkpoint=str(checkpoint), device="cpu"), **kwargs})


def offline_detector(checkpoint: Path, msgtype: str = "event_camera_msgs/msg/EventPacket", labels=LABELS,
                     noise: NoiseFilterConfig = NoiseFilterConfig()) -> OfflineDetector:
    return OfflineDetector(offline_config(checkpoint, labels=tuple(labels), noise=noise), msgtype)


class DetectorClient:
    """The test's side of one node process: publisher, subscriptions, services, diagnostics."""

    def __init__(self, ros, ns: str, msg_class, *params: str, frame: bool = False) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification, LabelInfo, VisionInfo

        self.ros, self.ns = ros, ns
        base = f"/{ns}/detector"
        args = ["--ros-args", "-r", f"__ns:=/{ns}", "-p", "torch_threads:=1", "-p", "diagnostics_period_s:=0.1",
                "-p", f"window_duration_ms:={float(WINDOW_MS)}", "-p", f"min_events:={MIN_EVENTS}", "-p", "top_k:=3"]
        for p in params:
            args += ["-p", p]
        self.proc = ros.start_python(NODE, *args)
        node = ros.node
        events_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT,
                                durability=DurabilityPolicy.VOLATILE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub = node.create_publisher(msg_class, f"{base}/events", events_qos)
        self.results, self.label_infos, self.vision_infos, self.frames, self.diagnostics = [], [], [], [], []
        for topic in ("classification", "anomaly"):
            node.create_subscription(Classification, f"{base}/{topic}", self.results.append, 100)
        node.create_subscription(LabelInfo, f"{base}/label_info", self.label_infos.append, latched)
        node.create_subscription(VisionInfo, f"{base}/vision_info", self.vision_infos.append, latched)
        if frame:
            node.create_subscription(Image, f"{base}/frame", self.frames.append, 100)
        name = f"/{ns}/detector: event_clip detector"
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: self.diagnostics.extend(s for s in m.status if s.name == name), 100)
        self.base = base
        self._clients: dict[str, object] = {}

    def wait_subscribed(self) -> None:
        self.ros.spin_until(lambda: self.pub.get_subscription_count() > 0, "the node's event subscription",
                            timeout_s=60, watch=self.proc)

    def wait_connected(self, probe: bytes) -> None:
        """Publish an event-free probe message until the node has counted one.

        A best-effort message sent before the node's reader has matched this writer is
        lost, even when the writer already sees the reader; probes carry no events and
        repeat one seq, so they change no window and no seq-gap count.
        """
        self.wait_subscribed()

        def received() -> bool:
            self.pub.publish(probe)
            return int(self.values().get("packets", "0")) > 0

        self.ros.spin_until(received, "the node receiving a probe", timeout_s=30, watch=self.proc)

    def values(self) -> dict[str, str]:
        return {kv.key: kv.value for kv in self.diagnostics[-1].values} if self.diagnostics else {}

    def wait_diagnostics(self, condition, what: str, timeout_s: float = 30) -> dict[str, str]:
        self.ros.spin_until(lambda: bool(self.diagnostics) and condition(self.values()), what, timeout_s, watch=self.proc)
        return self.values()

    def wait_settled(self, timeout_s: float = 60) -> dict[str, str]:
        """Wait until two successive statuses show no new packet and the worker idle (a burst is done).

        Best-effort delivery may drop the last packets of a burst, so the count to expect is unknown.
        """
        seen = len(self.diagnostics)

        def settled() -> bool:
            if len(self.diagnostics) < seen + 2:
                return False
            now, before = ({kv.key: int(kv.value) for kv in s.values if kv.value.isdigit()} for s in self.diagnostics[-1:-3:-1])
            return now["packets"] == before["packets"] > 0 and \
                now["inferred_windows"] + now["dropped_windows"] >= now["windows"] - 1

        self.ros.spin_until(settled, "the burst decoded and the worker idle", timeout_s, watch=self.proc)
        return self.values()

    def call(self, srv_type, name: str, request):
        """Call one of the node's services through a client made once and connected first (see :meth:`_client`)."""
        future = self._client(srv_type, name).call_async(request)
        self.ros.spin_until(future.done, f"reply of {name}", timeout_s=60, watch=self.proc)
        return future.result()

    def _client(self, srv_type, name: str):
        """A client whose replies are known to arrive.

        ``service_is_ready`` only says this side has matched the server; the server's reply writer
        may not have matched this client's reply reader yet, and a reply sent before that is lost
        (the call then never completes). So the first use sends a request that changes nothing
        (get_state, an empty parameter list, a transition the node refuses in any state) until one
        reply has come back.
        """
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        client = self._clients.get(name)
        if client is not None:
            return client
        client = self.ros.node.create_client(srv_type, f"{self.base}/{name}")
        self.ros.spin_until(client.service_is_ready, f"service {name}", timeout_s=60, watch=self.proc)
        harmless = srv_type.Request()
        if srv_type is ChangeState:
            harmless.transition = Transition(id=255)  # no such transition: refused, state unchanged
        deadline_s = 60.0
        while True:
            future = client.call_async(harmless)
            try:
                self.ros.spin_until(future.done, f"a first reply of {name}", timeout_s=2.0, watch=self.proc)
                break
            except AssertionError:
                client.remove_pending_request(future)
                deadline_s -= 2.0
                if deadline_s <= 0:
                    raise
        self._clients[name] = client
        return client

    def set_parameters(self, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, "set_parameters", request).results

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        return self.call(ChangeState, "change_state", ChangeState.Request(transition=Transition(id=transition_id))).success

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def lockstep(self, packets: list, expected_counts: list[int]) -> None:
        """Publish each packet, then wait until the results it completes have arrived."""
        for raw, count in zip(packets, expected_counts):
            self.pub.publish(raw)
            self.ros.spin_until(lambda count=count: len(self.results) >= count, f"{count} results", timeout_s=30, watch=self.proc)

    def stop(self) -> str:
        """SIGINT, as Ctrl-C: the node must shut down cleanly with exit status 0."""
        self.proc.popen.send_signal(signal.SIGINT)
        out, err = self.proc.popen.communicate(timeout=30)
        assert self.proc.popen.returncode == 0, f"node exited with {self.proc.popen.returncode}\n{out}\n{err}"
        return err


EVT3_PROBE = encode_event_packet(b"", encoding="evt3", width=SIZE.width, height=SIZE.height, seq=0)
MONO_PROBE = encode_event_packet(b"", encoding="mono", width=SIZE.width, height=SIZE.height, seq=0)
ARRAY_PROBE = encode_event_array(make_events([], [], [], []), SIZE.width, SIZE.height)


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def assert_same(received, expected) -> None:
    assert len(received) == len(expected)
    for msg, r in zip(received, expected):
        assert [h.class_id for h in msg.results] == [s.label for s in r.labels]
        assert [h.score for h in msg.results] == pytest.approx([s.score for s in r.labels], abs=1e-5)
        assert stamp_ns(msg.header) == r.stamp_ns and msg.header.frame_id == r.frame_id


def test_evt3_labels_frames_diagnostics_label_change_and_bad_input(ros, checkpoint):
    from event_camera_msgs.msg import EventPacket

    client = DetectorClient(ros, "evt3", EventPacket, f"checkpoint:={checkpoint}", f"labels:={LABELS}", frame=True)
    client.wait_connected(EVT3_PROBE)
    offline = offline_detector(checkpoint)
    events = scene(12_000, 100_000)
    packets = evt3_packets(events, 20)
    expected, counts = [], []
    for raw in packets:
        expected += offline.process(raw)
        counts.append(len(expected))
    client.lockstep(packets, counts)
    assert_same(client.results, expected)

    # latched label map, VisionInfo, frames of the windows
    ros.spin_until(lambda: client.label_infos and client.vision_infos, "LabelInfo and VisionInfo", watch=client.proc)
    assert [c.class_name for c in client.label_infos[-1].class_map] == LABELS
    assert [c.class_id for c in client.label_infos[-1].class_map] == [0, 1, 2]
    assert client.vision_infos[-1].method == "event_clip/zero_shot"
    ros.spin_until(lambda: len(client.frames) >= 3, "frames", watch=client.proc)
    frame = client.frames[1]
    assert (frame.width, frame.height, frame.encoding, frame.step) == (64, 48, "mono8", 64)
    by_stamp = {r.stamp_ns: r for r in expected}
    assert stamp_ns(frame.header) in by_stamp
    values = client.wait_diagnostics(lambda v: int(v["inferred_windows"]) == len(expected), "diagnostics")
    assert int(values["events"]) == 12_000 and int(values["packets"]) >= 20
    assert values["dropped_windows"] == "0" and values["lost_packets"] == "0" and values["state"] == "active"
    assert float(values["latency_ms_p50"]) > 0 and float(values["inference_ms_max"]) > 0

    # run-time label change: LabelInfo republished, next windows use the new labels
    version = client.vision_infos[-1].database_version
    assert all(r.successful for r in client.set_parameters(labels=["cat", "dog"]))
    ros.spin_until(lambda: [c.class_name for c in client.label_infos[-1].class_map] == ["cat", "dog"],
                   "the new LabelInfo", watch=client.proc)
    ros.spin_until(lambda: client.vision_infos[-1].database_version > version, "a new VisionInfo", watch=client.proc)
    rejected = client.set_parameters(labels=["  "])
    assert not rejected[0].successful and "labels" in rejected[0].reason
    more = evt3_packets(scene(6_000, 50_000, seed=1, t0_us=200_000), 10, seq0=20)
    n_before = len(client.results)
    client.lockstep(more, [n_before + 1] * len(more))
    assert {h.class_id for h in client.results[-1].results} == {"cat", "dog"}

    # bad input: unknown encoding, garbage, a size change, a seq gap; the node keeps going
    packets_before = int(client.wait_settled()["packets"])
    client.pub.publish(encode_event_packet(b"\x00" * 64, encoding="evt9", width=64, height=48, seq=30))
    client.pub.publish(b"\x00\x01\x00\x00garbage")
    bigger = evt3_packets(scene(6_000, 50_000, seed=2, t0_us=400_000), 10, seq0=40, width=128, height=96)
    n_before = len(client.results)
    client.lockstep(bigger[:1] + bigger[3:], [0] + [n_before + 1] * 7)  # seq 41, 42 lost
    values = client.wait_diagnostics(lambda v: int(v["packets"]) == packets_before + 2 + 8, "diagnostics after bad input")
    assert int(values["bad_packets"]) == 2 and int(values["lost_packets"]) == 2
    assert int(values["stream_restarts"]) >= 2
    assert client.diagnostics[-1].level in (b"\x00", b"\x01")  # ok or warn, not error
    client.stop()


@pytest.mark.parametrize("input_type", ["mono", "dvs_msgs/msg/EventArray"])
def test_mono_packets_and_event_arrays(ros, checkpoint, input_type):
    """The EventArray node also runs the noise filters (a hot pixel in the scene) and shows ~/frame as the view."""
    events = scene(6_000, 60_000, seed=3)
    noisy = input_type != "mono"
    noise = NoiseFilterConfig(background_activity_us=2000, hot_pixel_learn_us=30_000) if noisy else NoiseFilterConfig()
    if noisy:  # a hot pixel in a corner, every 100 us
        hot = make_events(np.arange(1_000, 61_000, 100), np.full(600, 2), np.full(600, 2), np.ones(600))
        events = np.sort(np.concatenate([events, hot]), order="t", kind="stable")
    chunks = np.array_split(events, 12)
    if input_type == "mono":
        from event_camera_msgs.msg import EventPacket as msg_class

        msgtype = "event_camera_msgs/msg/EventPacket"
        packets = [encode_event_packet(encode_mono(c, int(c["t"][0]) * 1000), encoding="mono", width=64, height=48,
                                       seq=i, time_base_ns=int(c["t"][0]) * 1000,
                                       stamp_ns=STAMP0_NS + int(c["t"][0]) * 1000, frame_id="cam")
                   for i, c in enumerate(chunks)]
    else:
        from dvs_msgs.msg import EventArray as msg_class

        msgtype = input_type
        packets = [encode_event_array(c, 64, 48, stamp_ns=STAMP0_NS + int(c["t"][0]) * 1000, frame_id="cam")
                   for c in chunks]
    filter_params = [f"noise_background_activity_us:={noise.background_activity_us}",
                     f"noise_hot_pixel_learn_ms:={noise.hot_pixel_learn_us / 1000}", "frame_mode:=view"] if noisy else []
    client = DetectorClient(ros, input_type.split("/")[0], msg_class, f"checkpoint:={checkpoint}",
                            f"labels:={LABELS}", f"input_type:={msgtype}", *filter_params, frame=noisy)
    client.wait_connected(MONO_PROBE if input_type == "mono" else ARRAY_PROBE)
    offline = offline_detector(checkpoint, msgtype, noise=noise)
    expected, counts = [], []
    for raw in packets:
        expected += offline.process(raw)
        counts.append(len(expected))
    client.lockstep(packets, counts)
    assert len(expected) == 5
    assert_same(client.results, expected)
    if noisy:  # the node's /diagnostics count what the filters removed, exactly as offline
        offline_counts = offline.counters()
        assert offline_counts["noise_hot_pixels"] == 1 and offline_counts["noise_background_removed"] > 0
        assert offline_counts["noise_hot_pixel_removed"] > 500
        values = client.wait_diagnostics(lambda v: int(v.get("noise_events_in", 0)) == events.size, "noise counters")
        for key in ("noise_events_in", "noise_hot_pixel_removed", "noise_background_removed", "noise_hot_pixels"):
            assert int(values[key]) == offline_counts[key]
        ros.spin_until(lambda: client.frames, "a frame", watch=client.proc)
        frame = client.frames[-1]
        assert (frame.width, frame.height, frame.encoding, frame.step) == (64, 48, "rgb8", 192)
    client.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_anomaly_mode_publishes_anomaly_and_normal_equal_to_the_offline_scores(ros, checkpoint):
    from event_camera_msgs.msg import EventPacket

    threshold = 0.45
    client = DetectorClient(ros, "anomaly", EventPacket, f"checkpoint:={checkpoint}", "mode:=anomaly",
                            f"anomaly_threshold:={threshold}")
    client.wait_connected(EVT3_PROBE)
    offline = OfflineDetector(offline_config(checkpoint, mode="anomaly", labels=(), anomaly=AnomalyConfig(threshold=threshold)))
    packets = evt3_packets(scene(6_000, 60_000, seed=5), 12)
    expected, counts = [], []
    for raw in packets:
        expected += offline.process(raw)
        counts.append(len(expected))
    client.lockstep(packets, counts)
    assert len(expected) >= 4
    assert_same(client.results, expected)  # hypotheses, scores, stamps
    for msg, r in zip(client.results, expected):
        scores = {h.class_id: h.score for h in msg.results}
        assert set(scores) == {"anomaly", "normal"} and sum(scores.values()) == pytest.approx(1.0, abs=1e-6)
        assert scores["anomaly"] == pytest.approx(r.anomaly_score, abs=1e-5)
        assert msg.results[0].class_id == ("anomaly" if r.anomaly_score > threshold else "normal")
    ros.spin_until(lambda: client.label_infos, "LabelInfo", watch=client.proc)
    assert client.label_infos[-1].threshold == pytest.approx(threshold)
    client.stop()


def test_overload_drops_windows_counts_them_and_memory_stays_flat(ros, checkpoint):
    from event_camera_msgs.msg import EventPacket

    client = DetectorClient(ros, "overload", EventPacket, f"checkpoint:={checkpoint}", f"labels:={LABELS}",
                            "window_duration_ms:=1.0", "min_events:=1")
    client.wait_connected(EVT3_PROBE)
    per_packet, n_packets = 2_000, 300  # 1 ms packets of 2k events (2 Mev/s of sensor time), sent in a burst
    rng = np.random.default_rng(4)
    t = np.repeat(np.arange(n_packets * 2) * 1000, per_packet) + np.tile(np.sort(rng.integers(0, 1000, per_packet)), n_packets * 2)
    events = make_events(t, rng.integers(0, 64, t.size), rng.integers(0, 48, t.size), 1)
    packets = evt3_packets(events, n_packets * 2)
    rss = []
    for burst in (packets[:n_packets], packets[n_packets:]):
        for raw in burst:
            client.pub.publish(raw)
        values = client.wait_settled()
        rss.append(rss_mb(client.proc.popen.pid))
    assert int(values["dropped_windows"]) > 0, str(values)  # the worker could not keep up: stale windows dropped
    assert int(values["inferred_windows"]) > 0 and int(values["inferred_windows"]) < int(values["windows"])
    assert rss[1] - rss[0] < 40, f"memory grew from {rss[0]:.0f} to {rss[1]:.0f} MB over the second burst"
    assert client.diagnostics[-1].level != b"\x02"
    client.stop()


def test_lifecycle_transitions_and_a_missing_checkpoint(ros, checkpoint, tmp_path):
    from event_camera_msgs.msg import EventPacket
    from lifecycle_msgs.msg import Transition

    client = DetectorClient(ros, "lifecycle", EventPacket, f"checkpoint:={tmp_path / 'missing.safetensors'}",
                            f"labels:={LABELS}", "autostart:=false")
    assert client.state() == "unconfigured"
    assert not client.transition(Transition.TRANSITION_CONFIGURE)
    ros.spin_until(lambda: client.diagnostics and client.diagnostics[-1].level == b"\x02", "an error status",
                   watch=client.proc)
    assert "missing.safetensors" in client.diagnostics[-1].message and client.state() == "unconfigured"
    assert all(r.successful for r in client.set_parameters(checkpoint=str(checkpoint)))
    assert client.transition(Transition.TRANSITION_CONFIGURE) and client.state() == "inactive"
    assert client.pub.get_subscription_count() == 0
    assert client.transition(Transition.TRANSITION_ACTIVATE) and client.state() == "active"
    client.wait_subscribed()
    ros.spin_until(lambda: client.label_infos, "LabelInfo on activate", watch=client.proc)
    assert client.transition(Transition.TRANSITION_DEACTIVATE) and client.state() == "inactive"
    ros.spin_until(lambda: client.pub.get_subscription_count() == 0, "the subscription removed", watch=client.proc)
    assert client.transition(Transition.TRANSITION_ACTIVATE)
    client.wait_connected(EVT3_PROBE)
    packets = evt3_packets(scene(3_000, 30_000), 6)
    offline, counts = offline_detector(checkpoint), []
    for raw in packets:
        counts.append(len(offline.process(raw)) + (counts[-1] if counts else 0))
    assert counts[-1] == 2
    client.lockstep(packets, counts)  # results flow again after re-activation
    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP) and client.state() == "unconfigured"
    client.stop()
