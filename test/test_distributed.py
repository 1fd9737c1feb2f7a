"""Distributed helpers: single-process behaviour, and a 2-process gloo run on CPU whose
losses and gradients match one process on the same global batch.

The 2-process run starts this file as a script twice with the environment torchrun
would set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); each worker saves
its results, and the test compares them with a single-process computation. Scaling
checked: each rank's loss is the mean over its local rows, so the mean of the ranks'
losses is the global loss; the gathers sum all ranks' gradients into each slice, so a
rank's embedding gradient is world_size x the global one, and after DDP's averaging over
ranks the parameter gradients equal the single-process ones exactly.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from event_clip_ros.train import distributed as du
from event_clip_ros.train.losses import (
    ZS_LOGIT_SCALE_INIT,
    PretrainLoss,
    PretrainLossConfig,
    contrastive_loss,
    relation_kl_loss,
    zero_shot_distill_loss,
)

pytestmark = pytest.mark.slow  # the quick tier (scripts/test.sh --quick) leaves it out

REPO_ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
B_LOCAL, D, C, IN_DIM = 3, 8, 4, 10


# ------------------------------------------------------------ single process
@pytest.fixture
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in du.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


def test_single_process_without_torchrun(no_torchrun_env) -> None:
    env = du.init_distributed(device="cpu")
    assert env == du.DistEnv(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    assert (du.get_rank(), du.get_world_size(), du.is_main()) == (0, 1, True)
    x = torch.randn(3, 4, requires_grad=True)
    assert du.gather_with_grad(x) is x
    assert du.all_reduce_sum(x) is x and du.mean_grad_across_ranks(x) is x and du.all_reduce_logsumexp(x) is x
    du.barrier()
    du.cleanup()


def test_partial_torchrun_env_is_a_clear_error(no_torchrun_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="missing LOCAL_RANK, MASTER_ADDR, MASTER_PORT"):
        du.init_distributed(device="cpu")


@pytest.mark.parametrize(("rank", "world"), [("x", "2"), ("2", "2"), ("0", "0")])
def test_inconsistent_torchrun_env_is_a_clear_error(no_torchrun_env, monkeypatch: pytest.MonkeyPatch, rank: str, world: str) -> None:
    for name, value in {"RANK": rank, "WORLD_SIZE": world, "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="RANK"):
        du.init_distributed(device="cpu")


# -------------------------------------------------- the shared computation
def global_batch() -> dict[str, torch.Tensor]:
    """One global batch (WORLD * B_LOCAL samples), float64, identical in every process."""
    g = torch.Generator().manual_seed(1234)
    n = WORLD * B_LOCAL
    img_fi = torch.randn(n, D, generator=g, dtype=torch.float64)
    return {
        "img_fi": img_fi,
        "img_ref": img_fi + 0.3 * torch.randn(n, D, generator=g, dtype=torch.float64),
        "evt": img_fi + torch.randn(n, D, generator=g, dtype=torch.float64),
        "text": torch.randn(C, D, generator=g, dtype=torch.float64) / 2,
        "inputs": torch.randn(n, IN_DIM, generator=g, dtype=torch.float64),
    }


def compute(rank: int, world: int) -> dict[str, torch.Tensor]:
    """Losses and gradients on this rank's slice of :func:`global_batch`.

    Run with world=1 (no process group) it is the single-process reference.
    """
    batch = global_batch()
    b = batch["img_fi"].shape[0] // world
    local = {k: v[rank * b : (rank + 1) * b] for k, v in batch.items() if k != "text"}
    text = batch["text"]
    out: dict[str, torch.Tensor] = {}

    terms = {
        "ct": lambda e, s: contrastive_loss(local["img_fi"], e, tau_e=0.02),
        "kl": lambda e, s: relation_kl_loss(local["img_fi"], local["img_ref"], e, tau_i=0.01),
        "kl_tau0.1": lambda e, s: relation_kl_loss(local["img_fi"], local["img_ref"], e, tau_i=0.1),
        "zs": lambda e, s: zero_shot_distill_loss(local["img_fi"], e, text, s, tau=2.0),
    }
    for name, fn in terms.items():
        evt = local["evt"].clone().requires_grad_()
        scale = torch.tensor(ZS_LOGIT_SCALE_INIT, dtype=torch.float64, requires_grad=True)
        loss = fn(evt, scale)
        loss.backward()
        out[f"{name}/loss"] = loss.detach()
        out[f"{name}/grad_evt"] = evt.grad
        if name == "zs":
            out[f"{name}/grad_scale"] = scale.grad

    # The combined loss behind a DDP-wrapped f_E (a linear layer here).
    torch.manual_seed(0)
    f_e = torch.nn.Linear(IN_DIM, D, dtype=torch.float64)
    model = torch.nn.parallel.DistributedDataParallel(f_e) if world > 1 else f_e
    criterion = PretrainLoss(PretrainLossConfig(tau_i=0.1)).double()
    evt = model(local["inputs"])
    evt.retain_grad()
    total, _ = criterion(local["img_fi"], local["img_ref"], evt, text)
    total.backward()
    out["combined/loss"] = total.detach()
    out["combined/grad_evt"] = evt.grad
    out["combined/grad_weight"] = f_e.weight.grad
    out["combined/grad_bias"] = f_e.bias.grad
    out["combined/grad_scale"] = criterion.zs_logit_scale.grad
    return out


def worker(out_dir: str) -> None:
    """One rank of the 2-process run (started by the test with torchrun's environment)."""
    torch.set_num_threads(1)
    env = du.init_distributed(device="cpu", timeout_s=60)
    assert env.world_size == WORLD and du.get_rank() == env.rank
    out = compute(env.rank, env.world_size)

    # Collectives themselves: gather whose upstream gradient is non-contiguous (torch.distributed.nn's
    # gloo all_gather gets this wrong), differentiable sum, overflow-free log-sum-exp, batch-size check.
    x = (torch.arange(6.0, dtype=torch.float64).view(2, 3) + 10 * env.rank).requires_grad_()
    weights = torch.arange(12.0, dtype=torch.float64).view(3, 4)
    (du.gather_with_grad(x).T * weights).sum().backward()  # d/dx_r = WORLD * weights.T[rank rows]
    out["gather/grad_transposed"] = x.grad
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, 10.0], dtype=torch.float64) * (env.rank + 1)
    (du.all_reduce_sum(x * (env.rank + 1)) * weights).sum().backward()
    out["sum/grad"] = x.grad
    out["lse"] = du.all_reduce_logsumexp(torch.tensor([1000.0 + env.rank, -5.0 * env.rank], dtype=torch.float64))
    try:
        du.gather_with_grad(torch.zeros(2 + env.rank, 3))
        out["unequal_batch_raised"] = torch.tensor(False)
    except ValueError:
        out["unequal_batch_raised"] = torch.tensor(True)
    out["is_main"] = torch.tensor(du.is_main())
    du.barrier()
    torch.save(out, Path(out_dir) / f"rank{env.rank}.pt")
    du.cleanup()


