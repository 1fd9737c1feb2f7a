"""The detector node's inputs: one camera (the default) or a list of named cameras, from parameters (ROS-free).

One camera (``inputs`` unset or empty): the input is ``~/events`` (``~/image``
for sensor_msgs/msg/Image) and the results go to ``~/classification`` (or
``~/anomaly``), ``~/frame``, ``~/label_info``, ``~/vision_info``, exactly as
the node's parameters say.

Several cameras: ``inputs: [cam0, cam1]`` names them, and each name has its own
parameters ``<name>.<key>`` (in a parameter file, a mapping under the name):

=====================  ===================================================================
``<name>.topic``       input topic; empty: ``~/<name>/events`` (``~/<name>/image`` for images)
``<name>.input_type``  its message type; empty: the node's ``input_type``
``<name>.mode``        zero_shot or anomaly; empty: the node's ``mode``
``<name>.labels``      its zero-shot labels [runtime]; unset: the node's ``labels``/``labels_file``
``<name>.labels_file`` its labels file [runtime]; wins over ``<name>.labels``
=====================  ===================================================================

Everything else (model, windows, prompts, thresholds, anomaly prompts) is the
node's, shared by all inputs; each input's results go to ``~/<name>/classification``
(or ``~/<name>/anomaly``), ``~/<name>/frame``, ``~/<name>/label_info`` and
``~/<name>/vision_info``, stamped with that camera's own frame_id and times.
Each input is validated as a whole node configuration would be
(:func:`~event_clip_ros.apps.detector_params.config_from_parameters`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .detector_config import DetectorConfig
from .detector_params import ParamSpec, config_from_parameters, defaults
from .event_input import IMAGE_MSGTYPE
from .inference_queue import QueueConfig

#: The parameters of each named input, ``<name>.<spec.name>``; defaults are "take the node's".
INPUT_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("topic", "", "input topic (relative names resolve in the node's namespace); empty: ~/<name>/events, "
                           "or ~/<name>/image for sensor_msgs/msg/Image"),
    ParamSpec("input_type", "", "message type of this input (see input_type); empty: the node's input_type"),
    ParamSpec("mode", "", "zero_shot or anomaly for this input; empty: the node's mode"),
    ParamSpec("labels", None, "zero-shot labels of this input; unset: the node's labels / labels_file", runtime=True),
    ParamSpec("labels_file", "", "labels file of this input (wins over its labels); empty: see labels", runtime=True),
)
INPUT_RUNTIME_PARAMETERS = frozenset(p.name for p in INPUT_PARAMETERS if p.runtime)
#: Input names: ROS name tokens (they become topic names and parameter prefixes).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class InputSpec:
    """One input of the node: where it reads, what it reads, how its windows are classified."""

    name: str  #: "" for the single default input
    topic: str
    msgtype: str  #: an event message type or sensor_msgs/msg/Image
    config: DetectorConfig

    def output(self, leaf: str) -> str:
        """The private topic of this input's ``leaf`` output: ``~/leaf``, or ``~/<name>/leaf``."""
        return f"~/{self.name}/{leaf}" if self.name else f"~/{leaf}"


def input_names(value: Any) -> tuple[str, ...]:
    """The ``inputs`` parameter as validated names; () for one default input (unset or empty)."""
    names = tuple(value or ())
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"inputs: {name!r} is not a valid input name (a letter, then letters, digits or _)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"inputs: {', '.join(duplicates)} named more than once")
    return names


def input_parameter_names(name: str) -> tuple[str, ...]:
    """The full parameter names of input ``name``."""
    return tuple(f"{name}.{spec.name}" for spec in INPUT_PARAMETERS)


def _input_values(node_values: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The node's parameter values with an input's own settings applied (unset ones keep the node's)."""
    values = dict(node_values)
    for key in ("input_type", "mode"):
        if (own.get(key) or "").strip():
            values[key] = own[key].strip()
    if (own.get("labels_file") or "").strip():
        values["labels_file"] = own["labels_file"]
    elif own.get("labels"):
        values["labels"], values["labels_file"] = list(own["labels"]), ""
    return values


def input_specs(node_values: Mapping[str, Any],
                input_values: Mapping[str, Mapping[str, Any]] | None = None) -> list[InputSpec]:
    """The node's inputs from its parameter values and each named input's (``input_values[name][key]``).

    ValueError naming the input and parameter for an invalid value.
    """
    names = input_names(node_values.get("inputs"))
    if not names:
        config, msgtype = config_from_parameters(node_values)
        return [InputSpec("", "~/image" if msgtype == IMAGE_MSGTYPE else "~/events", msgtype, config)]
    input_values = input_values or {}
    unknown = sorted(set(input_values) - set(names))
    if unknown:
        raise ValueError(f"parameters for {', '.join(unknown)}, which inputs does not name")
    specs = []
    for name in names:
        own = input_values.get(name, {})
        try:
            config, msgtype = config_from_parameters(_input_values(node_values, own))
        except ValueError as exc:
            raise ValueError(f"input {name}: {exc}") from None
        leaf = "image" if msgtype == IMAGE_MSGTYPE else "events"
        topic = (own.get("topic") or "").strip() or f"~/{name}/{leaf}"
        specs.append(InputSpec(name, topic, msgtype, config))
    return specs


def narrow_to_input(values: Mapping[str, Any], name: str | None) -> tuple[dict[str, Any], str | None]:
    """One camera's parameters out of a parameter file's ``values`` (``inputs`` and each input's settings nested
    under its name, as ``load_parameters_yaml`` reads them), for tools that run one input (bag evaluation).

    Returns the node's values with input ``name``'s own settings applied, and its topic (None when it has none, or
    a private ``~/`` one). A one-camera file (no ``inputs``) comes back as it is, with no topic. ValueError: a file of
    several cameras without ``name``, or a ``name`` it does not list.
    """
    names = input_names(values.get("inputs"))
    if not names:
        if name is not None:
            raise ValueError(f"camera {name!r}: the parameter file configures one camera (no inputs list)")
        return dict(values), None
    if name is None:
        raise ValueError(f"the parameter file configures {len(names)} cameras ({', '.join(names)}): choose one")
    if name not in names:
        raise ValueError(f"camera {name!r}: the parameter file's inputs are {', '.join(names)}")
    own = values.get(name) or {}
    if not isinstance(own, Mapping):
        raise ValueError(f"input {name}: expected a mapping of its parameters, got {own!r}")
    node_values = {key: value for key, value in values.items() if key != "inputs" and key not in names}
    topic = str(own.get("topic") or "").strip()
    return _input_values(node_values, own), (topic if topic and not topic.startswith("~") else None)


def queue_config(node_values: Mapping[str, Any]) -> QueueConfig:
    """The inference queue's settings from the node's parameters (batch_max_windows, queue_max_*)."""
    v = {**defaults(), **{k: val for k, val in node_values.items() if val is not None}}
    return QueueConfig(max_batch=int(v["batch_max_windows"]), max_age_us=round(float(v["queue_max_age_ms"]) * 1000),
                       max_windows=int(v["queue_max_windows"]))
