"""Training engine: LR rule and schedule, optimiser groups, deterministic batches, atomic checkpoints,
kill-and-resume bit identity (a SIGKILLed subprocess; DDP on CPU), best-checkpoint choice, metrics files,
zero-shot evaluation.

Run as a script, this file is the child process of the kill and DDP tests
(``python test/test_engine.py <role> ...``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.train.engine import (
    BestPolicy,
    CheckpointDir,
    CheckpointLoadError,
    DeterministicBatchSampler,
    MetricsLogger,
    OptimizerConfig,
    ScheduleConfig,
    Trainer,
    TrainerConfig,
    TrainState,
    WarmupCosine,
    build_loader,
    build_optimizer,
    build_scheduler,
    embed_event_items,
    evaluate_zero_shot,
    global_batch_size,
    load_training_state,
    save_training_state,
    scaled_lr,
    seed_everything,
    zero_shot_accuracy,
)
from event_clip_ros.train.engine.checkpointing import read_training_state

REPO_ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- a tiny training run
N_SAMPLES, BATCH, ACCUM, EPOCHS = 40, 4, 2, 3  # 10 batches and 5 optimiser steps per epoch, 15 steps
KILL_AT_STEP = 8  # a step checkpoint in the middle of epoch 1 (batch 6 of 10)


class AugmentedPoints(Dataset):
    """Fixed 8-d points with two classes; every item draws augmentation from Python, NumPy and torch RNGs."""

    def __init__(self, n: int) -> None:
        g = np.random.default_rng(1)
        self.x = g.normal(size=(n, 8)).astype(np.float32)
        self.y = (self.x @ g.normal(size=8) > 0).astype(np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.x[i] * random.uniform(0.8, 1.2) + np.random.normal(0.0, 0.1, 8).astype(np.float32)
        return {"x": torch.from_numpy(x) + 0.05 * torch.randn(8), "y": int(self.y[i])}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    return {"x": torch.stack([it["x"] for it in items]), "y": torch.tensor([it["y"] for it in items])}


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.GELU(), nn.Dropout(0.3), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_trainer(
    out_dir: Path,
    *,
    resume: str | None = None,
    dist_env: Any = None,
    eval_fn: Callable[[], Mapping[str, float]] | None = None,
    best: BestPolicy | None = BestPolicy("loss", "min"),
    **overrides: Any,
) -> Trainer:
    """The same run every time: seeded model, augmenting dataset, dropout, a caller-owned NumPy generator."""
    rank, world_size = (0, 1) if dist_env is None else (dist_env.rank, dist_env.world_size)
    seed_everything(0, rank)
    model = Mlp()
    noise = np.random.default_rng(123)  # consumed by the step function; checkpointed through `generators`
    loader = build_loader(
        AugmentedPoints(N_SAMPLES), batch_size=BATCH // world_size, collate_fn=collate, seed=7, rank=rank, world_size=world_size
    )
    optimizer = build_optimizer(
        model.named_parameters(), OptimizerConfig(base_lr=1.0, exclude_from_decay=True), global_batch=global_batch_size(BATCH, 1, ACCUM)
    )
    steps_per_epoch = Trainer.optimizer_steps_per_epoch(loader, ACCUM)
    scheduler = build_scheduler(optimizer, ScheduleConfig(warmup_epochs=1, min_lr_ratio=0.1), EPOCHS, steps_per_epoch)

    def step_fn(module: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = batch["x"] + torch.from_numpy(noise.normal(0.0, 0.05, tuple(batch["x"].shape)).astype(np.float32))
        logits = module(x)
        return F.cross_entropy(logits, batch["y"]), {"acc": (logits.argmax(1) == batch["y"]).float().mean()}

    val_x = torch.from_numpy(np.random.default_rng(2).normal(size=(16, 8)).astype(np.float32))
    val_y = torch.arange(16) % 2

    def val_loss() -> dict[str, float]:
        with torch.inference_mode():
            return {"loss": float(F.cross_entropy(model(val_x), val_y))}

    settings = dict(
        output_dir=out_dir, epochs=EPOCHS, grad_accum_steps=ACCUM, grad_clip_norm=0.5, log_every_steps=2, eval_every_steps=3,
        checkpoint_every_steps=4, keep_last=2, best=best, resume=resume, progress=False, tensorboard=False,
    )
    settings.update(overrides)
    return Trainer(
        TrainerConfig(**settings), module=model, optimizer=optimizer, loader=loader, step_fn=step_fn, scheduler=scheduler,
        eval_fn=eval_fn or val_loss, dist_env=dist_env, generators={"noise": noise},
    )


def assert_equal_state(a: Any, b: Any, where: str = "") -> None:
    """Nested dicts/lists/tensors equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and set(a) == set(b), f"keys differ at {where}: {sorted(a)} vs {sorted(b)}"
        for k in a:
            assert_equal_state(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(a: Trainer, b: Trainer) -> None:
    assert_equal_state(a.module.state_dict(), b.module.state_dict(), "model")
    assert_equal_state(a.optimizer.state_dict(), b.optimizer.state_dict(), "optimizer")
    assert_equal_state(a.scheduler.state_dict(), b.scheduler.state_dict(), "scheduler")
    assert_equal_state(a.generators["noise"].bit_generator.state, b.generators["noise"].bit_generator.state, "noise")


def metric_rows(run_dir: Path) -> list[dict[str, Any]]:
    """metrics.jsonl without its wall-clock columns."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("time", "train/samples_per_s")} for row in rows]


def read_child_until(proc: subprocess.Popen, marker: str) -> None:
    """Read the child's stdout until a line starting with ``marker``; fail with its stderr if it ends first."""
    for line in proc.stdout:
        if line.startswith(marker):
            return
    proc.wait()
    raise AssertionError(f"child ended (code {proc.returncode}) before printing {marker!r}:\n{proc.stderr.read()}")


def start_child(*args: str) -> subprocess.Popen:
    """This file as a child process with this process's torch thread count (CPU float sums depend on it, so
    bit-identical comparisons need both sides to use the same; earlier tests in the session may have changed it)."""
    return subprocess.Popen(
        [sys.executable, __file__, str(torch.get_num_threads()), *args], cwd=REPO_ROOT, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# --------------------------------------------------------------------------------------- schedule
def test_lr_rule_scales_with_the_global_batch():
    assert global_batch_size(32, world_size=8) == 256
    assert global_batch_size(32, world_size=2, grad_accum_steps=4) == 256
    assert scaled_lr(1e-6, 256) == pytest.approx(1e-6)
    assert scaled_lr(1e-6, global_batch_size(32, 4)) == pytest.approx(0.5e-6)  # the official 4-GPU pre-training LR
    assert scaled_lr(5e-6, global_batch_size(20)) == pytest.approx(5e-6 * 20 / 256)  # 1-shot fine-tuning, one GPU
    with pytest.raises(ValueError):
        global_batch_size(0)
    with pytest.raises(ValueError):
        scaled_lr(0.0, 32)


def test_warmup_cosine_values_at_known_steps():
    f = WarmupCosine(warmup_steps=10, total_steps=110, floor=0.1)
    assert f(0) == pytest.approx(0.1)  # warmup starts at the floor (the official code starts at min_lr)
    assert f(5) == pytest.approx(0.55)  # half-way up
    assert f(10) == pytest.approx(1.0)  # warmup end = peak
    assert f(60) == pytest.approx(0.55)  # cosine midpoint: floor + (1 - floor) / 2
    assert f(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)  # end and beyond: the floor
    official = WarmupCosine(warmup_steps=4, total_steps=20)
    assert official(0) == 0.0 and official(2) == pytest.approx(0.5) and official(20) == 0.0
    with pytest.raises(ValueError):
        WarmupCosine(30, 20)


def test_scheduler_follows_the_curve_and_its_state_round_trips():
    peak = scaled_lr(1e-3, 512)
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=peak)
    sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=2, min_lr_ratio=0.0), epochs=10, steps_per_epoch=5)  # W=10, T=50
    lrs = []
    for _ in range(25):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(peak / 2) and lrs[10] == pytest.approx(peak)
    assert max(lrs) == pytest.approx(peak)

    # a fresh optimiser/scheduler built with other settings continues the same curve after loading the state
    param2 = nn.Parameter(torch.zeros(1))
    opt2 = torch.optim.AdamW([param2], lr=123.0)
    sched2 = build_scheduler(opt2, ScheduleConfig(warmup_epochs=0), epochs=1, steps_per_epoch=1)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    for _ in range(30):
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
    assert opt.param_groups[0]["lr"] == 0.0  # step 55 > T: the floor
    assert sched.get_last_lr()[0] == pytest.approx(0.0) and opt2.param_groups[0]["lr"] == 0.0


