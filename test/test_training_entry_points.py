"""The training command lines: console scripts (event-clip-pretrain, event-clip-finetune), ``python -m`` and the thin
``training/*.py`` wrappers, and where they find the presets in a checkout and in an installed package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from event_clip_ros.train import presets
from event_clip_ros.train.finetune import cli as finetune_cli
from event_clip_ros.train.pretrain import cli as pretrain_cli

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_finds_its_training_folder():
    assert presets.training_dir() == REPO / "training"
    assert pretrain_cli.PRESET_DIR == REPO / "training" / "presets" and "toy" in pretrain_cli.presets()
    assert "synthetic" in finetune_cli.presets()


@pytest.mark.parametrize("lib", ["lib/python3.11/site-packages", "lib/python3/dist-packages"])
def test_an_installed_package_finds_the_installed_presets(tmp_path, lib):
    """pip / colcon install setup.py's data files into <prefix>/share/event_clip_ros/training, beside lib/."""
    package = tmp_path / lib / "event_clip_ros"
    package.mkdir(parents=True)
    share = tmp_path / "share" / "event_clip_ros" / "training"
    (share / "presets").mkdir(parents=True)
    assert presets.training_dir(package) == share


def test_the_program_names_itself_as_started(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/event-clip-pretrain", "--help"])
    assert presets.program_name("pretrain.py") == "event-clip-pretrain"
    monkeypatch.setattr(sys, "argv", ["training/pretrain.py"])
    assert presets.program_name("pretrain.py") == "pretrain.py"


@pytest.mark.parametrize("script", ["pretrain", "finetune"])
def test_the_wrappers_are_thin_and_patch_no_path(script):
    text = (REPO / "training" / f"{script}.py").read_text()
    assert "sys.path" not in text
    assert f"from event_clip_ros.train.{script}.cli import main" in text


def test_python_m_runs_from_the_repository_root():
    """Without installing: ``python -m`` puts the current folder (the checkout's root) first on sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "event_clip_ros.train.pretrain", "--help"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--preset" in result.stdout and "toy" in result.stdout and "usage: pretrain.py" in result.stdout
