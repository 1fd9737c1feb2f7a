"""The reusable training engine: schedule, data order, checkpoints, metrics, evaluation and the loop.

=================  ==========================================================
module             what it holds
=================  ==========================================================
``schedule``       LR rule (base_lr x global batch / 256), warmup + half-cosine
                   :class:`~torch.optim.lr_scheduler.LambdaLR`, AdamW builder
``sampler``        :class:`DeterministicBatchSampler` (order fixed by seed and
                   epoch, resumable mid-epoch), :func:`build_loader`
``rng``            :func:`seed_everything`, RNG state capture and restore
``checkpointing``  :class:`TrainState`, atomic resumable training states
                   (:mod:`event_clip_ros.atomic_files`), :class:`CheckpointDir`
                   (last N + best), :class:`BestPolicy`
``metrics``        :class:`MetricsLogger` (JSONL, growing CSV, TensorBoard)
``evaluation``     zero-shot top-1 / top-5 / per-class accuracy
``loop``           :class:`Trainer`, :class:`TrainerConfig`
``builder``        :func:`build_trainer`: AdamW, schedule and trainer from a
                   run's ``optim`` and ``runtime`` config sections
=================  ==========================================================

Losses and datasets live beside this package (``train.losses``, ``train.data``);
the engine knows neither.
"""

from .builder import build_trainer
from .checkpointing import (
    BestPolicy,
    CheckpointDir,
    CheckpointLoadError,
    TrainState,
    load_training_state,
    save_training_state,
)
from .evaluation import ZeroShotAccuracy, embed_event_items, evaluate_zero_shot, zero_shot_accuracy
from .loop import Trainer, TrainerConfig
from .metrics import MetricsLogger
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .sampler import DeterministicBatchSampler, build_loader
from .schedule import (
    OptimizerConfig,
    ScheduleConfig,
    WarmupCosine,
    build_optimizer,
    build_scheduler,
    global_batch_size,
    scaled_lr,
)

__all__ = [
    "BestPolicy",
    "CheckpointDir",
    "CheckpointLoadError",
    "DeterministicBatchSampler",
    "MetricsLogger",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainState",
    "Trainer",
    "TrainerConfig",
    "WarmupCosine",
    "ZeroShotAccuracy",
    "build_loader",
    "build_optimizer",
    "build_scheduler",
    "build_trainer",
    "capture_rng_state",
    "embed_event_items",
    "evaluate_zero_shot",
    "global_batch_size",
    "load_training_state",
    "restore_rng_state",
    "save_training_state",
    "scaled_lr",
    "seed_everything",
    "zero_shot_accuracy",
]
