"""Start the event_clip_ros detector node on an event camera's topic.

    ros2 launch event_clip_ros detector.launch.py camera:=event_camera labels:="cat,dog,person"
    ros2 launch event_clip_ros detector.launch.py checkpoint:=event_clip_toy48.safetensors params_file:=toy_glyphs.yaml
    ros2 launch event_clip_ros detector.launch.py camera:=cam checkpoint:=my_model.safetensors \\
        labels:="person,car" params_file:=my_detector.yaml
    ros2 launch event_clip_ros detector.launch.py camera:=camera input_type:=sensor_msgs/msg/Image
    ros2 launch event_clip_ros detector.launch.py camera:=perception cameras:=left,right labels:="person,car"
    ros2 launch event_clip_ros detector.launch.py camera:=perception params_file:=two_cameras.yaml
    ros2 launch event_clip_ros detector.launch.py checkpoint:=my_model.safetensors backend:=onnxruntime \\
        onnx_file:=my_model.onnx labels:="person,car"
    ros2 launch event_clip_ros detector.launch.py camera:=event_camera fastdds_profile:=realtime

The node runs in the camera's namespace (/<camera>/detector), subscribes to
/<camera>/events (the metavision/libcaer drivers' topic) or, with
input_type sensor_msgs/msg/Image, to image_topic (default /<camera>/image_raw)
through the frame-difference extraction, and configures and activates itself
(parameter autostart in config/detector.yaml). With cameras (or a parameter file
setting inputs, e.g. config/two_cameras.yaml) one node serves several cameras:
input <name> reads /<name>/events (/<name>/image_raw for images) and publishes
on /<camera>/detector/<name>/classification; one model, one batching worker.

Parameters, later ones winning: the package's config/detector.yaml (every
parameter's default), then params_file (it needs to set only what it changes),
then the arguments below that are not empty. `ros2 launch event_clip_ros
detector.launch.py --show-args` lists them.

Stopping: Ctrl-C (SIGINT) as usual. SIGTERM to the launch process (`kill`, systemd,
`docker stop`) shuts down the same way here: upstream ros2 launch would exit at once
and leave the node running (see sigterm_shuts_down_like_sigint).
"""

import os
import signal
import threading

import launch.logging
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

PACKAGE = "event_clip_ros"
EXECUTABLE = "detector"
DEFAULTS_FILE = "/config/detector.yaml"

