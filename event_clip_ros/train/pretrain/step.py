"""One pre-training step: event frames through f_E, paired images through frozen f_I, the paper's loss.

Per batch (paper-method.md 1.3-1.5):

1. frames from the batch's events, built on the training device with the
   model's FrameConfig, then (optionally) the official random resized crop and
   horizontal flip of the frames only (the image is not cropped, as in the code);
2. ``img = f_I(image)``, unnormalised, without gradients: the images were
   converted to 3 channels and run through CLIP's preprocessing by the loader
   (:class:`~.data.PairedCollate`);
3. the reference ("foundation") image embeddings of L_kl's targets are the same
   ``img``: the official foundation model is a frozen copy of the same CLIP;
4. ``L = w_ct L_ct + w_kl L_kl + alpha L_zs`` (:class:`PretrainLoss`) with the
   text of the seen classes' prompts (no gradients) in L_zs.

The trainable module (:class:`PretrainModule`) is f_E plus the loss, whose
learnable L_zs logit scale must be optimised, checkpointed and (under DDP)
synchronised with f_E.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ...events.frames import FrameConfig, build_frames_torch
from ...model.event_clip import EventClip
from ..config import ConfigError
from ..data import FrameAugmentConfig, augment_frames
from ..losses import PretrainLoss, PretrainLossConfig


def freeze_parameters(module: nn.Module, prefixes: Sequence[str]) -> int:
    """Stop training the parameters of ``module`` named by ``prefixes`` (a name, or a dotted prefix: ``layer4``
    freezes ``layer4.0.conv1.weight``); returns how many values were frozen. Their BatchNorm statistics, buffers,
    still follow the inputs in training mode. A prefix that names no parameter is an error listing the top-level
    names, so that a typo does not silently train everything."""
    named = dict(module.named_parameters())
    frozen = 0
    for prefix in prefixes:
        matched = [p for name, p in named.items() if name == prefix or name.startswith(prefix + ".")]
        if not matched:
            tops = sorted({name.split(".")[0] for name in named})
            raise ConfigError(f"model.frozen: {prefix!r} names no parameter of f_E (top-level names: {', '.join(tops)})")
        for param in matched:
            if param.requires_grad:
                frozen += param.numel()
                param.requires_grad_(False)
    return frozen


class PretrainModule(nn.Module):
    """f_E (``event_tower``, shared with the EventClip it came from) and the loss with its logit scale."""

    def __init__(self, event_tower: nn.Module, loss_config: PretrainLossConfig) -> None:
        super().__init__()
        self.event_tower = event_tower
        self.loss = PretrainLoss(loss_config)
        if not loss_config.use_zs:  # unused: leave it out of the optimiser (DDP would wait for its gradient)
            self.loss.zs_logit_scale.requires_grad_(False)

    def forward(self, event_input: torch.Tensor, img: torch.Tensor, img_ref: torch.Tensor,
                text: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss and its parts for f_E's input (B, 3, H, W) and the (B, D) / (C, D) frozen embeddings."""
        evt = self.event_tower(event_input).float()
        return self.loss(img, img_ref, evt, text)


class PretrainStep:
    """The trainer's ``step_fn``: ``(module, batch) -> (loss, logs)`` for :class:`PretrainModule`."""

    def __init__(self, model: EventClip, text: torch.Tensor | None, frame_augment: FrameAugmentConfig | None,
                 generator: torch.Generator) -> None:
        self.model = model
        self.frame_config: FrameConfig = model.frame_config
        self.text = text
        self.frame_augment = frame_augment
        self.generator = generator

    def __call__(self, module: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict[str, float]]:
        frames = build_frames_torch(batch["events"], batch["size"], self.frame_config, self.model.device)
        if self.frame_augment is not None:
            frames = augment_frames(frames, self.generator, self.frame_augment)
        with torch.no_grad():
            img = self.model.encode_images(batch["pixels"], normalize=False)
        return module(self.model.frames_to_input(frames), img, img, self.text)


@torch.no_grad()
def prompt_embeddings(model: EventClip, prompts: list[str]) -> torch.Tensor:
    """Unnormalised f_T embeddings (C, D) of ``prompts`` for L_zs (an ordinary tensor, not an inference one)."""
    return model.encode_texts(prompts, normalize=False)
