"""The detector's /diagnostics statuses, built from the pipeline's counters and latency trackers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..apps.detector_stats import Health
from .messages import header

LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
          "stale": DiagnosticStatus.STALE}


def _text(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def diagnostic_status(name: str, hardware_id: str, health: Health, values: Mapping[str, object]) -> DiagnosticStatus:
    """One DiagnosticStatus named ``name`` with ``values`` as key/value strings (floats to 6 digits)."""
    return DiagnosticStatus(
        level=LEVELS[health.level],
        name=name,
        message=health.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()],
    )


def diagnostic_array(statuses: Sequence[DiagnosticStatus], stamp_ns: int) -> DiagnosticArray:
    return DiagnosticArray(header=header(stamp_ns, ""), status=list(statuses))
