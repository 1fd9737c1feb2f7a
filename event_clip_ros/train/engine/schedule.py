"""Learning-rate rule, warmup + half-cosine schedule, and the AdamW optimiser of the paper's code.

Method (Jeong et al.'s ``trainer.py``, paper-method.md 1.6)
    * LR scaling: ``lr = base_lr * global_batch / 256`` where the global batch is
      per-device batch x world size x gradient-accumulation steps (the official
      code has no accumulation: #GPU x nodes x batch / 256).
    * Schedule, evaluated per optimiser step ``s`` (the official code sets the LR
      before every iteration from the fractional epoch, which is the same thing):
      ``floor + (peak - floor) * s / W`` during the ``W`` warmup steps, then
      ``floor + (peak - floor) * 0.5 * (1 + cos(pi * (s - W) / (T - W)))`` until the
      last step ``T``, and ``floor`` afterwards. The official floor is 0, so the
      very first step runs at LR 0, as there.
    * AdamW with betas (0.9, 0.999) and weight decay 0.03 over every trainable
      parameter, logit scales included (the official default). Optionally
      (``exclude_from_decay``) biases, normalisation gains, logit scales and
      embeddings get no decay, as in open_clip's and timm's training: decay pulls
      such parameters toward 0 (a LayerNorm gain of 0 silences its features, a
      logit scale toward 0 flattens the softmax, a positional embedding toward 0
      erases position) instead of limiting capacity like decay on weight matrices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

#: Global batch the base LR refers to (the official ``batch / 256`` rule).
REFERENCE_BATCH = 256

#: Name fragments of parameters exempt from weight decay besides 0-d/1-d tensors (open_clip and timm names).
NO_DECAY_NAME_PARTS = ("logit_scale", "embedding", "pos_embed", "cls_token")


def global_batch_size(per_device_batch: int, world_size: int = 1, grad_accum_steps: int = 1) -> int:
    """Samples per optimiser step over the whole job."""
    for name, value in (("per_device_batch", per_device_batch), ("world_size", world_size), ("grad_accum_steps", grad_accum_steps)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return per_device_batch * world_size * grad_accum_steps


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int = REFERENCE_BATCH) -> float:
    """The linear scaling rule ``base_lr * global_batch / reference_batch``."""
    if not base_lr > 0 or global_batch < 1 or reference_batch < 1:
        raise ValueError(
            f"need base_lr > 0 and batches >= 1, got base_lr={base_lr} global_batch={global_batch} reference_batch={reference_batch}"
        )
    return base_lr * global_batch / reference_batch


class WarmupCosine:
    """LR factor of optimiser step ``s``: linear warmup from ``floor`` to 1, half-cosine back to ``floor``.

    A callable object rather than a closure, so :class:`~torch.optim.lr_scheduler.LambdaLR`
    stores its fields in ``state_dict()`` and a resumed run continues the same curve.
    """

    def __init__(self, warmup_steps: int, total_steps: int, floor: float = 0.0) -> None:
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, got {warmup_steps}, {total_steps}")
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor (min_lr_ratio) must be in [0, 1], got {floor}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.floor = float(floor)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            progress = step / self.warmup_steps
        elif step >= self.total_steps:
            progress = 0.0
        else:
            progress = 0.5 * (1.0 + math.cos(math.pi * (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)))
        return self.floor + (1.0 - self.floor) * progress


@dataclass
class ScheduleConfig:
    """Warmup + half-cosine schedule (official: 40 of 200 epochs of warmup, floor 0)."""

    warmup_epochs: float = 40.0  #: linear warmup length; fractional epochs allowed
    min_lr_ratio: float = 0.0  #: the floor, as a fraction of the peak LR


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, steps_per_epoch: int) -> LambdaLR:
    """A per-optimiser-step :class:`LambdaLR` over ``epochs * steps_per_epoch`` steps.

    Call ``scheduler.step()`` after every ``optimizer.step()``; the optimiser's LR
    then is ``peak * WarmupCosine(s)`` at its ``s``-th step (0-based). Warmup is
    capped at the whole run.
    """
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
    if cfg.warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {cfg.warmup_epochs}")
    total = epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    return LambdaLR(optimizer, WarmupCosine(warmup, total, cfg.min_lr_ratio))


@dataclass
class OptimizerConfig:
    """AdamW settings; defaults are the official pre-training ones (paper-method.md 1.6)."""

    base_lr: float = 1e-6  #: LR per 256 samples of global batch (fine-tuning: 5e-6)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.03
    exclude_from_decay: bool = False  #: True: no decay on biases, norms, logit scales, embeddings (see module doc)
    reference_batch: int = REFERENCE_BATCH


def decays(name: str, param: torch.Tensor) -> bool:
    """Whether ``exclude_from_decay`` keeps weight decay on this parameter (weight matrices and kernels)."""
    return param.ndim >= 2 and not any(part in name for part in NO_DECAY_NAME_PARTS)


def build_optimizer(
    named_params: Iterable[tuple[str, nn.Parameter]], cfg: OptimizerConfig, *, global_batch: int
) -> torch.optim.AdamW:
    """AdamW at ``scaled_lr(cfg.base_lr, global_batch)`` over the parameters that require grad.

    ``named_params``: e.g. ``module.named_parameters()``; frozen parameters are
    skipped, and a parameter listed twice (shared) is optimised once. With
    ``cfg.exclude_from_decay`` the parameters fall into a decayed and a
    non-decayed group (see :func:`decays`); otherwise one group decays all.
    """
    lr = scaled_lr(cfg.base_lr, global_batch, cfg.reference_batch)
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for name, param in named_params:
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if not cfg.exclude_from_decay or decays(name, param) else no_decay).append(param)
    if not seen:
        raise ValueError("build_optimizer got no trainable parameters (all frozen or none given)")
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=cfg.betas, eps=cfg.eps)
