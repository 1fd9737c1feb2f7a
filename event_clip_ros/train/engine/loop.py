"""A generic, resumable training loop: epochs of a deterministic loader, a caller-given step function.

What a step does (:meth:`Trainer.fit`)
    For each loader batch, ``loss, logs = step_fn(module, batch)`` runs under
    autocast (bf16/fp16 on CUDA, fp32 on the CPU; fp16 adds a grad scaler) and
    ``loss / grad_accum_steps`` is back-propagated; every ``grad_accum_steps``
    batches the gradients are clipped (optional), the optimiser and the LR
    scheduler step (the schedule is per optimiser step). ``module`` is the
    trainable module, wrapped in DDP when the job has several ranks (gradients
    of micro-batches before the last are not all-reduced: ``no_sync``), so the
    step function must call it rather than a reference it holds. All trainable
    parameters must live in it (the checkpoint saves it, DDP syncs it). The
    batch arrives as the loader yields it (CPU); moving it to the device, e.g.
    building event frames there, is the step function's job. ``logs`` are
    scalars averaged per optimiser step, then over the steps of a metrics row
    (``train/<name>``, with ``train/loss``, ``train/grad_norm`` and ``train/lr``,
    the LR of the row's last step);
    after a resume the first row averages only the steps since the resume.

Data order
    The loader must come from :func:`~.sampler.build_loader`: epoch ``e`` is a
    fixed function of (seed, e), and a resumed run starts at the batch where the
    interrupted one stopped. Batches left over when a loader's length is not a
    multiple of ``grad_accum_steps`` are skipped (not loaded).

Validation, checkpoints, resume
    ``eval_fn() -> {name: value}`` runs every ``eval_every_steps`` optimiser
    steps and at the end of every ``eval_every_epochs``-th epoch (on every rank;
    rank 0's result is broadcast so ranks agree), logged as ``val/<name>``. With
    a :class:`~.checkpointing.BestPolicy` the state at the best value is saved to
    ``best.pt`` and ``on_best(state, metrics)`` is called on rank 0 (the
    pre-training script exports the EventClip checkpoint there). A training
    state is saved every ``checkpoint_every_steps`` steps and at every epoch end
    (newest ``keep_last`` kept). ``resume="auto"`` continues from the newest
    readable checkpoint in ``output_dir/checkpoints`` (or starts fresh when there
    is none); the continuation is bit-identical to an uninterrupted run on the
    same hardware (see :mod:`.checkpointing` and :mod:`.sampler`; on CUDA only
    with deterministic kernels: ``torch.use_deterministic_algorithms(True)``).

Output directory: ``checkpoints/``, ``metrics.jsonl``, ``metrics.csv``,
``summary.json``, ``tensorboard/`` (see :mod:`.metrics`). Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ...model.device import autocast, resolve_precision
from .checkpointing import BestPolicy, CheckpointDir, CheckpointLoadError, TrainState, load_training_state, save_training_state
from .metrics import MetricsLogger, as_scalar
from .rng import Generators
from .sampler import prepare_epoch, resumable_sampler

log = logging.getLogger(__name__)

StepFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, Mapping[str, Any]]"]
EvalFn = Callable[[], Mapping[str, Any]]
BestHook = Callable[[TrainState, Mapping[str, float]], None]
CheckpointHook = Callable[[Path, TrainState], None]


class DistInfo(Protocol):
    """Where this process trains (:class:`event_clip_ros.train.distributed.DistEnv` fits); read-only."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...


@dataclass(frozen=True)
class _SingleProcess:
    rank: int
    world_size: int
    device: torch.device