def test_optimizer_decays_everything_by_default_and_can_exempt_gains_biases_and_embeddings():
    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.ln = nn.LayerNorm(4)
            self.positional_embedding = nn.Parameter(torch.zeros(3, 4))
            self.logit_scale = nn.Parameter(torch.tensor(2.659))
            self.frozen = nn.Linear(4, 4).requires_grad_(False)

    tower = Tower()
    official = build_optimizer(tower.named_parameters(), OptimizerConfig(), global_batch=128)
    assert len(official.param_groups) == 1
    group = official.param_groups[0]
    assert group["weight_decay"] == 0.03 and group["betas"] == (0.9, 0.999) and group["lr"] == pytest.approx(0.5e-6)
    assert {id(p) for p in group["params"]} == {id(p) for p in tower.parameters() if p.requires_grad}

    split = build_optimizer(tower.named_parameters(), OptimizerConfig(exclude_from_decay=True), global_batch=128)
    decayed, exempt = ({id(p) for p in g["params"]} for g in split.param_groups)
    assert [g["weight_decay"] for g in split.param_groups] == [0.03, 0.0]
    assert decayed == {id(tower.proj.weight)}
    assert exempt == {id(p) for p in (tower.proj.bias, tower.ln.weight, tower.ln.bias, tower.positional_embedding, tower.logit_scale)}
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer(tower.frozen.named_parameters(), OptimizerConfig(), global_batch=1)


