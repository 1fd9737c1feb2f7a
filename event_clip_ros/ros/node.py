"""Entry point of the ``detector`` node: ``ros2 run event_clip_ros detector``, the launch file, ``python -m``.

The node itself is :class:`~event_clip_ros.ros.detector_node.DetectorNode` (topics,
parameters, lifecycle: see that module); ``DetectorNode`` and ``IMAGE_QOS`` are also
importable from here.

Shutdown on SIGINT (Ctrl-C) and SIGTERM, once or repeatedly, from a terminal or from
``ros2 launch`` (which forwards SIGINT, so a Ctrl-C in a terminal reaches the node twice):
:func:`main` installs its own handlers before the slow imports (torch, open_clip) and
instead of rclpy's (which shut the context down at once, so the last results could not
be published, and re-raise KeyboardInterrupt at the next signal). A signal only records
the request; the spin loop ends within ``SPIN_PERIOD_S``, the node finishes
(:meth:`~event_clip_ros.ros.detector_node.DetectorNode.finish`: no new input, the windows
in hand published), and the process exits with status 0 and no traceback. Further
signals during that (and while the interpreter exits) are ignored.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

#: Longest wait of the executor before it looks at a shutdown request again, s.
SPIN_PERIOD_S = 0.1


class ShutdownSignals:
    """SIGINT/SIGTERM handlers that only record the request (no KeyboardInterrupt, no default exit)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.received: list[str] = []  #: names of the signals received, in order

    def install(self) -> None:
        """Install the handlers (main thread only)."""
        for signum in self.SIGNALS:
            signal.signal(signum, self._handle)

    def ignore(self) -> None:
        """From now on ignore the signals at the OS level: Python's own finalization puts the default
        disposition back for signals with Python handlers, so a signal arriving while the interpreter
        exits would end the process with -SIGINT/-SIGTERM instead of 0."""
        for signum in self.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        self.requested.set()

    def __bool__(self) -> bool:
        return self.requested.is_set()


def main(args: list[str] | None = None) -> int:
    """Console script ``detector``: run the node until SIGINT/SIGTERM or an external shutdown; returns 0."""
    signals = ShutdownSignals()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        signals.install()
    try:
        return _run(args, signals)
    finally:
        if in_main_thread:
            signals.ignore()  # the process ends after main(): nothing may interrupt the shutdown


def _run(args: list[str] | None, signals: ShutdownSignals) -> int:
    # lazy: rclpy and torch load after the signal handlers are in place, so an early Ctrl-C ends cleanly
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from .detector_node import DetectorNode  # torch, open_clip: seconds

    if signals:  # interrupted while starting: nothing to shut down
        return 0
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = executor = None
    try:
        node = DetectorNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        if node.get_parameter("autostart").value and not signals:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS and not signals:
                node.trigger_activate()
        while not signals and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        if signals:
            node.get_logger().info(f"{signals.received[0]}: shutting down")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.finish()
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def __getattr__(name: str) -> Any:
    """``DetectorNode`` and ``IMAGE_QOS`` from :mod:`.detector_node`, imported on first use (keeps ``main`` light)."""
    if name in ("DetectorNode", "IMAGE_QOS"):
        from . import detector_node

        return getattr(detector_node, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
