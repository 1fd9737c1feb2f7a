"""Randomness keyed by integers, not streamed: the same keys give the same generator in any process or order."""

from __future__ import annotations

import numpy as np


def keyed_rng(*keys: int) -> np.random.Generator:
    """A generator determined by non-negative integer keys (e.g. seed, epoch, index)."""
    if any(k < 0 for k in keys):
        raise ValueError(f"random keys must be non-negative integers, got {keys}")
    return np.random.default_rng([int(k) for k in keys])