@dataclass
class TrainerConfig:
    """Loop settings (the optimiser, schedule and data are built by the caller)."""

    output_dir: str | Path
    epochs: int
    grad_accum_steps: int = 1
    precision: str = "auto"  #: "auto" (bf16 or fp16 on CUDA, fp32 on CPU), "fp32", "bf16", "fp16"
    grad_clip_norm: float | None = None  #: clip the global gradient norm to this (None: no clipping)
    log_every_steps: int = 10  #: a metrics row (means over these steps) every this many optimiser steps
    eval_every_steps: int | None = None  #: also validate every this many optimiser steps
    eval_every_epochs: int | None = 1  #: validate after every this many epochs (None: not at epoch ends)
    checkpoint_every_steps: int | None = None  #: training state every this many steps (always at epoch ends)
    keep_last: int = 2  #: step checkpoints kept (best.pt is kept besides)
    best: BestPolicy | None = None  #: the validation metric that picks best.pt (None: no best.pt)
    resume: str | Path | None = None  #: None: fresh run; "auto": newest checkpoint in output_dir, if any; or a file
    max_steps: int | None = None  #: stop after this many optimiser steps in total (a checkpoint is written there)
    trainable_only_checkpoints: bool = True  #: leave frozen parameters out of training states
    find_unused_parameters: bool = False  #: DDP option, for step functions that skip some parameters
    progress: bool = True  #: tqdm bar (rank 0)
    tensorboard: bool = True  #: TensorBoard scalars besides JSONL/CSV (when the package is installed)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.grad_accum_steps < 1 or self.log_every_steps < 1 or self.keep_last < 1:
            raise ValueError("epochs, grad_accum_steps, log_every_steps and keep_last must be >= 1")
        for name in ("eval_every_steps", "eval_every_epochs", "checkpoint_every_steps", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {self.grad_clip_norm}")


class Trainer:
    """Runs :class:`TrainerConfig` epochs of ``step_fn`` over ``loader`` (see the module doc)."""

    def __init__(
        self,
        cfg: TrainerConfig,
        *,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: DataLoader,
        step_fn: StepFn,
        scheduler: Any | None = None,
        eval_fn: EvalFn | None = None,
        dist_env: DistInfo | None = None,
        on_best: BestHook | None = None,
        on_checkpoint: CheckpointHook | None = None,
        generators: Generators | None = None,
    ) -> None:
        self.cfg = cfg
        self.module = module
        self.optimizer = optimizer
        self.loader = loader
        self.sampler = resumable_sampler(loader)
        self.step_fn = step_fn
        self.scheduler = scheduler
        self.eval_fn = eval_fn
        self.on_best = on_best
        self.on_checkpoint = on_checkpoint
        self.generators = dict(generators or {})
        if dist_env is None:
            first = next(module.parameters(), None)
            dist_env = _SingleProcess(0, 1, first.device if first is not None else torch.device("cpu"))
        self.rank, self.world_size, self.device = dist_env.rank, dist_env.world_size, torch.device(dist_env.device)
        if (self.sampler.rank, self.sampler.world_size) != (self.rank, self.world_size):
            raise ValueError(
                f"the loader's sampler is for rank {self.sampler.rank} of {self.sampler.world_size}, "
                f"this process is rank {self.rank} of {self.world_size}"
            )
        if cfg.best is not None and eval_fn is None:
            raise ValueError("a best-checkpoint policy needs an eval_fn")
        self._check_optimizer_params()

        self.batches_per_epoch = len(loader)
        self.steps_per_epoch = self.batches_per_epoch // cfg.grad_accum_steps
        if self.steps_per_epoch == 0:
            raise ValueError(f"the loader has {self.batches_per_epoch} batches, fewer than grad_accum_steps={cfg.grad_accum_steps}")
        if self.batches_per_epoch % cfg.grad_accum_steps:
            log.warning("%d of %d batches per epoch are skipped: not a multiple of grad_accum_steps=%d",
                        self.batches_per_epoch % cfg.grad_accum_steps, self.batches_per_epoch, cfg.grad_accum_steps)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.precision = resolve_precision(cfg.precision, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.output_dir = Path(cfg.output_dir)
        self.checkpoints = CheckpointDir(self.output_dir / "checkpoints", cfg.keep_last)
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_module: nn.Module = DistributedDataParallel(
                module, device_ids=device_ids, find_unused_parameters=cfg.find_unused_parameters
            )
        else:
            self.train_module = module
        self.last_eval: dict[str, float] = {}

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def optimizer_steps_per_epoch(loader: DataLoader, grad_accum_steps: int = 1) -> int:
        """Optimiser steps in one epoch of ``loader`` (for sizing the LR schedule before building a Trainer)."""
        return len(loader) // grad_accum_steps

    # ---------------------------------------------------------------------------------- run
    def fit(self) -> TrainState:
        """Train to ``cfg.epochs`` (or ``cfg.max_steps``); returns the final counters."""
        state, resumed = self._start()
        logger = MetricsLogger(
            self.output_dir, enabled=self.is_main, tensorboard=self.cfg.tensorboard, resume_step=state.step if resumed else None
        )
        target = self.total_steps if self.cfg.max_steps is None else min(self.total_steps, self.cfg.max_steps)
        bar = tqdm(total=target, initial=min(state.step, target), desc="train", unit="step", dynamic_ncols=True,
                   disable=not (self.cfg.progress and self.is_main))
        started = time.monotonic()
        try:
            while state.epoch < self.cfg.epochs and state.step < target:
                self._run_epoch(state, target, logger, bar)
        finally:
            bar.close()
            best = self.cfg.best
            logger.write_summary({
                "completed": state.epoch >= self.cfg.epochs, "step": state.step, "epoch": state.epoch,
                "total_steps": self.total_steps, "best_metric": best and best.metric, "best_mode": best and best.mode,
                "best_value": state.best_metric, "best_step": state.best_step, "last_validation": self.last_eval,
                "wall_s_this_session": time.monotonic() - started,
            })
            logger.close()
        return state

    def _start(self) -> tuple[TrainState, bool]:
        layout = {"batches_per_epoch": self.batches_per_epoch, "batch_size": self.sampler.batch_size,
                  "world_size": self.world_size, "grad_accum_steps": self.cfg.grad_accum_steps}
        if self.is_main:
            self.checkpoints.clean_temporaries()
        resume = self.cfg.resume
        candidates: list[Path]
        if resume is None:
            if self.checkpoints.step_checkpoints():
                raise FileExistsError(
                    f"{self.checkpoints.directory} holds checkpoints of an earlier run: pass resume='auto' to continue it, "
                    "or choose another output directory"
                )
            candidates = []
        elif str(resume) == "auto":
            candidates = self.checkpoints.step_checkpoints()[::-1]
            if not candidates:
                log.info("resume=auto: no checkpoint in %s, starting fresh", self.checkpoints.directory)
        else:
            candidates = [Path(resume)]
        for i, path in enumerate(candidates):
            try:
                state = load_training_state(path, modules={"module": self.module}, optimizer=self.optimizer, scheduler=self.scheduler,
                                            scaler=self.scaler, generators=self.generators)
            except CheckpointLoadError as err:
                if str(resume) != "auto" or i == len(candidates) - 1:
                    raise
                log.warning("%s; trying the previous checkpoint", err)
                continue
            if state.layout and state.layout != layout:
                log.warning("resuming %s written with data layout %s, now %s: the data order differs from the interrupted run",
                            path, state.layout, layout)
            state.layout = layout
            log.info("resumed from %s at step %d (epoch %d, batch %d)", path, state.step, state.epoch, state.batch_in_epoch)
            return state, True
        return TrainState(layout=layout), False

    def _run_epoch(self, state: TrainState, target: int, logger: MetricsLogger, bar: tqdm) -> None:
        cfg, accum = self.cfg, self.cfg.grad_accum_steps
        usable = self.steps_per_epoch * accum
        bar.set_description(f"epoch {state.epoch + 1}/{cfg.epochs} [{torch.get_num_threads()} threads]")
        self.module.train()
        if state.batch_in_epoch < usable:
            prepare_epoch(self.loader, state.epoch, state.batch_in_epoch)
            window = _Window(self.device)
            batches = iter(self.loader)
            ddp = self.train_module if isinstance(self.train_module, DistributedDataParallel) else None
            for b in range(state.batch_in_epoch, usable):
                last_micro = (b + 1) % accum == 0
                sync = contextlib.nullcontext() if last_micro or ddp is None else ddp.no_sync()
                with sync:
                    with autocast(self.device, self.precision):
                        loss, logs = self.step_fn(self.train_module, next(batches))
                    self._backward(loss / accum)
                window.add_micro(loss, logs, accum)
                if not last_micro:
                    continue
                if not math.isfinite(window.end_step()):
                    raise FloatingPointError(f"non-finite loss before step {state.step + 1} (epoch {state.epoch}, batch {b}); "
                                             f"the newest checkpoint is {self.checkpoints.latest()}")
                window.lr = self.optimizer.param_groups[0]["lr"]  # the LR this step uses
                window.add_grad_norm(self._optimizer_step())
                state.step += 1
                state.batch_in_epoch = b + 1
                bar.update(1)
                epoch_done = state.batch_in_epoch == usable
                if state.step % cfg.log_every_steps == 0 or epoch_done or state.step == target:
                    self._log_train(state, window, logger, bar)
                    window = _Window(self.device)
                if epoch_done:
                    break  # validation and checkpoint of the epoch's last step happen at the epoch end
                if cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0:
                    self._validate(state, logger)
                if state.step == target or (cfg.checkpoint_every_steps and state.step % cfg.checkpoint_every_steps == 0):
                    self._save_checkpoint(state)
                if state.step == target:
                    return
            del batches  # shut down loader workers before validation
        state.epoch += 1
        state.batch_in_epoch = 0
        epoch_eval = cfg.eval_every_epochs and state.epoch % cfg.eval_every_epochs == 0
        if epoch_eval or (cfg.eval_every_steps and state.step % cfg.eval_every_steps == 0):
            self._validate(state, logger)
        self._save_checkpoint(state)

    # ------------------------------------------------------------------------------ pieces
    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _optimizer_step(self) -> torch.Tensor | None:
        grad_norm = None
        if self.cfg.grad_clip_norm is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            params = [p for p in self.module.parameters() if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        return grad_norm

    def _log_train(self, state: TrainState, window: "_Window", logger: MetricsLogger, bar: tqdm) -> None:
        means = window.means()
        if self.world_size > 1:  # every rank logs the same keys in the same order: one all-reduce
            keys = sorted(means)
            values = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=self.device)
            dist.all_reduce(values)
            means = dict(zip(keys, (values / self.world_size).tolist()))
        lr = window.lr
        row = {f"train/{k}": v for k, v in means.items()}
        row["train/lr"] = lr
        row["epoch"] = state.epoch + state.batch_in_epoch / self.batches_per_epoch
        row["train/samples_per_s"] = window.samples_per_s(self.sampler.batch_size * self.world_size * self.cfg.grad_accum_steps)
        logger.log(state.step, row)
        bar.set_postfix(loss=f"{means['loss']:.4g}", lr=f"{lr:.3g}", refresh=False)

    def _validate(self, state: TrainState, logger: MetricsLogger) -> None:
        if self.eval_fn is None:
            return
        self.module.eval()
        try:
            metrics = {k: float(as_scalar(v)) for k, v in self.eval_fn().items()}
        finally:
            self.module.train()
        if self.world_size > 1:
            shared = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        self.last_eval = metrics
        logger.log(state.step, {f"val/{k}": v for k, v in metrics.items()})
        policy = self.cfg.best
        if policy is None:
            return
        if policy.metric not in metrics:
            raise KeyError(f"best metric {policy.metric!r} is not among the validation metrics {sorted(metrics)}")
        value = metrics[policy.metric]
        if not policy.improves(value, state.best_metric):
            return
        state.best_metric, state.best_step = value, state.step
        self._save(self.checkpoints.best_path, state)
        if self.is_main:
            log.info("new best %s = %.6g at step %d", policy.metric, value, state.step)
            if self.on_best is not None:
                self.on_best(state, metrics)

    def _save_checkpoint(self, state: TrainState) -> None:
        path = self._save(self.checkpoints.step_path(state.step), state)
        if self.is_main:
            self.checkpoints.prune()
            if self.on_checkpoint is not None:
                self.on_checkpoint(path, state)

    def _save(self, path: Path, state: TrainState) -> Path:
        return save_training_state(path, state=state, modules={"module": self.module}, optimizer=self.optimizer,
                                   scheduler=self.scheduler, scaler=self.scaler, generators=self.generators,
                                   trainable_only=self.cfg.trainable_only_checkpoints)

    def _check_optimizer_params(self) -> None:
        owned = {id(p) for p in self.module.parameters()}
        foreign = sum(1 for g in self.optimizer.param_groups for p in g["params"] if id(p) not in owned)
        if foreign:
            raise ValueError(f"{foreign} optimised parameter(s) are not in the trainer's module: put every trainable "
                             "parameter (logit scales of the loss included) into it, or they are neither checkpointed nor synced")


class _Window:
    """Running sums of the step function's outputs between two metrics rows (kept on the device)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, float] = {}
        self.step_loss = torch.zeros((), dtype=torch.float64, device=device)
        self.steps = 0
        self.grad_norms: list[torch.Tensor] = []
        self.lr = float("nan")  #: LR of the window's latest optimiser step
        self.started = time.monotonic()

    def add_micro(self, loss: torch.Tensor, logs: Mapping[str, Any], accum: int) -> None:
        """Add one micro-batch, weighted 1/accum: a step's value is the mean over its micro-batches."""
        self.step_loss += loss.detach().double() / accum
        for k, v in logs.items():
            value = v.detach().double() if isinstance(v, torch.Tensor) else torch.tensor(float(as_scalar(v)), dtype=torch.float64)
            self.sums[k] = self.sums.get(k, 0) + value.to(self.device) / accum
            self.counts[k] = self.counts.get(k, 0.0) + 1.0 / accum

    def end_step(self) -> float:
        """Close the optimiser step's loss and return it (one host sync per optimiser step)."""
        loss = float(self.step_loss)
        self.sums["loss"] = self.sums.get("loss", 0) + self.step_loss
        self.counts["loss"] = self.counts.get("loss", 0.0) + 1.0
        self.step_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.steps += 1
        return loss

    def add_grad_norm(self, grad_norm: torch.Tensor | None) -> None:
        if grad_norm is not None:
            self.grad_norms.append(grad_norm.detach().double())

    def means(self) -> dict[str, float]:
        """Per-name means over the optimiser steps of the window (``grad_norm`` when clipping)."""
        out = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        if self.grad_norms:
            out["grad_norm"] = float(torch.stack(self.grad_norms).mean())
        return out

    def samples_per_s(self, samples_per_step: int) -> float:
        elapsed = time.monotonic() - self.started
        return self.steps * samples_per_step / elapsed if elapsed > 0 else float("nan")
