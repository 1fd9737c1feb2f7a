"""Windows of a recording as the detector takes them.

``event-clip classify`` and ``anomaly`` cut a recording into windows on sensor
time (:func:`~event_clip_ros.events.windows.iter_windows`) and infer them with
:meth:`Detector.infer <event_clip_ros.apps.detector.Detector.infer>`, the node's
path from windows to results; :func:`recording_windows` gives each window what
that path needs. A recording has no ROS time: a window is stamped with its end
in sensor time (ns), as :meth:`EventInput.feed_events
<event_clip_ros.apps.event_input.EventInput.feed_events>` does without a stamp.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from ..events.types import SensorSize
from ..events.windows import Window
from .event_input import PendingWindow

_NS_PER_US = 1_000


def recording_windows(windows: Iterable[Window], size: SensorSize) -> Iterator[PendingWindow]:
    """``windows`` of a recording of sensor ``size``, ready for :meth:`Detector.infer`, as they are cut."""
    for w in windows:
        yield PendingWindow(w, size, w.t_end_us * _NS_PER_US, "", time.monotonic_ns())
