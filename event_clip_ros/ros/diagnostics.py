"""The detector's /diagnostics status, built from the pipeline's counters and latency trackers."""

from __future__ import annotations

from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..apps.detector_stats import Health
from .messages import header

LEVELS = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
          "stale": DiagnosticStatus.STALE}


def _text(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def diagnostic_array(
    name: str,
    hardware_id: str,
    health: Health,
    values: Mapping[str, object],
    stamp_ns: int,
) -> DiagnosticArray:
    """One DiagnosticStatus named ``name`` with ``values`` as key/value strings (floats to 6 digits)."""
    status = DiagnosticStatus(
        level=LEVELS[health.level],
        name=name,
        message=health.message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()],
    )
    return DiagnosticArray(header=header(stamp_ns, ""), status=[status])