# ----------------------------------------------------------------------------------------- sampler
def test_batch_order_is_fixed_by_seed_and_epoch_and_splits_across_ranks():
    def epoch_batches(epoch: int, rank: int = 0, world_size: int = 1, start: int = 0, **kw: Any) -> list[list[int]]:
        s = DeterministicBatchSampler(23, 3, seed=5, rank=rank, world_size=world_size, **kw)
        s.set_epoch(epoch, start)
        return list(s)

    assert epoch_batches(0) == epoch_batches(0)
    assert epoch_batches(0) != epoch_batches(1)
    assert len(epoch_batches(0)) == 7 and all(len(b) == 3 for b in epoch_batches(0))  # 23 // 3, last partial dropped
    assert epoch_batches(2, start=4) == epoch_batches(2)[4:]  # a resume skips straight to its batch
    ranks = [sum(epoch_batches(1, rank=r, world_size=2), []) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 9 and not set(ranks[0]) & set(ranks[1])
    # rank r takes positions r, r + 2, ... of the same permutation a single process walks through
    single = sum(epoch_batches(1, drop_last=False), [])
    assert ranks[0] == single[0:18:2] and ranks[1] == single[1:18:2]
    padded = sum(epoch_batches(0, rank=1, world_size=2, drop_last=False), [])  # 23 -> 24: one sample repeated
    assert len(padded) == 12
    assert epoch_batches(0, shuffle=False)[0] == [0, 1, 2]
    with pytest.raises(ValueError, match="no full batch"):
        DeterministicBatchSampler(5, 4, world_size=2)


def test_trainer_refuses_a_loader_it_cannot_resume(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    with pytest.raises(TypeError, match="build_loader"):
        Trainer(trainer.cfg, module=trainer.module, optimizer=trainer.optimizer, step_fn=trainer.step_fn,
                loader=torch.utils.data.DataLoader(AugmentedPoints(8), batch_size=2, shuffle=True))
    with pytest.raises(ValueError, match="not in the trainer's module"):
        Trainer(trainer.cfg, module=nn.Linear(2, 2), optimizer=trainer.optimizer, step_fn=trainer.step_fn, loader=trainer.loader,
                eval_fn=trainer.eval_fn)


# ------------------------------------------------------------------------------------- checkpoints
def small_state() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = Mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 8)).sum().backward()
    opt.step()
    return model, opt


