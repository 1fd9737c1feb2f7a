"""The ROS 2 adapter: the only subpackage that imports rclpy.

It subscribes, hands windows to the pipeline in :mod:`event_clip_ros.apps.detector`
and publishes what comes back; the decoding, windowing and model maths live there.
"""
