"""Ground truth of a recording: what each detector window should have said.

Sources (each a :class:`GroundTruth`):

* :class:`WholeLabel`: one label for the whole recording (``--ground-truth label:cat``);
* :class:`TimeRanges`: half-open time ranges with a label, on the sensor clock
  (event time) or the ROS clock (header stamps / bag log time), from

  - a CSV (:func:`load_ranges_csv`) whose header names its clock: ``t_start_us,t_end_us,label``
    (sensor time, as ``event-clip simulate --scene glyphs`` writes) or ``stamp_start_ns,stamp_end_ns,label``
    (ROS time);
  - a label topic in the bag (:func:`load_label_topic`): std_msgs/String, each message's text holds from
    its log time until the next message (an empty text: no label);
  - UCF-Crime style temporal annotations (:func:`load_ucf_annotations`): ``name class s1 e1 s2 e2`` with
    anomalous intervals in frames at ``fps`` from the recording start (-1 = no interval);
* :class:`PerWindow`: a label per window index (CSV ``window,label``).

A window takes the label covering most of it (ties: the earlier range); a window
no range overlaps has no truth and is left out of the metrics (counted).
Anomaly truth is a label too: :func:`anomaly_truth` reads ``1/anomaly/abnormal/true``
as anomalous and ``0/normal/false`` as normal.
"""

from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the detector imports torch; ground truth does not need it
    from ..detector import DetectionResult

Clock = Literal["sensor", "ros"]
CLOCKS: tuple[str, ...] = ("sensor", "ros")
_NS_PER_US = 1_000

#: Truth words of anomaly ground truth -> anomalous?
ANOMALY_WORDS: dict[str, bool] = {"1": True, "anomaly": True, "abnormal": True, "true": True, "yes": True,
                                  "0": False, "normal": False, "false": False, "no": False}
ANOMALOUS, NORMAL = "anomaly", "normal"


class GroundTruthError(ValueError):
    """A ground-truth source that cannot be read or does not fit the recording."""


def window_span_ns(result: DetectionResult, clock: Clock) -> tuple[int, int]:
    """The window's half-open interval in ns on ``clock`` (ROS: its end is the result's stamp)."""
    if clock == "sensor":
        return result.t_start_us * _NS_PER_US, result.t_end_us * _NS_PER_US
    return result.stamp_ns - (result.t_end_us - result.t_start_us) * _NS_PER_US, result.stamp_ns


def anomaly_truth(label: str | None) -> bool | None:
    """True (anomalous), False (normal) or None (no truth); GroundTruthError for another word."""
    if label is None:
        return None
    anomalous = ANOMALY_WORDS.get(label.strip().lower())
    if anomalous is None:
        raise GroundTruthError(f"anomaly ground truth {label!r} is neither anomalous (1, anomaly, abnormal, true) "
                               "nor normal (0, normal, false)")
    return anomalous


class GroundTruth(ABC):
    """What each window should be labelled."""

    @abstractmethod
    def label_of(self, result: DetectionResult) -> str | None:
        """The true label of a window, or None when the truth says nothing about it."""

    def label_at(self, t_ns: int, clock: Clock) -> str | None:  # noqa: ARG002 - a time-free source has none
        """The true label at one instant (frame-level metrics), None when the source has no timeline."""
        return None

    @property
    def has_timeline(self) -> bool:
        return False

    @abstractmethod
    def describe(self) -> str:
        """One line for the report."""


@dataclass(frozen=True)
class WholeLabel(GroundTruth):
    label: str

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise GroundTruthError("the whole-recording label is empty")

    def label_of(self, result: DetectionResult) -> str | None:
        return self.label

    def describe(self) -> str:
        return f"one label for the whole recording: {self.label}"


@dataclass(frozen=True)
class Range:
    """A labelled half-open interval [start_ns, end_ns) on the truth's clock."""

    start_ns: int
    end_ns: int
    label: str


@dataclass(frozen=True)
class TimeRanges(GroundTruth):
    ranges: tuple[Range, ...]
    clock: Clock
    source: str = ""

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise GroundTruthError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        for r in self.ranges:
            if r.end_ns <= r.start_ns:
                raise GroundTruthError(f"{self.source}: range [{r.start_ns}, {r.end_ns}) ns of {r.label!r} is empty")
        object.__setattr__(self, "ranges", tuple(sorted(self.ranges, key=lambda r: (r.start_ns, r.end_ns))))

    @property
    def has_timeline(self) -> bool:
        return True

    @property
    def span_ns(self) -> tuple[int, int] | None:
        if not self.ranges:
            return None
        return self.ranges[0].start_ns, max(r.end_ns for r in self.ranges)

    def label_of(self, result: DetectionResult) -> str | None:
        return self.label_between(*window_span_ns(result, self.clock))

    def label_between(self, start: int, end: int) -> str | None:
        """The label covering most of [start, end) ns (ties: the earlier range), or None."""
        best, best_overlap = None, 0
        for r in self.ranges:
            if r.start_ns >= end:
                break
            overlap = min(r.end_ns, end) - max(r.start_ns, start)
            if overlap > best_overlap:
                best, best_overlap = r.label, overlap
        return best

    def label_at(self, t_ns: int, clock: Clock) -> str | None:
        assert clock == self.clock
        for r in self.ranges:
            if r.start_ns > t_ns:
                break
            if t_ns < r.end_ns:
                return r.label
        return None

    def describe(self) -> str:
        return f"{len(self.ranges)} time ranges on the {self.clock} clock ({self.source})"


