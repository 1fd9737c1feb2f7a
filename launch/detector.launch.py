"""Start the event_clip_ros detector node on an event camera's topic.

    ros2 launch event_clip_ros detector.launch.py camera:=event_camera labels:="cat,dog,person"
    ros2 launch event_clip_ros detector.launch.py camera:=camera input_type:=sensor_msgs/msg/Image

The node runs in the camera's namespace (/<camera>/detector), subscribes to
/<camera>/events (the metavision/libcaer drivers' topic) or, with
input_type sensor_msgs/msg/Image, to image_topic (default /<camera>/image_raw)
through the frame-difference extraction, and configures and activates itself
(parameter autostart in config/detector.yaml). Arguments left empty keep the
value of the params file (whose input_type is EventPacket).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "event_clip_ros"
EXECUTABLE = "detector"


def launch_setup(context, *args, **kwargs):
    camera = LaunchConfiguration("camera").perform(context).strip("/")
    params_file = LaunchConfiguration("params_file").perform(context)
    if not params_file:
        params_file = FindPackageShare(PACKAGE).perform(context) + "/config/detector.yaml"
    overrides = {"use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")}
    for name in ("device", "mode", "input_type"):
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            overrides[name] = value
    image_topic = LaunchConfiguration("image_topic").perform(context).strip() or f"/{camera}/image_raw"
    labels = [label.strip() for label in LaunchConfiguration("labels").perform(context).split(",") if label.strip()]
    if labels:
        overrides["labels"] = labels
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name="detector",
            namespace=camera,
            parameters=[params_file, overrides],
            remappings=[("~/events", f"/{camera}/events"), ("~/image", image_topic)],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="event_camera",
                              description="camera namespace: events come from /<camera>/events"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="detector parameter file (default: the package's config/detector.yaml)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="use /clock (bag playback with --clock)"),
        DeclareLaunchArgument("device", default_value="", description="auto | cpu | cuda | cuda:N (empty: params file)"),
        DeclareLaunchArgument("mode", default_value="", choices=["", "zero_shot", "anomaly"],
                              description="zero_shot | anomaly (empty: params file)"),
        DeclareLaunchArgument("labels", default_value="",
                              description="comma-separated labels, e.g. 'cat,dog' (empty: params file)"),
        DeclareLaunchArgument("input_type", default_value="",
                              description="event message type, e.g. event_camera_msgs/msg/EventPacket, or "
                                          "sensor_msgs/msg/Image for an RGB camera (empty: params file, EventPacket)"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="image input topic (empty: /<camera>/image_raw)"),
        OpaqueFunction(function=launch_setup),
    ])