#: (name, default, description, choices or None). Empty values leave the parameter files' value.
ARGUMENTS = (
    ("camera", "event_camera", "camera namespace: the node is /<camera>/detector and reads /<camera>/events", None),
    ("cameras", "", "several cameras in one node: comma-separated input names, e.g. 'left,right'; input <name> "
                    "reads /<name>/events (/<name>/image_raw with input_type sensor_msgs/msg/Image) and publishes "
                    "on /<camera>/detector/<name>/... (empty: one camera, or the parameter files' inputs)", None),
    ("params_file", "", "parameter file overlaid on the package's config/detector.yaml: it sets only what it "
                        "changes (keys /**/detector or /**); a path, or a file name in the package's config/ "
                        "folder, e.g. toy_glyphs.yaml (the toy model's settings)", None),
    ("checkpoint", "", "event encoder checkpoint: a path (.safetensors, or the paper's vitb.pt/vitl.pt), or a "
                       "file name in the package's models/ folder, e.g. event_clip_toy48.safetensors "
                       "(empty: the parameter files'; they ship none, i.e. model/pretrained)", None),
    ("model", "", "open_clip architecture, e.g. ViT-B-32, used without a checkpoint (empty: the parameter files'; "
                  "model or pretrained given here also drops a checkpoint of the parameter files)", None),
    ("pretrained", "", "open_clip pretrained tag (openai) or CLIP weights file, used without a checkpoint "
                       "(empty: the parameter files')", None),
    ("backend", "", "what runs the event encoder: torch | onnxruntime (with onnx_file) (empty: the parameter "
                    "files', torch)", ["", "torch", "onnxruntime"]),
    ("onnx_file", "", "the event encoder of the model exported by event-clip export --onnx: a path, or a file name in "
                      "the package's models/ folder (empty: the parameter files')", None),
    ("labels", "", "comma-separated zero-shot labels, e.g. 'cat,dog' (empty: the parameter files')", None),
    ("mode", "", "zero_shot | anomaly (empty: the parameter files')", ["", "zero_shot", "anomaly"]),
    ("device", "", "auto | cpu | cuda | cuda:N (empty: the parameter files')", None),
    ("input_type", "", "input message type: event_camera_msgs/msg/EventPacket, dvs_msgs/msg/EventArray, "
                       "prophesee_event_msgs/msg/EventArray, dv_ros2_msgs/msg/EventArray, or sensor_msgs/msg/Image "
                       "for an RGB camera (empty: the parameter files', EventPacket)", None),
    ("image_topic", "", "image input topic with input_type sensor_msgs/msg/Image (empty: /<camera>/image_raw)", None),
    ("use_sim_time", "", "true: use /clock (bag playback with --clock) (empty: the parameter files', false)",
     ["", "true", "false"]),
    ("log_level", "", "the node's log level: debug | info | warn | error | fatal (empty: info)",
     ["", "debug", "info", "warn", "error", "fatal"]),
    ("fastdds_profile", "", "Fast DDS profile of the node's process (FASTDDS_DEFAULT_PROFILES_FILE): realtime "
                            "(reception threads at SCHED_FIFO, against packet loss on a busy machine), large_shm "
                            "(a 64 MiB shared-memory segment; give it to the driver too), or an XML file's path "
                            "(empty: the environment's)", None),
)
#: Fast DDS profiles shipped in the package's config/ folder, by the name fastdds_profile takes.
FASTDDS_PROFILES = {"realtime": "fastdds_realtime.xml", "large_shm": "fastdds_large_shm.xml"}
ARGUMENT_NAMES = tuple(name for name, *_ in ARGUMENTS)


def argument(context, name: str) -> str:
    """The argument's value, stripped ('' when it was not declared, e.g. the file included without its arguments)."""
    return LaunchConfiguration(name, default="").perform(context).strip()


def package_share(context) -> str:
    """share/event_clip_ros of the install (ament index), or the folder above this file (a source checkout)."""
    try:
        return FindPackageShare(PACKAGE).perform(context)
    except Exception:  # not in the ament index: AMENT_PREFIX_PATH unset, or run from the sources
        return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def resolve_path(value: str, share: str, folder: str) -> str:
    """An absolute path for ``value``: as given (from the current directory), else under <share>/<folder> or <share>."""
    path = os.path.expanduser(value)
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    for candidate in (os.path.join(share, folder, path), os.path.join(share, path)):
        if os.path.exists(candidate):
            return candidate
    return os.path.abspath(path)  # missing: configure fails and says which file


def node_parameters(context) -> list:
    """The node's parameters, later entries winning: package YAML, params_file, the non-empty arguments."""
    share = package_share(context)
    files = [share + DEFAULTS_FILE]
    params_file = argument(context, "params_file")
    if params_file:
        params_file = resolve_path(params_file, share, "config")
        if not os.path.isfile(params_file):
            raise RuntimeError(f"params_file {params_file} does not exist")
        files.append(params_file)
    overrides = {}
    for name in ("device", "mode", "input_type", "model", "pretrained", "backend"):
        value = argument(context, name)
        if value:
            overrides[name] = value
    onnx_file = argument(context, "onnx_file")
    if onnx_file:
        overrides["onnx_file"] = resolve_path(onnx_file, share, "models")
    checkpoint = argument(context, "checkpoint")
    if checkpoint:
        overrides["checkpoint"] = resolve_path(checkpoint, share, "models")
    elif "model" in overrides or "pretrained" in overrides:
        overrides["checkpoint"] = ""  # the architecture asked for here beats a checkpoint in a file
    use_sim_time = argument(context, "use_sim_time").lower()
    if use_sim_time:
        overrides["use_sim_time"] = use_sim_time == "true"
    labels = [label.strip() for label in argument(context, "labels").split(",") if label.strip()]
    if labels:
        overrides["labels"] = labels
    cameras = [name.strip().strip("/") for name in argument(context, "cameras").split(",") if name.strip()]
    if cameras:
        leaf = "image_raw" if overrides.get("input_type", "").endswith("/Image") else "events"
        overrides["inputs"] = cameras
        overrides.update({f"{name}.topic": f"/{name}/{leaf}" for name in cameras})
    return [*files, overrides] if overrides else files