def test_training_state_round_trips_weights_optimizer_and_rng(tmp_path):
    model, opt = small_state()
    model.net[0].requires_grad_(False)  # frozen parameters are left out by default
    gens = {"np": np.random.default_rng(3), "torch": torch.Generator().manual_seed(4)}
    seed_everything(11)
    path = save_training_state(tmp_path / "s.pt", state=TrainState(step=7, epoch=1, batch_in_epoch=4, best_metric=0.5, best_step=6),
                               modules={"m": model}, optimizer=opt, generators=gens)
    expected = (random.random(), np.random.rand(), torch.rand(1), gens["np"].random(), torch.rand(1, generator=gens["torch"]))
    assert not any(k.startswith("net.0.") for k in read_training_state(path)["modules"]["m"])

    torch.manual_seed(99)
    fresh = Mlp()
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    fresh.net[0].load_state_dict(model.net[0].state_dict())  # the caller rebuilds frozen parts itself
    fresh.net[0].requires_grad_(False)
    gens2 = {"np": np.random.default_rng(0), "torch": torch.Generator()}
    state = load_training_state(path, modules={"m": fresh}, optimizer=fresh_opt, generators=gens2)
    assert (state.step, state.epoch, state.batch_in_epoch, state.best_metric, state.best_step) == (7, 1, 4, 0.5, 6)
    assert_equal_state(fresh.state_dict(), model.state_dict())
    assert_equal_state(fresh_opt.state_dict(), opt.state_dict())
    got = (random.random(), np.random.rand(), torch.rand(1), gens2["np"].random(), torch.rand(1, generator=gens2["torch"]))
    assert_equal_state(list(got), list(expected))

    with pytest.raises(CheckpointLoadError, match="modules"):
        load_training_state(path, modules={"other": fresh})
    with pytest.raises(CheckpointLoadError, match="generators"):
        load_training_state(path, modules={"m": fresh}, generators={})
    with pytest.raises(CheckpointLoadError, match="do not fit"):
        load_training_state(path, modules={"m": nn.Linear(8, 2)})
    wider = Mlp()
    wider.net[4] = nn.Linear(16, 3)
    with pytest.raises(CheckpointLoadError, match="do not fit"):
        load_training_state(path, modules={"m": wider})


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    model, opt = small_state()
    path = tmp_path / "state.pt"
    save_training_state(path, state=TrainState(step=1), modules={"m": model}, optimizer=opt)
    before = path.read_bytes()

    def torn_save(obj: Any, f: Any) -> None:  # the serialiser dies half-way (disk full, exception while pickling)
        f.write(before[: len(before) // 2])
        raise OSError("No space left on device")

    with monkeypatch.context() as m:
        m.setattr(torch, "save", torn_save)
        with pytest.raises(OSError, match="No space"):
            save_training_state(path, state=TrainState(step=2), modules={"m": model}, optimizer=opt)

    def failing_fsync(fd: int) -> None:  # everything written, then the flush to disk fails
        raise OSError("I/O error")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", failing_fsync)
        with pytest.raises(OSError, match="I/O"):
            save_training_state(path, state=TrainState(step=3), modules={"m": model}, optimizer=opt)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]  # no temporaries left
    assert load_training_state(path, modules={"m": model}).step == 1

    path.write_bytes(before[: len(before) // 3])  # what a non-atomic writer would leave: a clear error
    with pytest.raises(CheckpointLoadError, match="not a readable training-state file"):
        read_training_state(path)


@pytest.mark.slow
def test_sigkill_during_a_write_leaves_the_previous_checkpoint_and_a_removable_temporary(tmp_path):
    child = start_child("kill-mid-write", str(tmp_path))
    try:
        read_child_until(child, "writing")
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    ckpts = CheckpointDir(tmp_path)
    temporaries = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(temporaries) == 1 and temporaries[0].startswith(".step_00000002.pt.")
    assert ckpts.latest() == ckpts.step_path(1)
    model, _ = small_state()
    assert load_training_state(ckpts.latest(), modules={"m": model}).step == 1
    ckpts.clean_temporaries()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001.pt"]


@pytest.mark.slow
def test_kill_and_resume_is_bit_identical(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    final = straight.fit()
    assert (final.step, final.epoch, final.batch_in_epoch) == (EPOCHS * 5, EPOCHS, 0)

    killed_dir = tmp_path / "killed"
    child = start_child("kill-after-checkpoint", str(killed_dir), str(KILL_AT_STEP))
    try:
        read_child_until(child, f"checkpoint {KILL_AT_STEP} ")
    finally:
        child.kill()  # SIGKILL right after the checkpoint is on disk: no cleanup, no atexit
        child.communicate()
    assert child.returncode == -signal.SIGKILL
    ckpts = CheckpointDir(killed_dir / "checkpoints")
    assert ckpts.step_checkpoints() == [ckpts.step_path(5), ckpts.step_path(KILL_AT_STEP)]  # epoch 0 end, step 8
    mid = read_training_state(ckpts.step_path(KILL_AT_STEP))["state"]
    assert (mid["epoch"], mid["batch_in_epoch"]) == (1, 6)

    fallback_dir = tmp_path / "fallback"  # same crash, and the newest checkpoint torn: resume from the one before
    shutil.copytree(killed_dir, fallback_dir)
    torn = fallback_dir / "checkpoints" / ckpts.step_path(KILL_AT_STEP).name
    torn.write_bytes(torn.read_bytes()[:1000])

    for run_dir in (killed_dir, fallback_dir):
        resumed = make_trainer(run_dir, resume="auto")
        state = resumed.fit()
        assert_same_run(straight, resumed)
        assert state == final
        assert metric_rows(run_dir) == metric_rows(tmp_path / "straight")  # rows of both halves, none twice
        best_a = read_training_state(tmp_path / "straight" / "checkpoints" / "best.pt")
        best_b = read_training_state(run_dir / "checkpoints" / "best.pt")
        assert best_a["state"] == best_b["state"]
        assert_equal_state(best_a["modules"], best_b["modules"], "best")


def test_a_fresh_run_refuses_a_directory_with_checkpoints(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    with pytest.raises(FileExistsError, match="resume='auto'"):
        make_trainer(tmp_path, epochs=1).fit()


def test_max_steps_stops_with_a_checkpoint_to_continue_from(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    straight.fit()
    first = make_trainer(tmp_path / "cut", max_steps=7)
    assert first.fit().step == 7
    assert CheckpointDir(tmp_path / "cut" / "checkpoints").latest().name == "step_00000007.pt"
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["completed"] is False
    second = make_trainer(tmp_path / "cut", resume="auto")
    assert second.fit().step == EPOCHS * 5
    assert_same_run(straight, second)
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["completed"] is True


@pytest.mark.parametrize("mode, best_index", [("max", 1), ("min", 5)])
def test_best_checkpoint_holds_the_best_validation_not_the_last(tmp_path, mode, best_index):
    scores = [0.3, 0.9, 0.5, 0.4, 0.2, 0.1, 0.6]  # validations at steps 3, 5 (epoch end), 6, 9, 10, 12, 15
    eval_steps: list[int] = []
    holder: dict[str, Trainer] = {}

    def scripted() -> dict[str, float]:
        eval_steps.append(holder["trainer"].optimizer.state_dict()["state"][0]["step"].item())
        return {"score": scores[len(eval_steps) - 1], "loss": 1.0}

    snapshots: list[tuple[int, float, dict[str, torch.Tensor]]] = []

    def on_best(state: TrainState, metrics: Mapping[str, float]) -> None:
        snapshots.append((state.step, metrics["score"], {k: v.clone() for k, v in holder["trainer"].module.state_dict().items()}))

    trainer = make_trainer(tmp_path, eval_fn=scripted, best=BestPolicy("score", mode))
    trainer.on_best = on_best
    holder["trainer"] = trainer
    trainer.fit()
    assert eval_steps == [3, 5, 6, 9, 10, 12, 15]
    best_step, best_value = eval_steps[best_index], scores[best_index]
    assert snapshots[-1][:2] == (best_step, best_value)
    assert [s for s, _, _ in snapshots] == [eval_steps[i] for i in range(len(scores))
                                           if scores[i] == (max if mode == "max" else min)(scores[: i + 1])]
    payload = read_training_state(tmp_path / "checkpoints" / "best.pt")
    assert (payload["state"]["best_step"], payload["state"]["best_metric"], payload["state"]["step"]) == (best_step, best_value, best_step)
    assert_equal_state(payload["modules"]["module"], snapshots[-1][2], "best weights")
    assert not torch.equal(payload["modules"]["module"]["net.0.weight"], trainer.module.state_dict()["net.0.weight"])
    rows = metric_rows(tmp_path)
    assert [r["val/score"] for r in rows if "val/score" in r] == scores
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [summary[k] for k in ("best_metric", "best_mode", "best_step", "best_value")] == ["score", mode, best_step, best_value]


@pytest.mark.slow
def test_ddp_on_two_cpu_ranks_keeps_ranks_in_sync_and_resumes_bit_identically(tmp_path):
    init_file = tmp_path / "pg_init"
    children = [start_child("ddp", str(tmp_path), str(rank), "2", str(init_file)) for rank in range(2)]
    outputs = [c.communicate(timeout=240) for c in children]
    for c, (out, err) in zip(children, outputs):
        assert c.returncode == 0, f"DDP child failed:\n{out}\n{err}"
    result = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for r in range(2):
        assert_equal_state(result[r]["straight"], result[r]["resumed"], f"rank {r} resumed")
    assert_equal_state(result[0]["straight"], result[1]["straight"], "ranks")  # DDP averaged the gradients
    assert not torch.equal(result[0]["first_batch"], result[1]["first_batch"])  # ...of different data
    payload = read_training_state(tmp_path / "straight" / "checkpoints" / "best.pt")
    assert len(payload["rng"]) == 2 and not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])
    assert metric_rows(tmp_path / "resumed") == metric_rows(tmp_path / "straight")


# ------------------------------------------------------------------------------------------ metrics
def test_metrics_files_grow_their_csv_header_and_resume_cleanly(tmp_path, caplog):
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, {"train/loss": 2.5})
        logger.log(2, {"train/loss": torch.tensor(2.0), "val/top1": np.float32(0.25)})
        logger.log(3, {"train/loss": float("nan"), "train/lr": 1e-4})
        assert logger.tensorboard_enabled == _has_tensorboard()
        logger.write_summary({"best": 0.25, "out": tmp_path})

    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "time", "train/loss", "val/top1", "train/lr"]
    assert [(r["step"], r["train/loss"], r["val/top1"], r["train/lr"]) for r in rows] == [
        ("1", "2.5", "", ""), ("2", "2.0", "0.25", ""), ("3", "nan", "", "0.0001")]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]  # strict JSON
    assert [r["step"] for r in lines] == [1, 2, 3] and lines[2]["train/loss"] is None
    assert json.loads((tmp_path / "summary.json").read_text()) == {"best": 0.25, "out": str(tmp_path)}

    with open(tmp_path / "metrics.jsonl", "a") as f:  # a run killed mid-line
        f.write('{"step": 4, "train/lo')
    with MetricsLogger(tmp_path, resume_step=2, tensorboard=False) as logger:
        logger.log(3, {"train/loss": 1.5})
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train/loss"]) for r in rows] == [("1", "2.5"), ("2", "2.0"), ("3", "1.5")]
    assert list(rows[0]) == ["step", "time", "train/loss", "val/top1"]  # train/lr came from a dropped row

    if _has_tensorboard():
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tensorboard"))
        events.Reload()
        assert [(e.step, e.value) for e in events.Scalars("val/top1")] == [(2, 0.25)]

    with pytest.raises(TypeError, match="numbers"):
        MetricsLogger(tmp_path / "x", tensorboard=False).log(1, {"bad": "text"})
    MetricsLogger(tmp_path / "rank1", enabled=False).log(1, {"a": 1.0})  # other ranks write nothing
    assert not (tmp_path / "rank1").exists()


def test_metrics_without_tensorboard_warn_and_still_write(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with caplog.at_level(logging.WARNING), MetricsLogger(tmp_path) as logger:
        logger.log(1, {"a": 1.0})
        assert not logger.tensorboard_enabled
    assert "pip install tensorboard" in caplog.text
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1].startswith("1,")


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------- evaluation
def test_zero_shot_accuracy_hand_computed():
    weights = torch.eye(3, 4) * 2.0  # class c along axis c (scale is irrelevant: cosine)
    emb = torch.tensor([[1, 0, 0, 0], [0.2, 1, 0, 0], [0.9, 0, 0.5, 0], [0, 0, 1, 0], [1, 0.1, 0, 0]], dtype=torch.float32)
    labels = [0, 1, 2, 2, 1]
    acc = zero_shot_accuracy(emb, weights, labels)
    assert acc.top1 == pytest.approx(3 / 5) and acc.top5 == 1.0 and acc.count == 5  # top-5 with 3 classes = top-3
    np.testing.assert_allclose(acc.per_class, [1.0, 0.5, 0.5])
    assert acc.mean_per_class == pytest.approx(2 / 3)
    assert acc.as_metrics("unseen/") == {"unseen/top1": pytest.approx(0.6), "unseen/top5": 1.0,
                                         "unseen/mean_per_class": pytest.approx(2 / 3), "unseen/count": 5.0}
    top2 = zero_shot_accuracy(emb, torch.eye(6, 4)[[0, 1, 2, 3, 3, 3]], labels)  # 6 classes: k = 5
    assert top2.top5 == 1.0 and top2.per_class.shape == (6,) and np.isnan(top2.per_class[3:]).all()

    sub = zero_shot_accuracy(emb, weights, labels, classes=[2, 1])  # candidates 2 and 1 only
    assert sub.count == 4 and sub.top1 == 1.0
    np.testing.assert_allclose(sub.per_class, [1.0, 1.0])
    with pytest.raises(ValueError, match="labels must lie"):
        zero_shot_accuracy(emb, weights, [0, 1, 2, 3, 0])
    with pytest.raises(ValueError, match="one label per embedding"):
        zero_shot_accuracy(emb, weights, [0, 1])


def random_window(rng: np.random.Generator, size: SensorSize, n: int) -> np.ndarray:
    t = np.sort(rng.integers(0, 50_000, n))
    return make_events(t, rng.integers(0, size.width, n), rng.integers(0, size.height, n), rng.integers(0, 2, n))


def test_event_evaluation_batches_frames_like_the_model_does():
    from event_clip_ros.model import ModelSpec, create_event_clip
    from event_clip_ros.model.zero_shot import ZeroShotClassifier

    torch.manual_seed(0)
    model = create_event_clip(ModelSpec(arch="EventCLIP-Tiny", pretrained=None, device="cpu"))
    model.train()
    names, templates = ["disc", "bar", "square"], ["a photo of a {}.", "a sketch of a {}."]
    weights = ZeroShotClassifier(model, names, templates).weights

    rng = np.random.default_rng(0)
    sizes = [SensorSize(64, 48), SensorSize(32, 32)]
    items = [{"events": random_window(rng, sizes[i % 2], 300 + 50 * i), "size": sizes[i % 2], "label": i % 3} for i in range(7)]
    emb, labels = embed_event_items(model, iter(items), batch_size=3)  # a plain iterator, mixed sizes per batch
    expected = torch.cat([model.embed_windows([it["events"]], it["size"]) for it in items])
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=1e-5)
    assert labels.tolist() == [i % 3 for i in range(7)]
    assert model.training and not model.clip.training  # mode restored
    result = evaluate_zero_shot(model, items, weights, batch_size=4)
    reference = zero_shot_accuracy(expected, weights, labels)
    assert (result.top1, result.top5, result.count) == (reference.top1, reference.top5, 7)
    np.testing.assert_array_equal(result.per_class, reference.per_class)


