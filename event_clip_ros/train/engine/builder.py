"""A run's optimiser, LR schedule and :class:`Trainer`, from its ``optim`` and ``runtime`` config sections.

Pre-training and fine-tuning set up the loop the same way: AdamW at ``base_lr`` scaled to the global
batch, the warmup + half-cosine schedule per optimiser step over ``optim.epochs``, and the trainer with
the sections' precision, clipping and cadence. They differ in the module, the data, the step and the
hooks, which the caller passes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from ..config import OptimSection, RuntimeSection
from .loop import BestHook, DistInfo, EvalFn, StepFn, Trainer, TrainerConfig
from .rng import Generators
from .sampler import resumable_sampler
from .schedule import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler, global_batch_size

log = logging.getLogger(__name__)


def build_trainer(
    optim: OptimSection,
    runtime: RuntimeSection,
    *,
    output_dir: str | Path,
    module: nn.Module,
    loader: DataLoader,
    step_fn: StepFn,
    dist_env: DistInfo,
    eval_fn: EvalFn | None = None,
    on_best: BestHook | None = None,
    generators: Generators | None = None,
    **loop: Any,
) -> Trainer:
    """The trainer of ``module`` over ``loader`` (from :func:`~.sampler.build_loader`), with new AdamW and schedule.

    The global batch that scales the LR is the loader's per-device batch x ranks x ``optim.grad_accum_steps``.
    ``loop``: further :class:`TrainerConfig` fields (``best``, ``resume``, ``max_steps``, ``eval_every_steps``,
    ``checkpoint_every_steps``, ...).
    """
    global_batch = global_batch_size(resumable_sampler(loader).batch_size, dist_env.world_size, optim.grad_accum_steps)
    optimizer = build_optimizer(
        module.named_parameters(),
        OptimizerConfig(base_lr=optim.base_lr, weight_decay=optim.weight_decay, exclude_from_decay=optim.exclude_from_decay),
        global_batch=global_batch,
    )
    steps_per_epoch = Trainer.optimizer_steps_per_epoch(loader, optim.grad_accum_steps)
    scheduler = build_scheduler(optimizer, ScheduleConfig(optim.warmup_epochs, optim.min_lr_ratio), optim.epochs,
                                steps_per_epoch)
    loop.setdefault("eval_every_epochs", runtime.eval_every_epochs)
    cfg = TrainerConfig(output_dir=output_dir, epochs=optim.epochs, grad_accum_steps=optim.grad_accum_steps,
                        precision=runtime.precision, grad_clip_norm=optim.grad_clip_norm,
                        log_every_steps=runtime.log_every_steps, keep_last=runtime.keep_last,
                        progress=runtime.progress, tensorboard=runtime.tensorboard, **loop)
    log.info("training in %s: %d epochs of %d optimiser steps (global batch %d, peak LR %.3g)", output_dir,
             optim.epochs, steps_per_epoch, global_batch, scheduler.base_lrs[0])
    return Trainer(cfg, module=module, optimizer=optimizer, loader=loader, step_fn=step_fn, scheduler=scheduler,
                   eval_fn=eval_fn, dist_env=dist_env, on_best=on_best, generators=generators)