def fastdds_environment(context) -> dict:
    """FASTDDS_DEFAULT_PROFILES_FILE for the node's process when fastdds_profile names a profile ({} when empty)."""
    value = argument(context, "fastdds_profile")
    if not value:
        return {}
    share = package_share(context)
    path = os.path.join(share, "config", FASTDDS_PROFILES[value]) if value in FASTDDS_PROFILES else \
        resolve_path(value, share, "config")
    if not os.path.isfile(path):
        raise RuntimeError(f"fastdds_profile {path} does not exist (shipped: {', '.join(FASTDDS_PROFILES)})")
    return {"FASTDDS_DEFAULT_PROFILES_FILE": path}


def sigterm_shuts_down_like_sigint() -> None:
    """Make SIGTERM to the launch process shut the launch down as Ctrl-C does.

    launch (3.7) dispatches signals through its AsyncSafeSignalManager, but a SIGTERM only
    reaches it when Python has a handler for SIGTERM, which nothing installs: the launch
    process dies at once and its processes are orphaned (and its own SIGTERM handler, when
    reached, cancels the run without stopping them). Here SIGTERM gets launch's SIGINT
    handler (SIGINT to every process, then SIGTERM/SIGKILL after the usual timeouts) and a
    Python handler, so the signal arrives. Handlers of the launch process are not inherited
    by the processes it starts. Where launch's internals differ nothing changes.
    """
    try:
        from launch.utilities.signal_management import AsyncSafeSignalManager

        manager = getattr(AsyncSafeSignalManager, "_AsyncSafeSignalManager__current", None)
        if manager is None or threading.current_thread() is not threading.main_thread():
            return
        on_sigint = manager.handle(signal.SIGINT, None)  # read it: handle() returns the previous handler
        manager.handle(signal.SIGINT, on_sigint)
        if on_sigint is None:
            return
        log = launch.logging.get_logger("launch")

        def on_sigterm(signum):
            log.warning("SIGTERM: shutting down as on ctrl-c")
            on_sigint(signal.SIGINT)

        manager.handle(signal.SIGTERM, on_sigterm)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, lambda signum, frame: None)  # launch's wakeup fd now gets SIGTERM
    except Exception:  # launch's internals changed: keep its behaviour
        pass


def node_options(context) -> dict:
    """The keyword arguments of the detector's launch_ros Node."""
    camera = (argument(context, "camera") or "event_camera").strip("/")
    image_topic = argument(context, "image_topic") or f"/{camera}/image_raw"
    log_level = argument(context, "log_level")
    return dict(
        package=PACKAGE,
        executable=EXECUTABLE,
        name="detector",
        namespace=camera,
        parameters=node_parameters(context),
        remappings=[("~/events", f"/{camera}/events"), ("~/image", image_topic)],
        ros_arguments=["--log-level", log_level] if log_level else None,
        additional_env=fastdds_environment(context) or None,
        output="screen",
        emulate_tty=True,
    )


def launch_setup(context, *args, **kwargs):
    sigterm_shuts_down_like_sigint()
    return [Node(**node_options(context))]


def generate_launch_description():
    declared = []
    for name, default, description, choices in ARGUMENTS:
        extra = {"choices": choices} if choices else {}
        declared.append(DeclareLaunchArgument(name, default_value=default, description=description, **extra))
    return LaunchDescription([*declared, OpaqueFunction(function=launch_setup)])
