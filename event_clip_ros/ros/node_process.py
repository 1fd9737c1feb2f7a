"""A detector node in a subprocess: start it, wait until it takes input, stop it.

Before playing into a detector node it starts itself, a tool calls :func:`wait_connected`: it
publishes an event-free probe (:func:`probe_message`: same encoding, size and seq as the first
message, so it changes no window and no lost-packet count) until the node's /diagnostics count a
packet, which proves the node's side has matched too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from ..events.ros_cdr import EVENT_PACKET_TYPES, encode_event_array, encode_event_packet, parse_event_array, parse_event_packet
from ..events.types import empty_events
from .interfaces import status_name
from .session import ReplayError, RosSession


class NodeWatch:
    """The ``packets`` counter (all inputs) a detector node reports on /diagnostics."""

    def __init__(self, node: Node, node_fqn: str) -> None:
        self.packets = 0
        self._name = status_name(node_fqn)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == self._name:
                self.packets = int({kv.key: kv.value for kv in status.values}.get("packets", "0"))


def wait_connected(session: RosSession, publisher, probe: Any, watch: NodeWatch, deadline_s: float,
                   process: subprocess.Popen | None = None) -> None:
    """Publish ``probe`` until the node has counted a packet; ReplayError when it exits or time runs out."""
    while watch.packets == 0:
        if process is not None and process.poll() is not None:
            raise ReplayError(f"the detector node exited with {process.returncode}")
        if time.monotonic() > deadline_s:
            raise ReplayError("the detector node did not become active in time")
        if publisher.get_subscription_count():
            publisher.publish(probe)
        session.spin_once(0.05)


def probe_message(msgtype: str, first_raw: bytes) -> bytes:
    """An event-free message of ``msgtype`` that continues the stream of ``first_raw`` unchanged."""
    if msgtype in EVENT_PACKET_TYPES:
        packet = parse_event_packet(first_raw)
        return encode_event_packet(b"", encoding=packet.encoding, width=packet.width, height=packet.height, seq=packet.seq,
                                   time_base_ns=packet.time_base_ns, stamp_ns=packet.stamp_ns, frame_id=packet.frame_id)
    array = parse_event_array(first_raw)
    return encode_event_array(empty_events(), array.width, array.height, stamp_ns=array.stamp_ns, frame_id=array.frame_id)


def start_detector_node(namespace: str, parameters: dict[str, Any]) -> subprocess.Popen:
    """The detector node (``python -m event_clip_ros.ros.node``) in namespace ``/namespace`` with these parameters."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="detector_params_", delete=False) as f:
        yaml.safe_dump({"/**": {"ros__parameters": parameters}}, f)
    cmd = [sys.executable, "-m", "event_clip_ros.ros.node", "--ros-args", "-r", f"__ns:=/{namespace}",
           "--params-file", f.name]
    proc = subprocess.Popen(cmd)
    proc.params_file = f.name  # type: ignore[attr-defined]  # removed by stop_process
    return proc


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGINT (clean shutdown), then kill if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    params = getattr(proc, "params_file", None)
    if params:
        Path(params).unlink(missing_ok=True)
