"""The README's main command: the detector node on the shipped toy model, the shipped recording played into it
over real DDS, labels printed; and the shipped files it relies on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from event_clip_ros.events.readers import open_events
from event_clip_ros.model.checkpoint import load_checkpoint
from event_clip_ros.ros.demo import DEFAULT_CHECKPOINT, DEFAULT_LABELS, DEFAULT_RECORDING, ground_truth

pytestmark = pytest.mark.slow  # the quick tier (scripts/test.sh --quick) leaves it out


REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_model_is_the_trained_toy_model():
    model = load_checkpoint(DEFAULT_CHECKPOINT)
    assert model.meta.arch == "EventCLIP-Toy48"
    assert model.meta.pretrained.startswith("toy teacher")  # made by training/pretrain.py --preset toy
    training = model.meta.training
    assert training and training["name"] == "toy" and training["loss"]["tau_i"] == 0.1


def test_the_shipped_recording_matches_its_ground_truth():
    truth = ground_truth(str(DEFAULT_RECORDING))
    assert [label for _, _, label in truth] == [name.split()[-1] for name in DEFAULT_LABELS.split(",")]
    with open_events(DEFAULT_RECORDING) as reader:
        assert (reader.size.width, reader.size.height) == (48, 48)
        last = max(int(chunk["t"][-1]) for chunk in reader.chunks())
    assert truth[-1][1] - 300_000 < last < truth[-1][1]


@pytest.mark.ros
def test_demo_prints_the_labels_the_node_publishes():
    result = subprocess.run([sys.executable, "-m", "event_clip_ros.ros.demo", "--torch-threads", "1"], cwd=REPO,
                            env=os.environ.copy(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    windows = [line for line in result.stdout.splitlines() if line.startswith("window")]
    assert len(windows) == 9  # the 10th window is still open when the recording ends
    summary = re.search(r"(\d+) classifications for (\d+) completed windows; top-1 correct (\d+) of", result.stdout)
    assert summary and summary.group(1) == summary.group(2) == "9"
    assert int(summary.group(3)) >= 6  # 8 of 9 when the model was shipped; chance is 1 in 10
