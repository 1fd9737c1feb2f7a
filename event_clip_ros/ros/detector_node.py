"""The ``detector`` lifecycle node: live event topics to zero-shot labels or anomaly scores.

Topics (relative to the node, so namespaces and remaps work):

* ``~/events`` (in): the ``input_type`` messages, raw subscription with the
  drivers' QoS (best effort, keep last 1000, volatile); every message is
  decoded, in order, in the subscription callback (the decoders are stateful).
* ``~/image`` (in, with ``input_type`` sensor_msgs/msg/Image instead of
  ``~/events``): camera images (bgr8, rgb8, mono8; others counted and skipped),
  camera QoS (best effort, keep last 5); each stack of ``image_stack`` images
  becomes one frame-difference event frame (the paper's video path), inferred
  like an event window and stamped with the stack's last image.
* ``~/classification`` (zero_shot) or ``~/anomaly`` (anomaly):
  vision_msgs/Classification per window, stamped with the window's end mapped
  to ROS time, frame_id from the input (see :mod:`event_clip_ros.ros.messages`).
* ``~/label_info`` (vision_msgs/LabelInfo) and ``~/vision_info``
  (vision_msgs/VisionInfo): transient local, republished when labels change.
* ``~/frame`` (sensor_msgs/Image): the window, built only while someone subscribes; ``frame_mode``
  model: the model's input frame (mono8), view: a picture for people (rgb8, polarity colours, robust
  scaling; :mod:`event_clip_ros.events.view`). The encoding says which one it is.
* ``/diagnostics``: rates, drops, decode errors, lost packets, latency percentiles; with a noise
  filter (``noise_*`` parameters) the events in and removed per filter.

Inference runs on a worker thread with a latest-only hand-off
(:class:`~event_clip_ros.ros.worker.LatestOnlyWorker`): a window still
waiting when a newer one completes is dropped and counted.

Lifecycle: configure reads the parameters and loads the model (a bad value, a
missing labels file or checkpoint fails the transition with the reason in the
log and in /diagnostics; the node keeps running), activate subscribes and
starts the worker, deactivate unsubscribes and frees the GPU, cleanup drops
the model. With ``autostart`` (default) the node configures and activates itself.

Logging: the core's Python logging (``event_clip_ros.*``: decoders, readers, windows,
model; bad input logged once per kind) goes to this node's rclpy logger, hence to
/rosout and the ``ros2 launch`` output (:mod:`event_clip_ros.ros.log_bridge`).

Shutdown: :meth:`DetectorNode.finish` (Ctrl-C, SIGTERM, see :mod:`event_clip_ros.ros.node`)
unsubscribes, lets the worker publish the windows already handed to it, waits briefly for
reliable subscribers to acknowledge them and releases everything; it never raises.
The entry point (``main``) is in :mod:`event_clip_ros.ros.node`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, LabelInfo, VisionInfo

from ..apps.detector import Detector
from ..apps.detector_params import NODE_NAME, RUNTIME_PARAMETERS, config_from_parameters
from ..apps.detector_stats import LatencyTracker, RateMeter, assess
from ..apps.event_input import PendingWindow
from .diagnostics import diagnostic_array
from .interfaces import EVENT_QOS, LATCHED_QOS, RESULT_QOS, message_class
from .log_bridge import forward_core_logging
from .messages import classification_msg, image_msg, label_info_msg, stamp_to_ns, vision_info_msg
from .parameters import declare_parameters, parameter_values
from .worker import LatestOnlyWorker

#: QoS of camera image subscriptions (sensor data): best effort matches any publisher; keep only the latest few.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)

_Entity = TypeVar("_Entity")  # a subscription or publisher to destroy


class DetectorNode(LifecycleNode):
    """Lifecycle node around :class:`~event_clip_ros.apps.detector.Detector` (see module doc)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._detach_logging = forward_core_logging(self.get_logger())
        declare_parameters(self)
        threads = self.get_parameter("torch_threads").value
        if threads:

            torch.set_num_threads(threads)
        self._detector: Detector | None = None
        self._msg_class: type | None = None
        self._worker: LatestOnlyWorker[PendingWindow] | None = None
        self._subscription: Subscription | None = None
        self._result_pub: LifecyclePublisher | None = None  # the publishers exist while configured
        self._frame_pub: LifecyclePublisher | None = None
        self._label_info_pub: LifecyclePublisher | None = None
        self._vision_info_pub: LifecyclePublisher | None = None
        self._active = False
        self._error: str | None = None
        self._callback_errors = 0
        self._labels_version = 0
        self._latency = LatencyTracker()  # window completed -> result published
        self._rates = RateMeter()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def detector(self) -> Detector | None:
        return self._detector

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            config, msgtype = config_from_parameters(parameter_values(self))
            msg_class = message_class(msgtype)
            detector = Detector(config, msgtype)
            detector.load()
        except Exception as exc:  # any bad parameter, file or model must fail the transition, not the node
            self._error = f"configure failed: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        self._detector, self._msg_class, self._error = detector, msg_class, None
        topic = "~/classification" if config.mode == "zero_shot" else "~/anomaly"
        self._result_pub = self.create_lifecycle_publisher(Classification, topic, RESULT_QOS)
        self._frame_pub = self.create_lifecycle_publisher(Image, "~/frame", 1)
        self._label_info_pub = self.create_lifecycle_publisher(LabelInfo, "~/label_info", LATCHED_QOS)
        self._vision_info_pub = self.create_lifecycle_publisher(VisionInfo, "~/vision_info", LATCHED_QOS)
        model = detector.model
        assert model is not None  # loaded above
        self.get_logger().info(
            f"configured: {config.mode}, {len(detector.labels)} labels, input {msgtype}, "
            f"model {model.meta.arch or 'checkpoint'} on {model.device} ({model.precision}), "
            f"noise filter: {config.noise.describe()}, ~/frame: {config.frame_mode}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self._detector is not None
        try:
            if not self._detector.loaded:
                self._detector.load()
        except Exception as exc:  # e.g. the GPU went away
            self._error = f"activate failed: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        self._worker = LatestOnlyWorker(self._handle_window)
        self._worker.start()
        if self._detector.takes_images:
            self._subscription = self.create_subscription(Image, "~/image", self._on_image, IMAGE_QOS)
        else:
            assert self._msg_class is not None  # set with the detector
            self._subscription = self.create_subscription(self._msg_class, "~/events", self._on_events, EVENT_QOS, raw=True)
        result = super().on_activate(state)
        self._active = True
        self._publish_label_info()
        self.get_logger().info(f"active: listening on {self._subscription.topic_name}")
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}; cleaning up")
        self._stop()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self, drain: bool = False) -> None:
        """Unsubscribe, finish the window in hand (``drain``: and the waiting one), free the GPU.

        The model stays loaded on the CPU.
        """
        self._active = False
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            self._destroy("subscription", self.destroy_subscription, subscription)
        if self._worker is not None:
            self._worker.stop(drain=drain)
        if self._detector is not None:
            self._detector.release()

    def _teardown(self) -> None:
        pubs = (self._result_pub, self._frame_pub, self._label_info_pub, self._vision_info_pub)
        self._result_pub = self._frame_pub = self._label_info_pub = self._vision_info_pub = None
        for pub in pubs:
            if pub is not None:
                self._destroy("publisher", self.destroy_lifecycle_publisher, pub)
        self._detector = None
        self._worker = None

    def _destroy(self, what: str, destroy: Callable[[_Entity], object], entity: _Entity) -> None:
        """``destroy(entity)``; a failure (context already shut down, handle gone) is logged, not raised."""
        try:
            destroy(entity)
        except Exception as exc:
            self.get_logger().debug(f"destroying a {what} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Stop everything now (waiting windows are dropped); safe to call more than once."""
        self._stop()
        self._teardown()

    def finish(self, ack_timeout_s: float = 1.0) -> None:
        """Clean shutdown: no new input, the windows handed to the worker inferred and published,
        reliable subscribers given ``ack_timeout_s`` to acknowledge them, then everything released.

        Never raises (a signal or a shut-down context must not turn shutdown into a traceback).
        """
        try:
            self._stop(drain=True)
            if self._result_pub is not None and ack_timeout_s > 0:
                self._result_pub.wait_for_all_acked(Duration(nanoseconds=int(ack_timeout_s * 1e9)))
        except Exception as exc:
            self.get_logger().warning(f"shutdown: {type(exc).__name__}: {exc}")
        try:
            self._teardown()
        except Exception as exc:
            self.get_logger().warning(f"shutdown: {type(exc).__name__}: {exc}")

    def destroy_node(self) -> None:
        self._detach_logging()
        super().destroy_node()

    # ------------------------------------------------------------------ data path
    def _on_events(self, raw: bytes) -> None:
        """Subscription callback: decode every message in order, hand completed windows to the worker."""
        self._feed("decoding a message", lambda detector: detector.feed_cdr(raw))

    def _on_image(self, msg: Image) -> None:
        """Subscription callback: every image, in order, through the extraction; completed windows to the worker."""
        self._feed("processing an image", lambda detector: detector.feed_encoded_image(
            msg.encoding, msg.height, msg.width, msg.step, msg.data, stamp_to_ns(msg.header.stamp), msg.header.frame_id))

    def _feed(self, what: str, feed: Callable[[Detector], list[PendingWindow]]) -> None:
        """Run one input through the detector (while active) and hand its completed windows to the worker.

        The input side counts bad input itself; an exception here is a bug: counted, logged, not fatal.
        """
        detector, worker = self._detector, self._worker
        if detector is None or worker is None:
            return
        try:
            windows = feed(detector)
        except Exception:
            self._callback_errors += 1
            self.get_logger().error(f"{what} failed", throttle_duration_sec=5.0)
            return
        for window in windows:
            worker.submit(window)

    def _handle_window(self, window: PendingWindow) -> None:
        """Worker thread: infer one window, publish its result (and its frame when someone listens)."""
        detector, result_pub, frame_pub = self._detector, self._result_pub, self._frame_pub
        if detector is None or result_pub is None:
            return
        result = detector.infer([window])[0]
        result_pub.publish(classification_msg(result))
        self._latency.add((time.monotonic_ns() - window.ready_ns) * 1e-9)
        if frame_pub is not None and frame_pub.get_subscription_count() > 0:
            frame_pub.publish(image_msg(detector.frame(window), result.stamp_ns, result.frame_id))

    def _publish_label_info(self) -> None:
        detector, label_info_pub, vision_info_pub = self._detector, self._label_info_pub, self._vision_info_pub
        if detector is None or label_info_pub is None or vision_info_pub is None or not self._active:
            return
        self._labels_version += 1
        now = self.get_clock().now().nanoseconds
        label_info_pub.publish(label_info_msg(detector.labels, detector.threshold, now))
        location = f"{self.get_fully_qualified_name()}/label_info"
        vision_info_pub.publish(vision_info_msg(detector.config.mode, self._labels_version, location, now))

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate a change; apply labels, prompts and thresholds at once on a configured node."""
        detector = self._detector
        if detector is None:
            return SetParametersResult(successful=True)  # validated at configure
        names = {p.name for p in params}
        try:
            config, _ = config_from_parameters(parameter_values(self, params))
            before = (detector.labels, detector.threshold)
            if names & RUNTIME_PARAMETERS:
                if config.labels:
                    detector.set_labels(config.labels)
                detector.set_templates(config.templates)
                detector.set_top_k(config.top_k)
                detector.set_score_threshold(config.score_threshold)
                detector.set_anomaly(config.anomaly)
        except Exception as exc:  # a bad value or file; text encoding errors too
            return SetParametersResult(successful=False, reason=str(exc))
        if (detector.labels, detector.threshold) != before:
            self._publish_label_info()
        later = sorted(names - RUNTIME_PARAMETERS)
        if later:
            self.get_logger().info(f"{', '.join(later)} will apply at the next configure")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ diagnostics
    def _counters(self) -> dict[str, int]:
        counters = self._detector.counters() if self._detector is not None else {}
        worker = self._worker
        counters["dropped_windows"] = worker.dropped if worker is not None else 0
        counters["worker_errors"] = worker.errors if worker is not None else 0
        counters["callback_errors"] = self._callback_errors
        return counters

    def _publish_diagnostics(self) -> None:
        counters = self._counters()
        rates, increments = self._rates.update(counters, time.monotonic())
        detector = self._detector
        takes_images = detector is not None and detector.takes_images
        health = assess(self._active, self._error, increments, "images" if takes_images else "events")
        values: dict[str, object] = {
            "state": "active" if self._active else ("inactive" if detector is not None else "unconfigured"),
            "mode": detector.config.mode if detector is not None else "",
            "event_rate_hz": rates.get("events", 0.0),
            "windows_per_s": rates.get("inferred_windows", 0.0),
            **counters,
        }
        if takes_images:
            values["image_rate_hz"] = rates.get("images", 0.0)
        values.update({f"latency_ms_{k}": v for k, v in self._latency.percentiles_ms().items()})
        if detector is not None:
            values.update({f"inference_ms_{k}": v for k, v in detector.inference_latency.percentiles_ms().items()})
        name = f"{self.get_fully_qualified_name()}: event_clip detector"
        now = self.get_clock().now().nanoseconds
        self._diagnostics_pub.publish(diagnostic_array(name, self.get_fully_qualified_name(), health, values, now))

