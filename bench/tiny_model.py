"""The benches' model: EventCLIP-Tiny with seeded random weights, saved as a checkpoint a node can load."""

from __future__ import annotations

from pathlib import Path

import torch

from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import save_checkpoint


def write_tiny_checkpoint(folder: Path) -> Path:
    """``folder``/tiny.safetensors: EventCLIP-Tiny, random weights of seed 0 (the same model every run)."""
    torch.manual_seed(0)
    path = folder / "tiny.safetensors"
    save_checkpoint(create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu")), path)
    return path
