"""How many torch CPU threads a run uses (``runtime.threads``, ``--threads``).

On a shared machine torch's default (one thread per core) oversubscribes the cores: OpenMP workers spin
while they wait for a core another process holds, and a step slows down by far more than the share of
the machine that is missing (measured on 2 cores with one other busy process: 2 threads took the toy
teacher's step from 0.14 s to 4 s, about 30x). ``auto`` therefore uses the cores nobody else is using:

    threads = clamp(round((cores - load) / processes), 1, cores)

where ``cores`` are the CPUs this process may run on (its affinity mask, and at most the physical cores
when psutil knows them), ``load`` the 1-minute load average (runnable processes, other runs included)
and ``processes`` the training processes of this machine (torchrun's ``LOCAL_WORLD_SIZE``). A machine
loaded beyond its cores gets 1 thread. The count is fixed at the start of a run, shown in the progress
bar and written into the report.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPUs this process may run on, at most the physical cores (hyper-threads share a core's units)."""
    try:
        logical = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        logical = os.cpu_count() or 1
    try:
        # lazy: psutil is optional (installed with the ROS 2 tools); without it logical CPUs count
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001  psutil missing or unable to tell
        physical = None
    return max(1, min(logical, physical) if physical else logical)


def load_average() -> float | None:
    """The 1-minute load average, None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


_MACHINE: Any = object()  #: "this machine's value"


def choose_threads(cores: int | None = None, load: float | None = _MACHINE, processes: int = 1) -> int:
    """The ``auto`` thread count (module docstring); ``cores`` / ``load`` default to this machine's (``load=None``:
    unknown, every usable core)."""
    cores = usable_cores() if cores is None else max(1, int(cores))
    load = load_average() if load is _MACHINE else load
    per_process = cores / max(1, processes)
    if load is None:
        return max(1, int(per_process))
    free = (cores - max(0.0, load)) / max(1, processes)
    return int(min(max(1, round(free)), max(1, int(per_process))))


def resolve_threads(setting: int | str | None, processes: int = 1) -> int | None:
    """The thread count of ``runtime.threads``: a number, ``"auto"`` (:func:`choose_threads`), or None (torch's)."""
    if setting is None:
        return None
    if setting == "auto":
        return choose_threads(processes=processes)
    threads = int(setting)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, 'auto' or None, got {setting!r}")
    return threads


def apply_threads(setting: int | str | None, env: Any = None) -> int:
    """Set torch's intra-op threads from ``runtime.threads``; returns the count in use (logged)."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", getattr(env, "world_size", 1) or 1))
    threads = resolve_threads(setting, processes)
    if threads is not None:
        torch.set_num_threads(threads)
    used = torch.get_num_threads()
    if setting == "auto":
        log.info("torch threads: %d (auto: %d usable cores, load average %s, %d process(es))", used, usable_cores(),
                 "unknown" if load_average() is None else f"{load_average():.2f}", processes)
    return used
