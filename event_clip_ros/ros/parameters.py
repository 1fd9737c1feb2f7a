"""Declare the detector's parameters (tables in :mod:`event_clip_ros.apps.detector_params` and, for each named
input, :mod:`event_clip_ros.apps.detector_inputs`) on a node."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..apps.detector_inputs import INPUT_PARAMETERS
from ..apps.detector_params import PARAMETERS, ParamSpec


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The spec's description (with when a change applies), range and read-only flag."""
    when = "applies at once" if spec.runtime else ("fixed at start-up" if spec.read_only else "applies at configure")
    desc = ParameterDescriptor(description=f"{spec.description} [{when}]", read_only=spec.read_only)
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return desc


def _declare(node: Node, name: str, spec: ParamSpec) -> None:
    default = Parameter.Type.STRING_ARRAY if spec.default is None else spec.default
    node.declare_parameter(name, default, descriptor(spec))


def declare_parameters(node: Node) -> None:
    """Declare every detector parameter (string arrays without a default are declared by type)."""
    for spec in PARAMETERS:
        _declare(node, spec.name, spec)


def declare_input_parameters(node: Node, names: tuple[str, ...]) -> None:
    """Declare ``<name>.<key>`` for each named input (``inputs``)."""
    for name in names:
        for spec in INPUT_PARAMETERS:
            _declare(node, f"{name}.{spec.name}", spec)


def parameter_values(node: Node, overrides: list[Parameter] | None = None) -> dict[str, Any]:
    """Current values of the detector parameters, with ``overrides`` (a pending change) applied; None for a
    parameter declared by type only and never set (e.g. labels in anomaly mode)."""
    values = {spec.name: _value(node, spec.name) for spec in PARAMETERS}
    for p in overrides or []:
        if p.name in values:
            values[p.name] = p.value
    return values


def input_parameter_values(node: Node, names: tuple[str, ...],
                           overrides: list[Parameter] | None = None) -> dict[str, dict[str, Any]]:
    """``{input name: {key: value}}`` of the named inputs' parameters, with ``overrides`` applied."""
    pending = {p.name: p.value for p in overrides or []}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values = {}
        for spec in INPUT_PARAMETERS:
            full = f"{name}.{spec.name}"
            values[spec.name] = pending[full] if full in pending else _value(node, full)
        out[name] = values
    return out


def _value(node: Node, name: str) -> Any:
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None
