"""Seeding and capture/restore of every RNG a training step may draw from.

The state of a process: Python's ``random``, NumPy's global RNG, torch's CPU RNG,
the CUDA RNGs of all visible devices (reading them is cheap: each is a seed and
an offset kept on the host), and any named ``numpy.random.Generator`` /
``torch.Generator`` the caller owns. States are encoded as plain data (NumPy
arrays as raw bytes) so checkpoints load with torch's ``weights_only=True``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

Generators = Mapping[str, "np.random.Generator | torch.Generator"]


class RngStateError(ValueError):
    """A captured RNG state does not fit the generators given to restore it."""


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from ``(seed, rank)``.

    Ranks get different streams (different dropout masks and augmentations);
    DDP makes the initial weights equal by broadcasting rank 0's.
    """
    seeds = np.random.SeedSequence([seed, rank]).generate_state(3, dtype=np.uint32)
    random.seed(int(seeds[0]))
    np.random.seed(int(seeds[1]))
    torch.manual_seed(int(seeds[2]))  # also seeds every CUDA device


def capture_rng_state(generators: Generators | None = None) -> dict[str, Any]:
    """This process's RNG states (Python, NumPy global, torch CPU, CUDA, and ``generators``)."""
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # legacy=True gives the tuple form (numpy's stubs do not tell the forms apart)
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_name, "keys": _encode_array(np_keys), "pos": int(np_pos),
            "has_gauss": int(np_has_gauss), "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {},
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, np.random.Generator):
            state["generators"][name] = {"kind": "numpy", "state": _encode_arrays(gen.bit_generator.state)}
        elif isinstance(gen, torch.Generator):
            state["generators"][name] = {"kind": "torch", "state": gen.get_state()}
        else:
            raise TypeError(f"generator {name!r} must be a numpy.random.Generator or torch.Generator, got {type(gen).__name__}")
    return state


def restore_rng_state(state: Mapping[str, Any], generators: Generators | None = None) -> None:
    """Set the RNGs captured by :func:`capture_rng_state` (``generators`` matched by name)."""
    random.setstate(_as_tuple(state["python"]))
    npg = state["numpy"]
    np.random.set_state((npg["name"], _decode_array(npg["keys"]), npg["pos"], npg["has_gauss"], npg["gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if torch.cuda.is_available() and cuda:
        here = torch.cuda.device_count()
        if len(cuda) != here:
            log.warning(
                "checkpoint has CUDA RNG states of %d device(s), this process sees %d: restoring the first %d",
                len(cuda), here, min(len(cuda), here),
            )
        for index, cuda_state in enumerate(cuda[:here]):
            torch.cuda.set_rng_state(cuda_state, index)
    elif cuda:
        log.warning("checkpoint has CUDA RNG states but CUDA is not available here: they are not restored")
    saved = state["generators"]
    given = dict(generators or {})
    if set(saved) != set(given):
        raise RngStateError(f"checkpoint has RNG generators {sorted(saved)}, the caller passed {sorted(given)}")
    for name, gen in given.items():
        entry = saved[name]
        if entry["kind"] == "numpy" and isinstance(gen, np.random.Generator):
            gen.bit_generator.state = _decode_arrays(entry["state"])
        elif entry["kind"] == "torch" and isinstance(gen, torch.Generator):
            gen.set_state(entry["state"])
        else:
            raise RngStateError(f"generator {name!r}: checkpoint holds a {entry['kind']} generator, got {type(gen).__name__}")


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def _encode_array(a: np.ndarray) -> dict[str, Any]:
    """An ndarray as plain data torch's ``weights_only`` loader accepts (raw bytes, dtype, shape)."""
    a = np.ascontiguousarray(a)
    return {"ndarray": torch.frombuffer(bytearray(a.tobytes()), dtype=torch.uint8), "dtype": a.dtype.str, "shape": list(a.shape)}


def _decode_array(d: Mapping[str, Any]) -> np.ndarray:
    return np.frombuffer(d["ndarray"].numpy().tobytes(), dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


def _encode_arrays(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return _encode_array(x)
    if isinstance(x, dict):
        return {k: _encode_arrays(v) for k, v in x.items()}
    return x


def _decode_arrays(x: Any) -> Any:
    if isinstance(x, dict):
        return _decode_array(x) if "ndarray" in x else {k: _decode_arrays(v) for k, v in x.items()}
    return x
