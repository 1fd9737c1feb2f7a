"""The detector's parameters: one table (name, default, range, description) and their meaning.

The ROS node declares exactly these (:mod:`event_clip_ros.ros.parameters`),
``config/detector.yaml`` documents them, and offline tools read the same YAML
with :func:`load_parameters_yaml`; :func:`config_from_parameters` turns a set
of values into a validated :class:`~event_clip_ros.apps.detector_config.DetectorConfig`
plus the input message type, so the node and offline evaluation agree.

Parameters marked ``runtime`` take effect at once when changed on a running
node (labels, prompts, thresholds, top_k); the others at the next configure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..events.limits import StreamLimits
from ..events.noise import MAX_NOISE_US, MAX_SUPPORT_US, NoiseFilterConfig
from ..events.packet_stream import SUPPORTED_MSGTYPES
from ..events.view import FRAME_MODES
from ..events.windows import WindowConfig
from ..model.factory import ModelSpec
from ..model.prompts import (
    ABNORMAL_PROMPTS,
    DEFAULT_TEMPLATES,
    NORMAL_PROMPTS,
    PLACEHOLDER,
    load_labels,
    resolve_templates,
)
from ..video.extraction import ExtractionConfig
from .detector_config import AnomalyConfig, DetectorConfig
from .event_input import IMAGE_ENCODINGS, IMAGE_MSGTYPE

NODE_NAME = "detector"
DEFAULT_INPUT_TYPE = "event_camera_msgs/msg/EventPacket"
#: What input_type accepts: the event message types (on ~/events) and sensor_msgs/msg/Image (on ~/image).
INPUT_TYPES: tuple[str, ...] = (*SUPPORTED_MSGTYPES, IMAGE_MSGTYPE)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: ``default`` fixes its type (a list of str = string array; None = string array, no default)."""

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None  #: inclusive bounds of a number
    runtime: bool = False  #: a change applies on a running node without reconfiguring
    read_only: bool = False  #: fixed at start-up (launch/YAML only)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("input_type", DEFAULT_INPUT_TYPE,
              "message type on ~/events: " + ", ".join(SUPPORTED_MSGTYPES)
              + " (EventPacket encodings evt3, mono, libcaer_cmp, libcaer); or " + IMAGE_MSGTYPE
              + " on ~/image (" + ", ".join(IMAGE_ENCODINGS) + "), turned into event frames by frame differences"),
    ParamSpec("mode", "zero_shot", "zero_shot (labels on ~/classification) or anomaly (scores on ~/anomaly)"),
    ParamSpec("labels", None, "zero-shot class names (labels_file, when set, replaces them)", runtime=True),
    ParamSpec("labels_file", "", "file with one class name per line, or a YAML list; empty: use labels", runtime=True),
    ParamSpec("prompt_templates", list(DEFAULT_TEMPLATES),
              "prompt templates with one {} for the label; or one entry naming a set "
              "(event, n-imagenet, n-caltech101, n-mnist) or a template file", runtime=True),
    ParamSpec("model", "ViT-B-32", "open_clip architecture (ignored when checkpoint is set)"),
    ParamSpec("pretrained", "openai", "open_clip pretrained tag or CLIP weights file; 'none': random weights"),
    ParamSpec("checkpoint", "", "event encoder checkpoint (.safetensors, or the paper's vitb.pt/vitl.pt); wins over model"),
    ParamSpec("device", "auto", "auto (CUDA when present), cpu, cuda or cuda:N"),
    ParamSpec("precision", "auto", "auto (bf16/fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16; backend onnxruntime: "
              "auto (fp16 on the CUDA/TensorRT provider, fp32 on the CPU), fp32 or fp16"),
    ParamSpec("backend", "torch", "what runs the event encoder: torch, or onnxruntime (onnx_file; the text heads stay "
              "the model's)"),
    ParamSpec("onnx_file", "", "backend onnxruntime: the event encoder of this model exported by event-clip export "
              "--onnx (refused when exported from another model)"),
    ParamSpec("onnx_providers", "auto", "backend onnxruntime: auto (on a CUDA device TensorRT, CUDA, then CPU, those "
              "present; else CPU) or a comma-separated list of tensorrt, cuda, cpu (each must be present)"),
    ParamSpec("window_duration_ms", 50.0, "window length on sensor time, ms", range=(0.01, 60_000.0)),
    ParamSpec("window_event_count", 0, "windows of this many events instead of a duration; 0: duration windows",
              range=(0, 100_000_000)),
    ParamSpec("window_hop_ms", 0.0, "start-to-start distance of duration windows, ms; 0: hop = duration",
              range=(0.0, 60_000.0)),
    ParamSpec("min_events", 1000, "windows with fewer events are skipped (and counted)", range=(1, 100_000_000)),
    ParamSpec("max_window_events", 2_000_000, "a duration window keeps at most its latest N events (memory bound)",
              range=(1, 100_000_000)),
    ParamSpec("max_time_jump_ms", 4000.0, "largest forward step of sensor time between packets taken without "
              "confirmation; a larger one is dropped until packets agree (a counted restart), ms",
              range=(1.0, 3_600_000.0)),
    ParamSpec("max_sensor_size", 4096, "largest sensor width or height accepted from the messages (encodings "
              "with narrower address fields accept less: 2048 for evt3); larger ones are counted as bad packets",
              range=(1, 65535)),
    ParamSpec("noise_background_activity_us", 0, "noise filter before windowing: keep an event only when one of its 8 "
              "neighbour pixels fired less than this long before it (dv-processing's background activity filter), us; "
              "0: off", range=(0, MAX_SUPPORT_US)),
    ParamSpec("noise_hot_pixel_learn_ms", 0.0, "noise filter before windowing: learn a hot-pixel mask over this much "
              "sensor time from the start of the stream (relearned after a restart) and drop those pixels' events, "
              "ms; 0: off", range=(0.0, MAX_NOISE_US / 1000)),
    ParamSpec("noise_hot_pixel_factor", 10.0, "hot pixels: more events than this many times the mean count of the "
              "pixels that fired", range=(1.0, 1_000_000.0)),
    ParamSpec("noise_hot_pixel_min_count", 20, "hot pixels: and more than this many events while learning",
              range=(1, 1 << 31)),
    ParamSpec("image_diff_threshold", 10, "image input: gray-level difference a pixel must exceed to count as changed",
              range=(0, 255)),
    ParamSpec("image_stack", 16, "image input: frames per event frame (one window per stack, stack - 1 differences)",
              range=(2, 4096)),
    ParamSpec("image_clamp", 10.0, "image input: cap on the per-pixel sum of changes before normalising; 0: no cap",
              range=(0.0, 1_000_000.0)),
    ParamSpec("image_on_value", 1, "image input: value of a changed pixel (1: sums count changes; 255: the README "
              "snippet's binary mask)", range=(1, 255)),
    ParamSpec("frame_mode", "model", "what ~/frame shows: " + "; ".join(f"{k}: {v}" for k, v in FRAME_MODES.items())),
    ParamSpec("top_k", 5, "labels per Classification, best first", range=(1, 1000), runtime=True),
    ParamSpec("score_threshold", 0.0, "zero-shot: labels below this probability are left out", range=(0.0, 1.0),
              runtime=True),
    ParamSpec("anomaly_normal_prompts", list(NORMAL_PROMPTS), "anomaly mode: sentences describing the normal scene",
              runtime=True),
    ParamSpec("anomaly_abnormal_prompts", list(ABNORMAL_PROMPTS), "anomaly mode: sentences describing the anomaly",
              runtime=True),
    ParamSpec("anomaly_reference_file", "", "anomaly mode: a saved reference bank .npz of normal windows "
              "(event-clip anomaly --save-reference); replaces the prompts", runtime=True),
    ParamSpec("anomaly_threshold", 0.5, "anomaly when P(anomaly) > threshold (0.5 for prompts, e.g. 0.95 for a bank)",
              range=(0.0, 1.0), runtime=True),
    ParamSpec("inputs", None, "several cameras in one node: input names, e.g. [cam0, cam1], each set by "
              "<name>.topic, <name>.input_type, <name>.mode, <name>.labels, <name>.labels_file (see "
              "event_clip_ros.apps.detector_inputs), results on ~/<name>/...; unset: one input on ~/events "
              "(or ~/image), results on ~/classification", read_only=True),
    ParamSpec("batch_max_windows", 8, "most windows per forward pass: the windows waiting when the worker is free, "
              "of all inputs, are inferred together", range=(1, 1024)),
    ParamSpec("queue_max_age_ms", 500.0, "a waiting window is stale (dropped, counted) once its input completed a "
              "window ending this much sensor time later, ms; 0: only each input's newest window waits",
              range=(0.0, 3_600_000.0)),
    ParamSpec("queue_max_windows", 32, "waiting windows per input; the oldest beyond are stale (memory bound)",
              range=(1, 100_000)),
    ParamSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status, s", range=(0.05, 60.0), read_only=True),
    ParamSpec("torch_threads", 0, "CPU threads torch may use; 0: torch's default", range=(0, 256), read_only=True),
    ParamSpec("autostart", True, "configure and activate at start-up (no lifecycle manager needed)", read_only=True),
)

