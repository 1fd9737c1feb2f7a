"""Whether an evaluation's input was sound: the detector counters that mean damage, as problems and a status.

A run whose input lost more than a small share of itself (``max_rate``, default
0.1 %) is ``degraded``: its numbers describe what survived the damage, not the
recording. Each :data:`LOSS_CHECKS` entry sets counters (decode errors, lost or
dropped packets, dropped events, non-finite windows) against what they are a
share of (packets, events, windows); counters a detector does not report count
0, so the checks read any counter dict: the detector's, the node's input side's
or a decoder's (``DecodeStats.as_dict()``, whose decode errors are summed from
their parts).

Skipped windows (fewer than ``min_events`` events) are normal where the scene is
quiet, so they are a problem only where they lie beyond the recording: windows
that cover far more sensor time than the bag was recorded for mean that sensor
time jumped forward (a bit error or a garbage packet; the empty windows of the
jump are the skipped ones). Statuses only get worse (:func:`worse_status`): an
interrupted or incomplete run stays so, with the input's problems added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...events.windows import WindowConfig

#: Default largest share of packets, events or windows that may be lost before a run is degraded: 0.1 %.
DEFAULT_MAX_PROBLEM_RATE = 0.001
#: Run statuses, best first: complete, degraded (damaged input, every window scored), incomplete (the bag ended
#: early or results are missing), interrupted (Ctrl-C).
STATUSES = ("complete", "degraded", "incomplete", "interrupted")
#: The counters the detector sums into ``decode_errors`` (a decoder's stats report only these).
DECODE_ERROR_PARTS = ("bad_packets", "unknown_words", "time_errors")
#: Sensor time may outrun the recording's log time by this share plus SPAN_SLACK_S (clock drift, latency,
#: the last window's length) before the skipped windows beyond it count as a time jump.
SPAN_SLACK = 0.1
SPAN_SLACK_S = 1.0


@dataclass(frozen=True)
class LossCheck:
    """Counters that mean lost input, and the counter they are a share of."""

    what: str  #: what the counters count, in words
    counters: tuple[str, ...]  #: summed (a missing counter counts 0)
    of: tuple[str, ...]  #: the first of these present is the whole (packets, events, windows)
    lost: bool = False  #: the counted items are missing from the whole (the share is n / (whole + n))


LOSS_CHECKS: tuple[LossCheck, ...] = (
    LossCheck("decode errors", ("decode_errors",), ("packets", "images")),
    LossCheck("bytes cut off the end of packets", ("truncated_bytes",), ("packets",)),
    LossCheck("packets dropped whole (undecodable)", ("dropped_packets",), ("packets",)),
    LossCheck("packets lost (sequence gaps)", ("lost_packets",), ("packets",), lost=True),
    LossCheck("events dropped (implausible time)", ("time_dropped",), ("events",), lost=True),
    LossCheck("events outside the sensor (dropped)", ("out_of_bounds_events",), ("events",), lost=True),
    LossCheck("windows with non-finite embeddings (not scored)", ("nonfinite_windows",), ("windows",)),
)


def _percent(share: float) -> str:
    return f"{100 * share:.3g}%"


def _with_decode_errors(counters: Mapping[str, int]) -> dict[str, int]:
    """The counters, with ``decode_errors`` summed from its parts where a decoder's stats lack it."""
    out = dict(counters)
    if "decode_errors" not in out and any(part in out for part in DECODE_ERROR_PARTS):
        out["decode_errors"] = sum(int(out.get(part, 0)) for part in DECODE_ERROR_PARTS)
    return out


def _loss_problem(check: LossCheck, counters: Mapping[str, int], max_rate: float) -> str | None:
    """The check's problem text when its counters exceed ``max_rate`` of their whole; None when they do not."""
    n = sum(int(counters.get(name, 0)) for name in check.counters)
    whole_name = next((name for name in check.of if name in counters), check.of[0])
    whole = int(counters.get(whole_name, 0)) + (n if check.lost else 0)
    if n <= 0 or n <= max_rate * whole:
        return None
    parts = DECODE_ERROR_PARTS if check.counters == ("decode_errors",) else check.counters
    detail = ", ".join(f"{name} {counters[name]}" for name in parts if counters.get(name))
    share = _percent(n / whole) if whole else "all"
    return f"{check.what}: {n} in {whole} {whole_name} ({share}, limit {_percent(max_rate)}" + \
        (f"; {detail})" if detail else ")")


def time_jump_problem(counters: Mapping[str, int], window: WindowConfig, recorded_ns: int) -> str | None:
    """Skipped windows beyond the recording: sensor time ran far ahead of the bag's log time (None: it did not)."""
    skipped = int(counters.get("skipped_windows", 0))
    if window.duration_us is None or skipped == 0:
        return None
    covered_s = (int(counters.get("windows", 0)) + skipped) * window.step_us / 1e6
    recorded_s = max(recorded_ns, 0) / 1e9
    if covered_s <= recorded_s * (1 + SPAN_SLACK) + window.duration_us / 1e6 + SPAN_SLACK_S:
        return None
    return (f"sensor time jumped: the windows cover {covered_s:.3g} s of sensor time in a {recorded_s:.3g} s "
            f"recording ({skipped} windows skipped, fewer than {window.min_events} events)")


def input_problems(counters: Mapping[str, int], max_rate: float = DEFAULT_MAX_PROBLEM_RATE,
                   window: WindowConfig | None = None, recorded_ns: int | None = None) -> list[str]:
    """What the counters say was lost beyond ``max_rate``, one line each; [] for sound input.

    ``window`` and ``recorded_ns`` (the bag's log-time span) enable the time-jump check of the skipped windows.
    """
    if not 0.0 <= max_rate <= 1.0:
        raise ValueError(f"max_rate must be in [0, 1], got {max_rate}")
    counters = _with_decode_errors(counters)
    problems = [p for check in LOSS_CHECKS if (p := _loss_problem(check, counters, max_rate)) is not None]
    if window is not None and recorded_ns is not None:
        jump = time_jump_problem(counters, window, recorded_ns)
        if jump is not None:
            problems.append(jump)
    return problems


def worse_status(status: str, other: str) -> str:
    """The worse of two run statuses (see :data:`STATUSES`)."""
    return max(status, other, key=STATUSES.index)
