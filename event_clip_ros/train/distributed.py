"""Process-group set-up for torchrun/DDP and the collectives the losses need.

Launch with ``torchrun --nproc_per_node N script.py``: torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
:func:`init_distributed` joins the group (nccl on CUDA, one GPU per local rank;
gloo on CPU). Started without torchrun, it stays single-process and every helper
here is the identity (no process group needed), so the same training code runs
on a laptop and on a cluster.

The collectives keep autograd: :func:`gather_with_grad` (as open_clip's
``gather_features(..., gather_with_grad=True)``) and :func:`all_reduce_sum` send
the gradient of every rank's loss back to the rank that owns each slice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..model.device import resolve_device

#: What torchrun sets in each worker's environment.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int  #: global rank, 0..world_size-1
    local_rank: int  #: rank on this node (selects the GPU)
    world_size: int  #: number of processes in the job
    device: torch.device  #: the device this process trains on


def init_distributed(backend: str | None = None, device: str | torch.device = "auto", timeout_s: float = 1800.0) -> DistEnv:
    """Join the torchrun process group, or stay single-process when not launched by torchrun.

    ``device``: "auto" (CUDA when present, else CPU), "cpu" or "cuda"; a CUDA device
    without an index becomes ``cuda:LOCAL_RANK``. ``backend``: None picks nccl on
    CUDA and gloo on CPU. ``timeout_s``: how long a collective may wait for the other
    ranks before failing (instead of hanging). Calling it again in a process that
    has joined already returns the same environment.
    """
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
        return DistEnv(rank=0, local_rank=0, world_size=1, device=resolve_device(device))
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(f"distributed launch needs {', '.join(TORCHRUN_ENV)} in the environment (as torchrun sets them); missing "
                         f"{', '.join(missing)}")
    rank, world_size, local_rank = (_env_int(name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world_size} LOCAL_RANK={local_rank}")

    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = resolve_device(f"cuda:{local_rank}") if dev.index is None else dev
        torch.cuda.set_device(dev)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
            raise RuntimeError(f"a process group is already initialised as rank {dist.get_rank()}/{dist.get_world_size()}, not "
                               f"{rank}/{world_size}")
    else:
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
            device_id=dev if dev.type == "cuda" else None,
        )
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def get_rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes in the job (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that logs and writes checkpoints (rank 0)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if get_world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (no-op when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _summed_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of ``x`` all-reduced with SUM (no autograd)."""
    out = x.detach().contiguous().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradient over ranks and returns this rank's slice.

    Written here rather than taken from ``torch.distributed.nn`` (deprecated; its gloo
    backward mishandles non-contiguous gradients, e.g. after a transpose). The
    backward all-reduces the whole (world_size * B, D) gradient: a little more traffic
    than a reduce-scatter, but every backend supports it, and embeddings are small.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = _summed_over_ranks(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of the sum is the sum of all ranks' gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return _summed_over_ranks(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _summed_over_ranks(grad)


class _MeanGradAcrossRanks(torch.autograd.Function):
    """Identity whose backward averages the gradient over ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _summed_over_ranks(grad) / dist.get_world_size()


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` (B, ...) along dim 0 -> (world_size * B, ...), rank order.

    Gradients flow: the backward pass sums the gradients that all ranks' losses put
    on slice r and hands them to rank r (so every rank must run the backward). Identity
    for one process. Every rank must pass the same batch size (use drop_last in the
    sampler); a mismatch raises ValueError on all ranks instead of corrupting the gather.
    """
    world_size = get_world_size()
    if world_size == 1:
        return x
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    if any(int(s) != x.shape[0] for s in sizes):
        raise ValueError(f"gather_with_grad needs the same batch size on every rank, got {[int(s) for s in sizes]}")
    return _GatherWithGrad.apply(x)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Elementwise sum of ``x`` over all ranks (``x`` itself is not modified).

    Differentiable: the gradient of ``x`` is the sum of all ranks' gradients of the
    result. Identity for one process.
    """
    return x if get_world_size() == 1 else _AllReduceSum.apply(x)


def mean_grad_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged, but its gradient is averaged over ranks in the backward pass.

    What DDP does for the parameters it wraps, for a parameter that lives outside the
    DDP module (e.g. a loss's learnable scale), so that it stays identical on every
    rank. Every rank must run the backward. Identity for one process.
    """
    return x if get_world_size() == 1 else _MeanGradAcrossRanks.apply(x)


def all_reduce_logsumexp(x: torch.Tensor) -> torch.Tensor:
    """log(sum over ranks of exp(x)), elementwise, without overflow.

    The log-domain counterpart of :func:`all_reduce_sum`: every rank's values are
    shifted by the common elementwise maximum before exponentiating.
    """
    if get_world_size() == 1:
        return x
    shift = x.detach().clone()
    dist.all_reduce(shift, op=dist.ReduceOp.MAX)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return shift + torch.log(all_reduce_sum(torch.exp(x - shift)))
