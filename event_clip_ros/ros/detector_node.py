"""The ``detector`` lifecycle node: live event topics to zero-shot labels or anomaly scores.

Topics (relative to the node, so namespaces and remaps work):

* ``~/events`` (in): the ``input_type`` messages, raw subscription with the
  drivers' QoS (best effort, keep last 1000, volatile); every message is
  decoded, in order, on the node's input thread (the decoders are stateful;
  :mod:`event_clip_ros.ros.input_loop`: it takes the messages off the executor,
  whose per-message cost would otherwise limit the input rate).
* ``~/image`` (in, with ``input_type`` sensor_msgs/msg/Image instead of
  ``~/events``): camera images (bgr8, rgb8, mono8; others counted and skipped),
  raw subscription with camera QoS (best effort, keep last 5); each stack of ``image_stack`` images
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
* ``/diagnostics``: rates, drops, decode errors, lost packets, queue depth, batch
  sizes, wait, inference and latency percentiles; with a noise filter (``noise_*``
  parameters) the events in and removed per filter.

Several cameras (parameter ``inputs``, see :mod:`event_clip_ros.apps.detector_inputs`):
one subscription per named input (``<name>.topic``) and the outputs above under
``~/<name>/``, one model, one worker; /diagnostics then also has one status per input.

The node is an adapter: its input thread hands every message of an input to that input's side
(:func:`~event_clip_ros.apps.event_input.make_input`, one ``feed(raw)`` for
event and image messages) cuts windows, its
:class:`~event_clip_ros.apps.detector.Detector` (one model shared by all inputs,
each with its own head) infers them; the node subscribes, queues, publishes and reports.

Inference runs on one worker thread fed by an
:class:`~event_clip_ros.apps.inference_queue.InferenceQueue`: the windows waiting
when it is free (of every input, at most ``batch_max_windows``) go through the
encoder in one forward pass; only stale windows (``queue_max_age_ms``,
``queue_max_windows``) are dropped, and counted. Latency is measured from the
arrival of the message that completed a window (its transport receive time).

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
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import Image
from vision_msgs.msg import Classification, LabelInfo, VisionInfo

from ..apps.detector import Detector
from ..apps.detector_inputs import INPUT_RUNTIME_PARAMETERS, InputSpec, input_names, input_specs, queue_config
from ..apps.detector_params import NODE_NAME, RUNTIME_PARAMETERS
from ..apps.detector_stats import Health, RateMeter, assess
from ..apps.event_input import EventInput, ImageInput, make_input
from ..apps.inference_queue import InferenceQueue, QueueConfig, QueuedWindow, infer_batch
from .diagnostics import diagnostic_array, diagnostic_status
from .input_loop import InputLoop, unexecuted_group
from .interfaces import EVENT_QOS, LATCHED_QOS, RESULT_QOS, message_class, status_name
from .log_bridge import forward_core_logging
from .messages import classification_msg, image_msg, label_info_msg, vision_info_msg
from .parameters import declare_input_parameters, declare_parameters, input_parameter_values, parameter_values
from .worker import BatchWorker

#: QoS of camera image subscriptions (sensor data): best effort matches any publisher; keep only the latest few.
_Entity = TypeVar("_Entity")  # a subscription or publisher to destroy

IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)


def arrival_ns(info: MessageInfo | dict[str, Any] | None) -> int:
    """time.monotonic_ns() of a message's arrival: its transport receive time (rmw MessageInfo
    ``received_timestamp``, system clock) moved to the monotonic clock; now when the rmw gives none."""
    now_mono, now_real = time.monotonic_ns(), time.time_ns()
    received = int((info or {}).get("received_timestamp") or 0)
    return now_mono - max(0, now_real - received) if received > 0 else now_mono


@dataclass
class _Input:
    """One configured input: its input side, its detector (head) and publishers, its subscription while active."""

    spec: InputSpec
    source: EventInput | ImageInput
    detector: Detector
    msg_class: type
    result_pub: Any
    frame_pub: Any
    label_info_pub: Any
    vision_info_pub: Any
    subscription: Any = None
    labels_version: int = 0
    rates: RateMeter = field(default_factory=RateMeter)  #: this input's counters per second (its status)

    def publishers(self) -> tuple:
        return self.result_pub, self.frame_pub, self.label_info_pub, self.vision_info_pub


class DetectorNode(LifecycleNode):
    """Lifecycle node around :class:`~event_clip_ros.apps.detector.Detector`\\ s, one per input (see module doc)."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._detach_logging = forward_core_logging(self.get_logger())
        declare_parameters(self)
        self._error: str | None = None
        self._inputs_error: str | None = None  # a bad ``inputs`` value: configure fails with it
        try:
            self._input_names = input_names(parameter_values(self)["inputs"])
        except ValueError as exc:
            self._input_names, self._inputs_error = (), str(exc)
        declare_input_parameters(self, self._input_names)
        threads = self.get_parameter("torch_threads").value
        if threads:

            torch.set_num_threads(threads)
        self._inputs: list[_Input] = []
        self._queue_config: QueueConfig | None = None
        self._queue: InferenceQueue | None = None
        self._worker: BatchWorker | None = None
        self._input_loop: InputLoop | None = None
        self._active = False
        self._callback_errors = 0
        self._rates = RateMeter()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def detector(self) -> Detector | None:
        """The first input's detector (the only one without ``inputs``)."""
        return self._inputs[0].detector if self._inputs else None

    @property
    def detectors(self) -> list[Detector]:
        return [inp.detector for inp in self._inputs]

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            if self._inputs_error:
                raise ValueError(self._inputs_error)
            values = parameter_values(self)
            specs = input_specs(values, input_parameter_values(self, self._input_names))
            self._queue_config = queue_config(values)
            msg_classes = [message_class(spec.msgtype) for spec in specs]
            detectors: list[Detector] = []
            for spec in specs:  # the first builds the model, the others share it
                detector = Detector(spec.config, model=detectors[0].model if detectors else None)
                detector.load()
                detectors.append(detector)
            sources = [make_input(spec.msgtype, spec.config) for spec in specs]
        except Exception as exc:  # any bad parameter, file or model must fail the transition, not the node
            self._error = f"configure failed: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        self._error = None
        self._inputs = [self._make_input(spec, source, detector, msg_class)
                        for spec, source, detector, msg_class in zip(specs, sources, detectors, msg_classes)]
        model = detectors[0].model
        assert model is not None and self._queue_config is not None  # loaded above; set with the parameters
        for inp in self._inputs:
            config = inp.spec.config
            what = (f"{config.mode}, {len(inp.detector.labels)} labels, input {inp.spec.msgtype}, "
                    f"noise filter: {config.noise.describe()}, ~/frame: {config.frame_mode}")
            self.get_logger().info(f"configured{' ' + inp.spec.name if inp.spec.name else ''}: {what}")
        self.get_logger().info(f"model {model.meta.arch or 'checkpoint'} on {model.device} ({model.precision}), "
                               f"event encoder on {model.frame_encoder.describe()}, {len(self._inputs)} input(s), "
                               f"batches of up to {self._queue_config.max_batch} windows")
        return TransitionCallbackReturn.SUCCESS

    def _make_input(self, spec: InputSpec, source: EventInput | ImageInput, detector: Detector, msg_class: type) -> _Input:
        result = spec.output("classification" if spec.config.mode == "zero_shot" else "anomaly")
        return _Input(
            spec, source, detector, msg_class,
            result_pub=self.create_lifecycle_publisher(Classification, result, RESULT_QOS),
            frame_pub=self.create_lifecycle_publisher(Image, spec.output("frame"), 1),
            label_info_pub=self.create_lifecycle_publisher(LabelInfo, spec.output("label_info"), LATCHED_QOS),
            vision_info_pub=self.create_lifecycle_publisher(VisionInfo, spec.output("vision_info"), LATCHED_QOS),
        )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        assert self._inputs
        try:
            for detector in self.detectors:
                if not detector.loaded:
                    detector.load()
        except Exception as exc:  # e.g. the GPU went away
            self._error = f"activate failed: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        assert self._queue_config is not None  # configured before activation
        self._queue = InferenceQueue(self._queue_config, len(self._inputs))
        self._worker = BatchWorker(self._queue, self._handle_batch)
        self._worker.start()
        group = unexecuted_group()  # the input thread takes these messages, not the executor
        for camera, inp in enumerate(self._inputs):
            qos = IMAGE_QOS if isinstance(inp.source, ImageInput) else EVENT_QOS
            inp.subscription = self.create_subscription(inp.msg_class, inp.spec.topic, partial(self._on_message, camera),
                                                        qos, callback_group=group, raw=True)
        result = super().on_activate(state)
        self._active = True
        self._input_loop = InputLoop([inp.subscription for inp in self._inputs], self._on_message, self.context)
        self._input_loop.start()
        self._publish_label_info()
        topics = ", ".join(inp.subscription.topic_name for inp in self._inputs)
        self.get_logger().info(f"active: listening on {topics}")
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
        """Unsubscribe, finish the batch in hand (``drain``: and every waiting window), free the GPU.

        The model stays loaded on the CPU.
        """
        self._active = False
        loop, self._input_loop = self._input_loop, None
        if loop is not None:
            loop.stop()  # the message in hand finishes; then no more input
            self._callback_errors += loop.errors
        for inp in self._inputs:
            if inp.subscription is not None:
                subscription, inp.subscription = inp.subscription, None
                self._destroy("subscription", self.destroy_subscription, subscription)
        if self._worker is not None:
            self._worker.stop(drain=drain)
        for detector in self.detectors:
            detector.release()

    def _teardown(self) -> None:
        inputs, self._inputs = self._inputs, []
        for inp in inputs:
            for pub in inp.publishers():
                self._destroy("publisher", self.destroy_lifecycle_publisher, pub)
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
            if ack_timeout_s > 0:
                deadline = time.monotonic() + ack_timeout_s
                for inp in self._inputs:
                    left_ns = max(0, int((deadline - time.monotonic()) * 1e9))
                    inp.result_pub.wait_for_all_acked(Duration(nanoseconds=left_ns))
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
    def _on_message(self, camera: int, raw: bytes, info: MessageInfo) -> None:
        """Input thread (:class:`~event_clip_ros.ros.input_loop.InputLoop`): every message of an input, in order,
        through its input side; the windows it completes queued.

        The input side counts bad input itself; an exception here is a bug: counted, logged, not fatal.
        """
        arrived = arrival_ns(info)
        inputs, queue = self._inputs, self._queue
        if not self._active or queue is None or camera >= len(inputs):
            return
        source = inputs[camera].source
        try:
            windows = source.feed(raw)
        except Exception:
            self._callback_errors += 1
            self.get_logger().error(f"processing a {source.msgtype} message failed", throttle_duration_sec=5.0)
            return
        queue.put(camera, windows, arrived)

    def _handle_batch(self, batch: list[QueuedWindow]) -> None:
        """Worker thread: infer a batch of windows (any inputs) in one forward pass, publish each result
        on its input's topic (and its frame when someone listens)."""
        inputs, queue = self._inputs, self._queue
        if not inputs or queue is None:
            return
        for item, result in infer_batch([inp.detector for inp in inputs], batch, queue):
            inp = inputs[item.camera]
            inp.result_pub.publish(classification_msg(result))
            queue.published(item)
            if inp.frame_pub.get_subscription_count() > 0:
                inp.frame_pub.publish(image_msg(inp.detector.frame(item.window), result.stamp_ns, result.frame_id))

    def _publish_label_info(self, inputs: list[_Input] | None = None) -> None:
        if not self._active:
            return
        now = self.get_clock().now().nanoseconds
        for inp in self._inputs if inputs is None else inputs:
            detector = inp.detector
            inp.labels_version += 1
            inp.label_info_pub.publish(label_info_msg(detector.labels, detector.threshold, now))
            location = f"{self.get_fully_qualified_name()}/{inp.spec.output('label_info')[2:]}"
            inp.vision_info_pub.publish(vision_info_msg(detector.config.mode, inp.labels_version, location, now))

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate a change; apply labels, prompts and thresholds at once on a configured node."""
        inputs = self._inputs
        if not inputs:
            return SetParametersResult(successful=True)  # validated at configure
        names = {p.name for p in params}
        runtime = {n for n in names if n in RUNTIME_PARAMETERS or
                   (n.partition(".")[0] in self._input_names and n.partition(".")[2] in INPUT_RUNTIME_PARAMETERS)}
        changed = []
        try:
            specs = input_specs(parameter_values(self, params), input_parameter_values(self, self._input_names, params))
            for inp, spec in zip(inputs, specs):
                detector, config = inp.detector, spec.config
                before = (detector.labels, detector.threshold)
                if runtime:
                    if config.labels:
                        detector.set_labels(config.labels)
                    detector.set_templates(config.templates)
                    detector.set_top_k(config.top_k)
                    detector.set_score_threshold(config.score_threshold)
                    detector.set_anomaly(config.anomaly)
                if (detector.labels, detector.threshold) != before:
                    changed.append(inp)
        except Exception as exc:  # a bad value or file; text encoding errors too
            return SetParametersResult(successful=False, reason=str(exc))
        self._publish_label_info(changed)
        later = sorted(names - runtime)
        if later:
            self.get_logger().info(f"{', '.join(later)} will apply at the next configure")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ diagnostics
    def _input_counters(self, camera: int, inp: _Input) -> dict[str, int]:
        counters = {**inp.source.counters(), **inp.detector.counters()}
        queue = self._queue
        if queue is not None and camera < queue.cameras:
            counters.update(queue.counters(camera))
        return counters

    def _publish_diagnostics(self) -> None:
        inputs, queue, worker = self._inputs, self._queue, self._worker
        now_s = time.monotonic()
        fqn = self.get_fully_qualified_name()
        per_input = [self._input_counters(camera, inp) for camera, inp in enumerate(inputs)]
        counters: dict[str, int] = {}
        for part in per_input:
            for key, value in part.items():
                counters[key] = counters.get(key, 0) + value
        counters.setdefault("dropped_windows", 0)
        counters["worker_errors"] = worker.errors if worker is not None else 0
        loop = self._input_loop
        counters["callback_errors"] = self._callback_errors + (loop.errors if loop is not None else 0)
        rates, increments = self._rates.update(counters, now_s)
        takes_images = bool(inputs) and all(isinstance(inp.source, ImageInput) for inp in inputs)
        health = assess(self._active, self._error, increments, "images" if takes_images else "events")
        state = "active" if self._active else ("inactive" if inputs else "unconfigured")
        values: dict[str, object] = {
            "state": state,
            "mode": ",".join(sorted({inp.spec.config.mode for inp in inputs})),
            "inputs": len(inputs),
            **self._rate_values(rates, takes_images),
            **counters,
        }
        if queue is not None:
            values.update(queue.values())
        statuses = [diagnostic_status(status_name(fqn), fqn, health, values)]
        for camera, (inp, part) in enumerate(zip(inputs, per_input)):
            if inp.spec.name:
                statuses.append(self._input_status(fqn, camera, inp, part, now_s))
        self._diagnostics_pub.publish(diagnostic_array(statuses, self.get_clock().now().nanoseconds))

    def _input_status(self, fqn: str, camera: int, inp: _Input, counters: dict[str, int], now_s: float):
        """One named input's status: its counters, rates, health and latency."""
        rates, increments = inp.rates.update(counters, now_s)
        images = isinstance(inp.source, ImageInput)
        health: Health = assess(self._active, self._error, increments, "images" if images else "events")
        values: dict[str, object] = {"topic": inp.subscription.topic_name if inp.subscription else inp.spec.topic,
                                     "input_type": inp.spec.msgtype, "mode": inp.spec.config.mode,
                                     **self._rate_values(rates, images), **counters}
        queue = self._queue
        if queue is not None and camera < queue.cameras:
            values.update({f"latency_ms_{k}": v for k, v in queue.camera_latency[camera].percentiles_ms().items()})
        return diagnostic_status(status_name(fqn, inp.spec.name), fqn, health, values)

    @staticmethod
    def _rate_values(rates: dict[str, float], images: bool) -> dict[str, float]:
        out = {"event_rate_hz": rates.get("events", 0.0), "windows_per_s": rates.get("inferred_windows", 0.0)}
        if images:
            out["image_rate_hz"] = rates.get("images", 0.0)
        return out
