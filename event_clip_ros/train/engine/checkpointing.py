"""Training-state checkpoints: atomic, and resumable bit for bit.

A training-state file (``torch.save``, loaded with ``weights_only=True``) holds
everything a run needs to continue as if never stopped:

* the modules' weights: by default only the trainable part (parameters with
  ``requires_grad`` plus all buffers; frozen parameters, such as CLIP's f_I and
  f_T, are rebuilt by the caller and left out), or the full state dicts;
* optimiser, LR scheduler and (fp16) grad-scaler states;
* :class:`TrainState`: optimiser step, epoch, batch position within the epoch
  (batches come from :class:`~.sampler.DeterministicBatchSampler`, so a resume
  skips straight to that batch), best validation metric so far;
* every rank's RNG states: Python ``random``, NumPy's global RNG and any named
  ``numpy.random.Generator`` / ``torch.Generator`` passed in, torch's CPU RNG and
  the CUDA RNGs of all visible devices.

Files are written by :func:`~.atomic.atomic_write` (temporary file, fsync,
rename), so a crash mid-write leaves the previous checkpoint intact; the
temporary file it leaves is removed by the next write of the same file or at
resume (:meth:`CheckpointDir.clean_temporaries`).
:class:`CheckpointDir` names the files (``step_00001234.pt``, ``best.pt``), keeps
the newest ``keep_last`` step files plus ``best.pt``, and finds the latest one
for ``--resume auto``. Unlike the official code, whose ``best.pt`` is rewritten
after every validation (so "best" is the last), ``best.pt`` here is the state at
the best value of a chosen validation metric (:class:`BestPolicy`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ...atomic_files import atomic_write, remove_stale_temporaries
from ...model.torch_load import refused_global, torch_load_reason
from .rng import Generators, RngStateError, capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

FORMAT = "event_clip_ros.train_state"
FORMAT_VERSION = 1




class CheckpointLoadError(ValueError):
    """A training-state file is unreadable, of another format, or does not fit the objects given."""


@dataclass
class TrainState:
    """Counters of a run; everything here is plain data (stored in the checkpoint)."""

    step: int = 0  #: optimiser steps taken
    epoch: int = 0  #: the epoch in progress (or next to start)
    batch_in_epoch: int = 0  #: loader batches of ``epoch`` already consumed (the next one's index)
    best_metric: float | None = None  #: best validation value so far (see :class:`BestPolicy`)
    best_step: int | None = None  #: step at which ``best_metric`` was reached
    layout: dict[str, int] = field(default_factory=dict)  #: data layout the position refers to (set by the trainer)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainState":
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise CheckpointLoadError(f"training state has unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class BestPolicy:
    """Which validation metric defines the best checkpoint, and its direction."""

    metric: str  #: key of the validation metrics (the trainer's ``eval_fn`` result), e.g. "top1"
    mode: Literal["max", "min"] = "max"  #: "max": higher is better (accuracy); "min": lower is better (loss)

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"best mode must be 'max' or 'min', got {self.mode!r}")

    def improves(self, value: float, best: float | None) -> bool:
        """True when ``value`` is finite and strictly better than ``best`` (or there is no best yet)."""
        if not np.isfinite(value):
            return False
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best


# ------------------------------------------------------------------------------------- modules
def _frozen_parameter_names(module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters(remove_duplicate=False) if not p.requires_grad}


def module_state(module: nn.Module, trainable_only: bool = True) -> dict[str, torch.Tensor]:
    """``module.state_dict()``, without frozen parameters when ``trainable_only``."""
    state = module.state_dict()
    if trainable_only:
        frozen = _frozen_parameter_names(module)
        state = {k: v for k, v in state.items() if k not in frozen}
    return dict(state)


def load_module_state(module: nn.Module, state: Mapping[str, torch.Tensor], trainable_only: bool, context: str) -> None:
    """Load a :func:`module_state`; only frozen parameters may be absent (when ``trainable_only``)."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise CheckpointLoadError(f"{context}: weights do not fit the module ({str(err).strip().splitlines()[-1]})") from err
    allowed_missing = _frozen_parameter_names(module) if trainable_only else set()
    missing = sorted(set(result.missing_keys) - allowed_missing)
    if missing or result.unexpected_keys:
        raise CheckpointLoadError(
            f"{context}: weights do not fit the module (missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {result.unexpected_keys[:8]}{'...' if len(result.unexpected_keys) > 8 else ''})"
        )