# ---------------------------------------------------------------------------------- child processes
def _child_kill_after_checkpoint(out_dir: str, stop_step: str) -> None:
    def hook(path: Path, state: TrainState) -> None:
        print(f"checkpoint {state.step} {path}", flush=True)
        if state.step == int(stop_step):
            sys.stdin.read()  # block here until the parent SIGKILLs this process

    trainer = make_trainer(Path(out_dir))
    trainer.on_checkpoint = hook
    trainer.fit()


def _child_kill_mid_write(out_dir: str) -> None:
    model, opt = small_state()
    ckpts = CheckpointDir(out_dir)
    save_training_state(ckpts.step_path(1), state=TrainState(step=1), modules={"m": model}, optimizer=opt)
    real_save = torch.save

    def stalled_save(obj: Any, f: Any) -> None:
        real_save(obj, f)  # the whole payload into the temporary file, not yet synced nor renamed
        f.flush()
        print("writing", flush=True)
        sys.stdin.read()

    torch.save = stalled_save
    save_training_state(ckpts.step_path(2), state=TrainState(step=2), modules={"m": model}, optimizer=opt)


def _child_ddp(out_dir: str, rank: str, world_size: str, init_file: str) -> None:
    import torch.distributed as dist

    rank_i, world = int(rank), int(world_size)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank_i, world_size=world)
    env = SimpleNamespace(rank=rank_i, world_size=world, device=torch.device("cpu"))
    out = Path(out_dir)
    straight = make_trainer(out / "straight", dist_env=env)
    first_batch = torch.tensor(next(iter(straight.sampler)))  # sample indices: no dataset RNG drawn
    straight.fit()
    make_trainer(out / "resumed", dist_env=env, max_steps=KILL_AT_STEP).fit()  # a cut where a metrics row ends
    resumed = make_trainer(out / "resumed", dist_env=env, resume="auto")
    resumed.fit()
    torch.save({"straight": straight.module.state_dict(), "resumed": resumed.module.state_dict(), "first_batch": first_batch},
               out / f"rank{rank_i}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    threads, role, *rest = sys.argv[1:]
    torch.set_num_threads(int(threads))
    {"kill-after-checkpoint": _child_kill_after_checkpoint, "kill-mid-write": _child_kill_mid_write, "ddp": _child_ddp}[role](*rest)