PARAMETERS_BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMETERS}
RUNTIME_PARAMETERS = frozenset(p.name for p in PARAMETERS if p.runtime)


def defaults() -> dict[str, Any]:
    """Every parameter's default value (None: no default)."""
    return {p.name: p.default for p in PARAMETERS}


def _full_type(name: str) -> str:
    """'pkg/Type' or 'pkg/msg/Type' -> 'pkg/msg/Type'."""
    parts = name.strip().split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name.strip()


def normalise_msgtype(name: str) -> str:
    """An event message type as 'pkg/msg/Type'; ValueError for an unsupported type."""
    full = _full_type(name)
    if full not in SUPPORTED_MSGTYPES:
        raise ValueError(f"input_type {name!r} is not supported; use one of {', '.join(SUPPORTED_MSGTYPES)}")
    return full


def normalise_input_type(name: str) -> str:
    """The detector's input_type as 'pkg/msg/Type': an event message type or sensor_msgs/msg/Image."""
    full = _full_type(name)
    if full not in INPUT_TYPES:
        raise ValueError(f"input_type {name!r} is not supported; use one of {', '.join(INPUT_TYPES)}")
    return full


def _templates(values: list[str]) -> tuple[str, ...]:
    if len(values) == 1 and PLACEHOLDER not in values[0]:
        return resolve_templates(values[0])  # a set name or a template file
    return tuple(values)