@dataclass(frozen=True)
class PerWindow(GroundTruth):
    labels: Mapping[int, str]
    source: str = ""

    def label_of(self, result: DetectionResult) -> str | None:
        return self.labels.get(result.index)

    def describe(self) -> str:
        return f"labels of {len(self.labels)} windows by index ({self.source})"


# ------------------------------------------------------------------ loaders
_RANGE_HEADERS: dict[tuple[str, str], tuple[Clock, int]] = {
    ("t_start_us", "t_end_us"): ("sensor", _NS_PER_US),
    ("stamp_start_ns", "stamp_end_ns"): ("ros", 1),
}


def _int_field(path: Path, line: int, name: str, text: str | None) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise GroundTruthError(f"{path}:{line}: {name} {text!r} is not an integer") from None


def load_truth_csv(path: str | Path) -> GroundTruth:
    """A ranges CSV (sensor or ROS clock, by its header) or a per-window CSV (``window,label``)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = tuple(name.strip() for name in reader.fieldnames or ())
            rows = [(reader.line_num, {k.strip(): v for k, v in row.items() if k is not None}) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GroundTruthError(f"cannot read ground truth {path}: {exc}") from exc
    if "label" not in fields:
        raise GroundTruthError(f"{path}: no 'label' column (header: {', '.join(fields) or 'none'})")
    if "window" in fields:
        labels = {}
        for line, row in rows:
            labels[_int_field(path, line, "window", row.get("window"))] = (row.get("label") or "").strip()
        return PerWindow({k: v for k, v in labels.items() if v}, str(path))
    for (start_key, end_key), (clock, scale) in _RANGE_HEADERS.items():
        if start_key in fields and end_key in fields:
            ranges = [
                Range(_int_field(path, line, start_key, row.get(start_key)) * scale,
                      _int_field(path, line, end_key, row.get(end_key)) * scale, (row.get("label") or "").strip())
                for line, row in rows
            ]
            return TimeRanges(tuple(r for r in ranges if r.label), clock, str(path))
    known = "; ".join(f"{a},{b},label" for a, b in _RANGE_HEADERS) + "; window,label"
    raise GroundTruthError(f"{path}: unknown ground-truth columns {', '.join(fields)} (expected {known})")


def ranges_from_label_messages(messages: Iterable[tuple[int, str]], end_ns: int, source: str) -> TimeRanges:
    """ROS-clock ranges from (log time ns, text) label messages: each holds until the next one or ``end_ns``."""
    ordered = sorted(messages, key=lambda m: m[0])
    ends = [t for t, _ in ordered[1:]] + [end_ns]
    ranges = []
    for (t, text), nxt in zip(ordered, ends):
        if text.strip() and nxt > t:
            ranges.append(Range(t, nxt, text.strip()))
    return TimeRanges(tuple(ranges), "ros", source)


def load_ucf_annotations(path: str | Path, recording: str, fps: float, origin_ns: int) -> TimeRanges:
    """UCF-Crime style temporal annotations of one recording as sensor-clock ranges.

    Lines ``name class s1 e1 [s2 e2 ...]`` (whitespace separated; frame numbers at
    ``fps`` from the recording's first event at ``origin_ns``; -1 pairs are unused).
    The line whose name (or its stem) equals ``recording``'s stem is used; a file
    with a single line applies to any recording. The anomalous intervals are
    labelled ``anomaly``, and the rest of the recording (up to the last
    annotated frame or beyond) ``normal``: :func:`anomaly_truth` of a window
    outside every interval is False.
    """
    path = Path(path)
    if not fps > 0 or not math.isfinite(fps):
        raise GroundTruthError(f"fps must be positive, got {fps}")
    try:
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"cannot read annotations {path}: {exc}") from exc
    stem = Path(recording.rstrip("/")).stem
    chosen = [f for f in lines if Path(f[0]).stem == stem or f[0] == stem] or (lines if len(lines) == 1 else [])
    if not chosen:
        raise GroundTruthError(f"{path}: no annotation line for {stem!r} ({len(lines)} lines)")
    fields = chosen[0]
    if len(fields) < 4 or len(fields) % 2:
        raise GroundTruthError(f"{path}: expected 'name class start end [start end ...]', got {' '.join(fields)!r}")
    frame_ns = 1e9 / fps
    anomalous = []
    for s, e in zip(fields[2::2], fields[3::2]):
        try:
            start, end = int(s), int(e)
        except ValueError:
            raise GroundTruthError(f"{path}: frame numbers must be integers, got {s!r} {e!r}") from None
        if start < 0 or end < 0:
            continue
        if end < start:
            raise GroundTruthError(f"{path}: interval {start}-{end} ends before it starts")
        anomalous.append((origin_ns + round(start * frame_ns), origin_ns + round((end + 1) * frame_ns)))
    ranges, cursor = [], origin_ns
    for start, end in anomalous:
        if start > cursor:
            ranges.append(Range(cursor, start, NORMAL))
        ranges.append(Range(start, end, ANOMALOUS))
        cursor = max(cursor, end)
    ranges.append(Range(cursor, 2**62, NORMAL))  # normal to the end of the recording
    return TimeRanges(tuple(ranges), "sensor", f"{path} ({fields[0]}, {fields[1]})")
