"""Run-time statistics of the detector for diagnostics: latency percentiles, rates and health.

All ROS-free; :mod:`event_clip_ros.ros.diagnostics` only turns them into
``diagnostic_msgs``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Counters whose growth during a period makes the status a warning, with what to say.
#: Input problems come first: windows dropped behind them are often their consequence.
WARN_COUNTERS: dict[str, str] = {
    "decode_errors": "decode errors (garbage packets, unknown words, implausible time words)",
    "time_dropped_events": "events dropped for an implausible time (bit errors, garbage stamps)",
    "lost_packets": "packets lost (sequence gaps; between processes of one machine, usually the node's Fast DDS "
                    "reception woken late on a busy machine: launch with fastdds_profile:=realtime, see "
                    "config/fastdds_realtime.xml)",
    "seq_resets": "implausible sequence numbers",
    "stream_restarts": "stream restarts (bag loop, driver restart, time jump or format change)",
    "nonfinite_windows": "windows skipped for a NaN/Inf embedding",
    "dropped_windows": "windows dropped (inference slower than the input)",
}
#: Share of a period's packets that, when undecodable, makes the status an error instead of a warning.
ERROR_BAD_PACKET_SHARE = 0.5


class LatencyTracker:
    """The latest ``capacity`` durations (seconds) and their percentiles in milliseconds; thread-safe."""

    def __init__(self, capacity: int = 1000) -> None:
        self._values: deque[float] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentiles_ms(self, percentiles: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
        """``{"p50": ms, ..., "max": ms}`` of the kept durations; empty when there are none."""
        with self._lock:
            values = np.fromiter(self._values, dtype=np.float64)
        if values.size == 0:
            return {}
        ms = np.percentile(values, percentiles) * 1e3
        out = {f"p{p:g}": float(v) for p, v in zip(percentiles, ms)}
        out["max"] = float(values.max() * 1e3)
        return out


class RateMeter:
    """Per-second rates of cumulative counters between successive :meth:`update` calls."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, int]] | None = None

    def update(self, counters: Mapping[str, int], now_s: float) -> tuple[dict[str, float], dict[str, int]]:
        """(rates per second, increments) since the previous call; both empty on the first call."""
        current = dict(counters)
        last, self._last = self._last, (now_s, current)
        if last is None or now_s <= last[0]:
            return {}, {}
        dt = now_s - last[0]
        increments = {k: v - last[1].get(k, 0) for k, v in current.items()}
        return {k: d / dt for k, d in increments.items()}, increments


@dataclass(frozen=True)
class Health:
    """The detector's state in one word and one sentence."""

    level: str  #: "ok", "warn", "error" or "stale"
    message: str


def assess(active: bool, error: str | None, increments: Mapping[str, int], input_counter: str = "events") -> Health:
    """Health from the node state and the counters' increments over the last period.

    error: a configuration or model error (level "error"); not active: "stale";
    any counter of :data:`WARN_COUNTERS` grown: "warn", naming them, or "error" when
    at least :data:`ERROR_BAD_PACKET_SHARE` of the period's packets were undecodable
    (``bad_packets`` of ``packets``); ``input_counter`` (events, or images for image
    input) not grown in the period: "stale" (the input is silent); else "ok".
    """
    if error:
        return Health("error", error)
    if not active:
        return Health("stale", "not active")
    grown = [f"{increments[k]} {text}" for k, text in WARN_COUNTERS.items() if increments.get(k, 0) > 0]
    bad, packets = increments.get("bad_packets", 0), increments.get("packets", 0)
    if packets and bad >= ERROR_BAD_PACKET_SHARE * packets:
        return Health("error", f"{bad} of {packets} packets undecodable (garbage payloads or a wrong encoding); "
                               + "; ".join(grown))
    if grown:
        return Health("warn", "; ".join(grown))
    if increments and increments.get(input_counter, 0) == 0:
        return Health("stale", f"no {input_counter} received in the last period")
    return Health("ok", "running")
