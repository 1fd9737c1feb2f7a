"""Run metrics as JSON lines, CSV and TensorBoard scalars, written by rank 0 only.

Files in the run directory:

* ``metrics.jsonl``: one JSON object per :meth:`MetricsLogger.log` call
  (``{"step": ..., "time": unix seconds, "<name>": value, ...}``); non-finite
  values are written as ``null`` (strict JSON).
* ``metrics.csv``: the same rows (non-finite values as ``nan``/``inf``); columns are ``step``, ``time``, then metric
  names in order of first appearance. When a row brings a new name the file is
  rewritten whole (atomically) with the wider header, earlier rows getting empty
  cells, so the header always describes every row.
* ``summary.json``: :meth:`MetricsLogger.write_summary` (atomic).
* ``tensorboard/``: event files, when the ``tensorboard`` package is installed
  (otherwise a warning says so and the other files are still written).

A resumed run passes ``resume_step``: rows logged after that step by the
interrupted run (which the resumed run will log again) are dropped from the
files, a torn last line included, and TensorBoard purges them too.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch

from ...atomic_files import atomic_write_text

if TYPE_CHECKING:
    from _csv import Writer

    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger(__name__)

JSONL_NAME = "metrics.jsonl"
CSV_NAME = "metrics.csv"
SUMMARY_NAME = "summary.json"
TENSORBOARD_DIR = "tensorboard"
_FIXED_COLUMNS = ("step", "time")


def as_scalar(value: Any) -> float | int:
    """A Python number from an int, float, bool, NumPy scalar or one-element tensor; TypeError otherwise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"metric tensors must have one element, got shape {tuple(value.shape)}")
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    raise TypeError(f"metric values must be numbers, got {type(value).__name__}")


def _json_value(value: float | int) -> float | int | None:
    return value if isinstance(value, int) or math.isfinite(value) else None


def _json_line(row: Mapping[str, Any]) -> str:
    return json.dumps({k: _json_value(v) if isinstance(v, (int, float)) else v for k, v in row.items()}, allow_nan=False) + "\n"


class MetricsLogger:
    """Writes metric rows to ``directory`` (JSONL, CSV, TensorBoard); a no-op when ``enabled`` is False."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = list(_FIXED_COLUMNS)
        self._jsonl: IO[str] | None = None
        self._csv_file: IO[str] | None = None
        self._csv: Writer | None = None
        self._tb: SummaryWriter | None = None
        if not enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._rows = [row for row in self._read_jsonl() if isinstance(row.get("step"), int) and row["step"] <= resume_step]
            for row in self._rows:
                self._columns += [k for k in row if k not in self._columns]
        atomic_write_text(self.jsonl_path, "".join(_json_line(row) for row in self._rows))
        self._rewrite_csv()
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        if tensorboard:
            self._tb = _summary_writer(self.directory / TENSORBOARD_DIR, purge_step=0 if resume_step is None else resume_step + 1)

    @property
    def jsonl_path(self) -> Path:
        return self.directory / JSONL_NAME

    @property
    def csv_path(self) -> Path:
        return self.directory / CSV_NAME

    @property
    def summary_path(self) -> Path:
        return self.directory / SUMMARY_NAME

    @property
    def tensorboard_enabled(self) -> bool:
        return self._tb is not None

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one row: ``metrics`` (name -> number) at ``step``."""
        if not self.enabled:
            return
        if self._jsonl is None:
            raise RuntimeError("MetricsLogger is closed")
        values = {name: as_scalar(v) for name, v in metrics.items()}
        clash = set(values) & set(_FIXED_COLUMNS)
        if clash:
            raise ValueError(f"metric names {sorted(clash)} are reserved")
        row = {"step": int(step), "time": time.time(), **values}
        self._rows.append(row)
        self._jsonl.write(_json_line(row))
        self._jsonl.flush()
        new = [k for k in values if k not in self._columns]
        if new:
            self._columns += new
            self._rewrite_csv()
        else:
            assert self._csv is not None and self._csv_file is not None  # open while the jsonl is
            self._csv.writerow(self._csv_cells(row))
            self._csv_file.flush()
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, global_step=int(step))

    def write_summary(self, summary: Mapping[str, Any]) -> Path | None:
        """Write ``summary.json`` (any JSON-serialisable mapping) atomically; None when disabled."""
        if not self.enabled:
            return None
        return atomic_write_text(self.summary_path, json.dumps(summary, indent=2, sort_keys=True, default=_json_default) + "\n")

    def close(self) -> None:
        for handle in (self._jsonl, self._csv_file, self._tb):
            if handle is not None:
                handle.close()
        self._jsonl = self._csv_file = self._csv = self._tb = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ internals
    def _read_jsonl(self) -> list[dict[str, Any]]:
        if not self.jsonl_path.is_file():
            return []
        rows = []
        for line_no, line in enumerate(self.jsonl_path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON (a write the interruption cut short?): dropped", self.jsonl_path, line_no)
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def _csv_cells(self, row: Mapping[str, Any]) -> list[Any]:
        return ["" if row.get(c) is None else row[c] for c in self._columns]

    def _rewrite_csv(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self._columns)
        writer.writerows(self._csv_cells(row) for row in self._rows)
        if self._csv_file is not None:
            self._csv_file.close()
        atomic_write_text(self.csv_path, buffer.getvalue())
        self._csv_file = open(self.csv_path, "a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (Path, torch.device)):
        return str(obj)
    try:
        return _json_value(as_scalar(obj))
    except TypeError:
        raise TypeError(f"summary value of type {type(obj).__name__} is not JSON serialisable") from None


def _summary_writer(log_dir: Path, purge_step: int) -> SummaryWriter | None:
    """A TensorBoard SummaryWriter, or None (with a warning) when the tensorboard package is missing."""
    try:
        # lazy: tensorboard is optional (a warning and no TensorBoard log without it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        log.warning(
            "TensorBoard logging is off: %s. Install it with `pip install tensorboard` (it is in requirements.txt; "
            "re-run scripts/setup_env.sh); metrics.jsonl and metrics.csv are written regardless.",
            str(err).splitlines()[0],
        )
        return None
    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