# ------------------------------------------------------------------------------- save and load
def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_training_state(
    path: str | os.PathLike,
    *,
    state: TrainState,
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    generators: Generators | None = None,
    trainable_only: bool = True,
) -> Path:
    """Write a training state to ``path`` atomically; returns ``path``.

    In a process group of several ranks this is a collective (call it on every
    rank): the RNG states of all ranks are gathered and rank 0 writes the file.
    ``modules`` are the modules to save by name (unwrap DDP first); ``scheduler``
    is anything with ``state_dict()``/``load_state_dict()`` (a torch LR scheduler).
    """
    rank, world_size = _world()
    rng = capture_rng_state(generators)
    if world_size > 1:
        all_rng: list[Any] = [None] * world_size
        dist.all_gather_object(all_rng, rng)
    else:
        all_rng = [rng]
    path = Path(path)
    if rank != 0:
        return path
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),
        "state": state.to_dict(),
        "trainable_only": trainable_only,
        "modules": {name: module_state(m, trainable_only) for name, m in modules.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": all_rng,
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def read_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """The raw payload of a training-state file (CPU tensors); CheckpointLoadError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(f"{path}: no such training-state file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: torch raises RuntimeError, pickle/zip errors, ...
        refused = refused_global(err)
        if refused is not None:
            raise CheckpointLoadError(
                f"{path}: refused: its pickle needs {refused}, which a training state never holds; loading it would run code from the file"
            ) from None
        raise CheckpointLoadError(f"{path}: not a readable training-state file ({type(err).__name__}: {torch_load_reason(err)})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointLoadError(
            f"{path}: not an event_clip_ros training state (model checkpoints load with event_clip_ros.model.checkpoint)"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        version = payload.get("format_version")
        raise CheckpointLoadError(f"{path}: training-state format version {version}, this code reads {FORMAT_VERSION}")
    return payload


def load_training_state(
    path: str | os.PathLike,
    *,
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    generators: Generators | None = None,
    restore_rng: bool = True,
) -> TrainState:
    """Restore what :func:`save_training_state` wrote into the given objects; returns the counters.

    Every rank restores its own RNG states; when the file was written by a
    different number of ranks the RNGs are left as they are (with a warning): the
    run continues correctly but not bit-identically.
    """
    path = Path(path)
    payload = read_training_state(path)
    saved = payload["modules"]
    if set(saved) != set(modules):
        raise CheckpointLoadError(f"{path}: holds modules {sorted(saved)}, the caller passed {sorted(modules)}")
    for name, module in modules.items():
        load_module_state(module, saved[name], payload["trainable_only"], f"{path} module {name!r}")
    if optimizer is not None:
        try:
            optimizer.load_state_dict(payload["optimizer"])
        except (ValueError, KeyError) as err:
            raise CheckpointLoadError(f"{path}: optimiser state does not fit ({err})") from err
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise CheckpointLoadError(f"{path}: holds no scheduler state")
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and scaler.is_enabled():
        if payload["scaler"] is None:
            raise CheckpointLoadError(f"{path}: holds no grad-scaler state (saved without fp16?)")
        scaler.load_state_dict(payload["scaler"])
    if restore_rng:
        rank, world_size = _world()
        rng = payload["rng"]
        if len(rng) == world_size:
            try:
                restore_rng_state(rng[rank], generators)
            except RngStateError as err:
                raise CheckpointLoadError(f"{path}: {err}") from err
        else:
            log.warning(
                "%s: RNG states of %d rank(s), this job has %d: RNGs not restored (the resumed run is not bit-identical)",
                path, len(rng), world_size,
            )
    return TrainState.from_dict(payload["state"])


# ---------------------------------------------------------------------------------- directory
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointDir:
    """A run's checkpoint folder: ``step_XXXXXXXX.pt`` (newest ``keep_last`` kept) and ``best.pt``."""

    def __init__(self, directory: str | os.PathLike, keep_last: int = 2) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def step_path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def step_checkpoints(self) -> list[Path]:
        """Step checkpoints present, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _STEP_FILE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest step checkpoint, or None."""
        found = self.step_checkpoints()
        return found[-1] if found else None

    def prune(self) -> list[Path]:
        """Delete all but the newest ``keep_last`` step checkpoints (``best.pt`` is kept); returns the deleted."""
        old = self.step_checkpoints()[: -self.keep_last]
        for p in old:
            p.unlink(missing_ok=True)
        return old

    def clean_temporaries(self) -> None:
        """Remove temporary files of writes a crash or kill interrupted (those whose writer process is gone)."""
        for p in remove_stale_temporaries(self.directory):
            log.info("removed %s, left by an interrupted checkpoint write", p)
