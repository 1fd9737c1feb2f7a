"""launch/detector.launch.py: it imports and names what exists (where launch_ros is installed),
and otherwise its source declares the arguments and names the executable and files that exist."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "detector.launch.py"
ARGUMENTS = {"camera", "params_file", "use_sim_time", "device", "mode", "labels", "input_type", "image_topic"}


def console_scripts() -> dict[str, str]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "CONSOLE_SCRIPTS" for t in node.targets):
            entries = [e.value for e in node.value.elts]
            return dict(tuple(part.strip() for part in e.split("=")) for e in entries)
    raise AssertionError("setup.py has no CONSOLE_SCRIPTS")


def source_strings() -> set[str]:
    return {n.value for n in ast.walk(ast.parse(LAUNCH_FILE.read_text())) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_launch_file_names_an_existing_executable_and_files():
    strings = source_strings()
    scripts = console_scripts()
    assert "detector" in strings and scripts["detector"] == "event_clip_ros.ros.node:main"
    module, func = scripts["detector"].split(":")
    assert importlib.util.find_spec(module) is not None and func == "main"
    assert "event_clip_ros" in strings and (REPO / "resource" / "event_clip_ros").is_file()
    assert "/config/detector.yaml" in strings and (REPO / "config" / "detector.yaml").is_file()
    assert ARGUMENTS <= strings
    assert "~/events" in strings
    setup = (REPO / "setup.py").read_text()
    assert re.search(r'share/\{PACKAGE\}/launch.*launch/\*\.launch\.py', setup)
    assert re.search(r'share/\{PACKAGE\}/config.*config/\*\.yaml', setup)
    package_xml = (REPO / "package.xml").read_text()
    for dep in ("launch", "launch_ros", "lifecycle_msgs", "vision_msgs", "diagnostic_msgs"):
        assert f"<exec_depend>{dep}</exec_depend>" in package_xml


def test_launch_description_where_launch_ros_is_installed():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (PyPI ROS wheels lack it)")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("detector_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    context = LaunchContext()
    context.launch_configurations.update({"camera": "cam0", "params_file": str(REPO / "config" / "detector.yaml"),
                                          "use_sim_time": "false", "device": "cpu", "mode": "", "labels": "a, b"})
    (node,) = module.launch_setup(context)
    assert node.node_executable == "detector" and node.node_package == "event_clip_ros"
