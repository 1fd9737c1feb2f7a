"""Torch threads of a training run (runtime.threads, --threads): auto uses the cores the load leaves free, a
loaded machine gets one thread, and the progress bar says how many a run uses."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from event_clip_ros.train import threads
from event_clip_ros.train.engine import Trainer, TrainerConfig, build_loader
from event_clip_ros.train.finetune import load_config as finetune_config
from event_clip_ros.train.threads import apply_threads, choose_threads, resolve_threads


def test_auto_threads_follow_the_free_cores():
    assert choose_threads(cores=2, load=0.2) == 2  # idle
    assert choose_threads(cores=2, load=1.0) == 1  # another process holds one core
    assert choose_threads(cores=2, load=1.85) == 1  # measured here: 2 threads would be ~30x slower per step
    assert choose_threads(cores=2, load=7.0) == 1  # loaded beyond the cores: one thread
    assert choose_threads(cores=16, load=3.6) == 12
    assert choose_threads(cores=16, load=0.0, processes=4) == 4  # torchrun ranks share the cores
    assert choose_threads(cores=8, load=None) == 8  # no load average on this OS: every usable core
    assert 1 <= choose_threads() <= threads.usable_cores()


def test_settings_and_the_config_key(monkeypatch):
    assert resolve_threads(None) is None and resolve_threads(3) == 3
    monkeypatch.setattr(threads, "load_average", lambda: 99.0)
    assert resolve_threads("auto") == 1
    before = torch.get_num_threads()
    try:
        assert apply_threads("auto") == 1 and torch.get_num_threads() == 1
        assert apply_threads(2) == 2
    finally:
        torch.set_num_threads(before)
    for value in ("auto", 3, None):
        assert finetune_config({}, [("runtime.threads", value)]).runtime.threads == value
    assert finetune_config({}).runtime.threads == "auto"  # the default


def test_progress_bar_shows_the_thread_count(tmp_path, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        module = nn.Linear(2, 1)
        data = TensorDataset(torch.randn(8, 2))
        loader = build_loader(data, batch_size=4, collate_fn=lambda items: torch.stack([x for (x,) in items]))
        trainer = Trainer(TrainerConfig(output_dir=tmp_path, epochs=1, progress=True, tensorboard=False),
                          module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1), loader=loader,
                          step_fn=lambda m, batch: (m(batch).pow(2).mean(), {}))
        trainer.fit()
    finally:
        torch.set_num_threads(before)
    assert "epoch 1/1 [1 threads]" in capsys.readouterr().err
