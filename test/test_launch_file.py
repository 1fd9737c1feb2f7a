"""launch/detector.launch.py: it imports and names what exists (where launch_ros is installed),
and otherwise its source declares the arguments and names the executable and files that exist;
the README documents every argument. (Running it with ros2 launch: test/test_ros2_tools.py.)"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "detector.launch.py"
ARGUMENTS = {"camera", "cameras", "params_file", "checkpoint", "model", "pretrained", "labels", "mode", "device", "input_type",
             "image_topic", "use_sim_time", "log_level", "backend", "onnx_file", "fastdds_profile"}


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


def test_readme_documents_every_launch_argument():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Launch arguments"):]
    section = section[:section.index("\n## ")]
    missing = sorted(name for name in ARGUMENTS if f"`{name}`" not in section)
    assert not missing, f"README's launch section does not document {missing}"


def load_launch_module():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (PyPI ROS wheels lack it; "
                                             "scripts/setup_env.sh installs it from ../shared/ros2-tools)")
    spec = importlib.util.spec_from_file_location("detector_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_context(module, **arguments: str):
    """A LaunchContext with the declared defaults, then ``arguments`` (as ros2 launch sets them)."""
    from launch.actions import DeclareLaunchArgument

    from launch import LaunchContext

    context = LaunchContext()
    for entity in module.generate_launch_description().entities:
        if isinstance(entity, DeclareLaunchArgument):
            context.launch_configurations[entity.name] = entity.default_value[0].perform(context) \
                if entity.default_value else ""
    context.launch_configurations.update(arguments)
    return context


def test_launch_description_where_launch_ros_is_installed():
    module = load_launch_module()
    from launch.actions import DeclareLaunchArgument

    description = module.generate_launch_description()
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    # Only some configurations set (an including launch file that passes a few): the others count as empty.
    from launch import LaunchContext

    context = LaunchContext()
    context.launch_configurations.update({"camera": "cam0", "params_file": str(REPO / "config" / "detector.yaml"),
                                          "use_sim_time": "false", "device": "cpu", "mode": "", "labels": "a, b"})
    (node,) = module.launch_setup(context)
    assert node.node_executable == "detector" and node.node_package == "event_clip_ros"


def test_parameters_overlay_package_defaults_then_params_file_then_arguments(tmp_path, monkeypatch):
    module = load_launch_module()
    monkeypatch.chdir(tmp_path)
    share = module.package_share(launch_context(module))
    defaults = share + "/config/detector.yaml"
    assert Path(defaults).is_file()

    assert module.node_parameters(launch_context(module)) == [defaults]  # nothing given: the package's file only
    user = tmp_path / "mine.yaml"
    user.write_text("/**/detector:\n  ros__parameters:\n    min_events: 10\n")
    params = module.node_parameters(launch_context(
        module, params_file=str(user), checkpoint="event_clip_toy48.safetensors", labels=" cat, dog ,",
        device="cpu", use_sim_time="true"))
    assert params[:2] == [defaults, str(user)]  # the user's file over the package's
    overrides = params[2]
    assert overrides["checkpoint"] == share + "/models/event_clip_toy48.safetensors"  # a shipped model by name
    assert Path(overrides["checkpoint"]).resolve() == (REPO / "models" / "event_clip_toy48.safetensors").resolve()
    assert overrides["labels"] == ["cat", "dog"] and overrides["device"] == "cpu" and overrides["use_sim_time"] is True
    assert "mode" not in overrides and "input_type" not in overrides  # empty arguments leave the files' values

    local = tmp_path / "local.safetensors"
    local.write_bytes(b"")
    assert module.node_parameters(launch_context(module, checkpoint="local.safetensors"))[1]["checkpoint"] == str(local)
    (tmp_path / "local.onnx").write_bytes(b"")  # the ONNX backend: its file found like a checkpoint
    assert module.node_parameters(launch_context(module, backend="onnxruntime", onnx_file="local.onnx"))[1] == {
        "backend": "onnxruntime", "onnx_file": str(tmp_path / "local.onnx")}
    # model/pretrained given here drop a checkpoint set in a file
    assert module.node_parameters(launch_context(module, model="ViT-B-32", pretrained="openai"))[1] == {
        "model": "ViT-B-32", "pretrained": "openai", "checkpoint": ""}
    # a file name in the package's config/ (the toy model's settings)
    assert module.node_parameters(launch_context(module, params_file="toy_glyphs.yaml")) == \
        [defaults, share + "/config/toy_glyphs.yaml"]
    with pytest.raises(RuntimeError, match="params_file .*missing.yaml does not exist"):
        module.node_parameters(launch_context(module, params_file=str(tmp_path / "missing.yaml")))


def test_fastdds_profile_sets_the_nodes_profiles_file(tmp_path, monkeypatch):
    """fastdds_profile: a shipped profile by name or an XML path, in the node's environment only; empty: nothing."""
    module = load_launch_module()
    monkeypatch.chdir(tmp_path)
    share = module.package_share(launch_context(module))
    assert module.fastdds_environment(launch_context(module)) == {}
    for name, file in module.FASTDDS_PROFILES.items():
        env = module.fastdds_environment(launch_context(module, fastdds_profile=name))
        assert env == {"FASTDDS_DEFAULT_PROFILES_FILE": f"{share}/config/{file}"} and Path(env[
            "FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    assert module.fastdds_environment(launch_context(module, fastdds_profile="mine.xml")) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(mine)}
    with pytest.raises(RuntimeError, match="fastdds_profile .*missing.xml does not exist"):
        module.fastdds_environment(launch_context(module, fastdds_profile="missing.xml"))
    assert module.node_options(launch_context(module, fastdds_profile="realtime"))["additional_env"] == {
        "FASTDDS_DEFAULT_PROFILES_FILE": f"{share}/config/fastdds_realtime.xml"}
    assert module.node_options(launch_context(module))["additional_env"] is None  # the environment's, untouched
    (node,) = module.launch_setup(launch_context(module, fastdds_profile="realtime"))  # launch_ros takes it


def test_cameras_make_one_node_with_an_input_per_camera():
    module = load_launch_module()
    overrides = module.node_parameters(launch_context(module, cameras=" left, /right/ ,"))[-1]
    assert overrides == {"inputs": ["left", "right"], "left.topic": "/left/events", "right.topic": "/right/events"}
    images = module.node_parameters(launch_context(module, cameras="rgb", input_type="sensor_msgs/msg/Image"))[-1]
    assert images["inputs"] == ["rgb"] and images["rgb.topic"] == "/rgb/image_raw"


def test_node_options_remap_the_camera_topics_and_pass_the_log_level():
    module = load_launch_module()
    options = module.node_options(launch_context(module, camera="/cam1/", input_type="sensor_msgs/msg/Image",
                                                 log_level="debug"))
    assert (options["package"], options["executable"], options["name"], options["namespace"]) == \
           ("event_clip_ros", "detector", "detector", "cam1")
    assert dict(options["remappings"]) == {"~/events": "/cam1/events", "~/image": "/cam1/image_raw"}
    assert options["ros_arguments"] == ["--log-level", "debug"]
    assert options["parameters"][-1] == {"input_type": "sensor_msgs/msg/Image"}
    default = module.node_options(launch_context(module, image_topic="/rgb/image"))
    assert default["namespace"] == "event_camera" and default["ros_arguments"] is None
    assert dict(default["remappings"])["~/image"] == "/rgb/image"