def _optional_path(value: str) -> str | None:
    return value.strip() or None


def config_from_parameters(values: Mapping[str, Any]) -> tuple[DetectorConfig, str]:
    """(DetectorConfig, input message type) from parameter values (missing ones take their default).

    Raises ValueError naming the parameter for an invalid value, an unreadable
    labels file, a missing checkpoint or reference file.
    """
    v = {**defaults(), **{k: val for k, val in values.items() if val is not None}}
    unknown = sorted(set(values) - set(PARAMETERS_BY_NAME))
    if unknown:
        raise ValueError(f"unknown detector parameters: {', '.join(unknown)}")
    msgtype = normalise_input_type(v["input_type"])
    labels_file = _optional_path(v["labels_file"])
    labels = load_labels(labels_file) if labels_file else tuple(v["labels"] or ())
    if v["window_event_count"]:
        window = WindowConfig.by_count(int(v["window_event_count"]), min_events=int(v["min_events"]))
    else:
        hop = float(v["window_hop_ms"]) or None
        window = WindowConfig.by_duration_ms(float(v["window_duration_ms"]), hop, min_events=int(v["min_events"]),
                                             max_events=int(v["max_window_events"]))
    pretrained = v["pretrained"].strip()
    spec = ModelSpec(
        arch=v["model"],
        pretrained=None if pretrained.lower() in ("", "none") else pretrained,
        checkpoint=_optional_path(v["checkpoint"]),
        device=v["device"],
        precision=v["precision"],
        backend=v["backend"],
        onnx=_optional_path(v["onnx_file"]),
        onnx_providers=v["onnx_providers"],
    )
    anomaly = AnomalyConfig(
        normal_prompts=tuple(v["anomaly_normal_prompts"]),
        abnormal_prompts=tuple(v["anomaly_abnormal_prompts"]),
        reference_file=_optional_path(v["anomaly_reference_file"]),
        threshold=float(v["anomaly_threshold"]),
    )
    try:
        extraction = ExtractionConfig(
            threshold=int(v["image_diff_threshold"]),
            stack=int(v["image_stack"]),
            clamp=float(v["image_clamp"]) or None,
            on_value=int(v["image_on_value"]),
        )
    except ValueError as exc:
        raise ValueError(f"image extraction parameters (image_*): {exc}") from None
    limits = StreamLimits(max_jump_us=round(float(v["max_time_jump_ms"]) * 1000),
                          max_width=int(v["max_sensor_size"]), max_height=int(v["max_sensor_size"]))
    try:
        noise = NoiseFilterConfig(
            background_activity_us=int(v["noise_background_activity_us"]),
            hot_pixel_learn_us=round(float(v["noise_hot_pixel_learn_ms"]) * 1000),
            hot_pixel_factor=float(v["noise_hot_pixel_factor"]),
            hot_pixel_min_count=int(v["noise_hot_pixel_min_count"]),
        )
    except ValueError as exc:
        raise ValueError(f"noise filter parameters (noise_*): {exc}") from None
    if v["mode"] == "zero_shot" and not labels:
        raise ValueError("mode zero_shot needs labels: set the labels parameter or labels_file")
    config = DetectorConfig(
        mode=v["mode"],
        labels=labels,
        templates=_templates(list(v["prompt_templates"])),
        window=window,
        top_k=int(v["top_k"]),
        score_threshold=float(v["score_threshold"]),
        anomaly=anomaly,
        model=spec,
        extraction=extraction,
        stream_limits=limits,
        noise=noise,
        frame_mode=v["frame_mode"],
    )
    return config, msgtype


def load_parameters_yaml(path: str | Path, node_name: str = NODE_NAME) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` (keys ``name``, ``/name``, ``/**/name`` or ``/**``) in a ROS parameter file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of node names to ros__parameters")
    for key in (node_name, f"/{node_name}", f"/**/{node_name}", "/**"):
        section = data.get(key)
        if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
            return dict(section["ros__parameters"])
    raise ValueError(f"{path}: no ros__parameters for {node_name!r}, '/**/{node_name}' or '/**'")