# ------------------------------------------------------------ 2-process run
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, torch.Tensor]]:
    out_dir = tmp_path_factory.mktemp("ddp")
    port = _free_port()
    procs = []
    for rank in range(WORLD):
        env = dict(os.environ)
        env.update(
            RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
            OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, str(out_dir)], cwd=REPO_ROOT, env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        )
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=120)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for rank, (proc, log) in enumerate(zip(procs, logs)):
        assert proc.returncode == 0, f"rank {rank} exited with {proc.returncode}:\n{log}"
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@pytest.fixture(scope="module")
def single_process() -> dict[str, torch.Tensor]:
    return compute(rank=0, world=1)


@pytest.mark.parametrize("term", ["ct", "kl", "kl_tau0.1", "zs", "combined"])
def test_two_ranks_match_one_process(two_rank_results, single_process, term: str) -> None:
    ranks, ref = two_rank_results, single_process
    # Loss: each rank's is the mean over its rows; their mean is the global-batch loss.
    mean_loss = sum(r[f"{term}/loss"] for r in ranks) / WORLD
    torch.testing.assert_close(mean_loss, ref[f"{term}/loss"], rtol=1e-9, atol=1e-12)
    # Embedding gradients: rank r's slice holds the sum over ranks' losses = WORLD x the global gradient.
    for rank, r in enumerate(ranks):
        expected = ref[f"{term}/grad_evt"][rank * B_LOCAL : (rank + 1) * B_LOCAL]
        assert expected.abs().sum() > 0
        torch.testing.assert_close(r[f"{term}/grad_evt"] / WORLD, expected, rtol=1e-9, atol=1e-12)


def test_two_ranks_parameter_gradients_match_one_process(two_rank_results, single_process) -> None:
    # DDP averaged f_E's gradients and mean_grad_across_ranks the L_zs logit scale's: every rank
    # holds exactly the single-process gradient.
    for r in two_rank_results:
        for name in ("grad_weight", "grad_bias", "grad_scale"):
            torch.testing.assert_close(r[f"combined/{name}"], single_process[f"combined/{name}"], rtol=1e-9, atol=1e-12)
    # A bare scale tensor (neither DDP nor mean_grad_across_ranks) gets per-rank gradients whose mean is the global one.
    mean_scale_grad = sum(r["zs/grad_scale"] for r in two_rank_results) / WORLD
    torch.testing.assert_close(mean_scale_grad, single_process["zs/grad_scale"], rtol=1e-9, atol=1e-12)


def test_two_rank_collectives(two_rank_results) -> None:
    r0, r1 = two_rank_results
    weights_t = torch.arange(12.0, dtype=torch.float64).view(3, 4).T
    for rank, r in enumerate(two_rank_results):
        torch.testing.assert_close(r["gather/grad_transposed"], WORLD * weights_t[2 * rank : 2 * rank + 2])
    # d/dx of sum_r w_r . all_reduce_sum(x_0 * 1 + x_1 * 2) on rank r: (rank + 1) * (w_0 + w_1).
    torch.testing.assert_close(r0["sum/grad"], torch.tensor([3.0, 30.0], dtype=torch.float64))
    torch.testing.assert_close(r1["sum/grad"], torch.tensor([6.0, 60.0], dtype=torch.float64))
    expected = torch.logaddexp(torch.tensor([1000.0, 0.0], dtype=torch.float64), torch.tensor([1001.0, -5.0], dtype=torch.float64))
    for r in (r0, r1):
        assert torch.isfinite(r["lse"]).all()
        torch.testing.assert_close(r["lse"], expected)
        assert bool(r["unequal_batch_raised"])
    assert bool(r0["is_main"]) and not bool(r1["is_main"])


if __name__ == "__main__":
    worker(sys.argv[1])
