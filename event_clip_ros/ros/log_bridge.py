"""Python logging of the core (decoders, readers, windows, model) into a node's rclpy logger.

The ROS-free layers log through Python's :mod:`logging` under the ``event_clip_ros``
logger (bad input is logged once per kind and counted). In the node those records
must reach the node's rclpy logger, i.e. ``/rosout`` and the ``ros2 launch`` output
under the node's name: :func:`forward_core_logging` attaches a
:class:`RclpyLogHandler` to that logger for as long as the node runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

#: The Python logger every module of the package logs under (``event_clip_ros.events``, ...).
CORE_LOGGER = "event_clip_ros"


class RclpyLogHandler(logging.Handler):
    """Forwards each record to an rclpy logger at the matching severity, naming the Python logger."""

    def __init__(self, rclpy_logger) -> None:
        super().__init__()
        self._logger = rclpy_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {self.format(record)}"
            level = record.levelno
            if level >= logging.CRITICAL:
                self._logger.fatal(text)
            elif level >= logging.ERROR:
                self._logger.error(text)
            elif level >= logging.WARNING:
                self._logger.warning(text)
            elif level >= logging.INFO:
                self._logger.info(text)
            else:
                self._logger.debug(text)
        except Exception:  # a logging failure must never break the data path
            self.handleError(record)


def forward_core_logging(rclpy_logger, name: str = CORE_LOGGER) -> Callable[[], None]:
    """Send the records of Python logger ``name`` (and its children) to ``rclpy_logger``; returns the undo.

    While attached the Python logger passes what the rclpy logger would show (its effective
    severity, e.g. DEBUG with ``--log-level debug``) and does not propagate to the root logger,
    so nothing is printed twice.
    """
    logger = logging.getLogger(name)
    handler = RclpyLogHandler(rclpy_logger)
    saved = (logger.level, logger.propagate)
    try:
        severity = int(rclpy_logger.get_effective_level())  # rcutils severities use logging's numbers
    except Exception:
        severity = logging.INFO
    logger.setLevel(max(logging.DEBUG, min(severity, logging.CRITICAL)) if severity else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)

    def detach() -> None:
        if handler in logger.handlers:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

    return detach
