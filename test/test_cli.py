"""The event-clip CLI end to end: simulate a recording, inspect it, render it."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from event_clip_ros.cli import INSPECT_KEYS, main
from event_clip_ros.events.readers import open_events
from event_clip_ros.events.types import concat_events


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "shapes.raw"
    assert main(["simulate", str(path), "--sensor-size", "64x48", "--duration-ms", "200", "--seed", "3"]) == 0
    return path


def test_inspect_json_has_exactly_the_documented_keys(recording, capsys):
    assert main(["inspect", str(recording), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert tuple(info) == INSPECT_KEYS
    with open_events(recording) as reader:
        ev = concat_events(list(reader.chunks()))
    assert info["format"] == "evt3"
    assert (info["width"], info["height"]) == (64, 48)
    assert info["events"] == ev.size > 1000
    assert info["on"] == int(ev["p"].sum()) and info["off"] == ev.size - info["on"]
    assert info["t_first_us"] == int(ev["t"][0]) and info["t_last_us"] == int(ev["t"][-1])
    assert 190_000 <= info["t_last_us"] - info["t_first_us"] <= 200_000


def test_inspect_text_output(recording, capsys):
    assert main(["inspect", str(recording)]) == 0
    out = capsys.readouterr().out
    for key in INSPECT_KEYS:
        assert key in out


def test_render_writes_one_png_per_window(recording, tmp_path):
    out = tmp_path / "frames"
    assert main(["render", str(recording), "--window-ms", "50", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    with open_events(recording) as reader:
        t = concat_events(list(reader.chunks()))["t"]
    assert len(files) == len(np.unique((t - t[0]) // 50_000)) >= 4  # every 50 ms window holding events
    img = cv2.imread(str(files[1]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (48, 64) and img.dtype == np.uint8
    assert img.max() > img.min()  # the moving shapes left something to see


def test_render_resized_and_limited(recording, tmp_path):
    out = tmp_path / "frames"
    assert main(["render", str(recording), "--window-ms", "20", "--frame-size", "32x32", "--max-frames", "3", "--out", str(out)]) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    assert cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED).shape == (32, 32)


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope.raw")]) == 2
    assert "error" in capsys.readouterr().err


def test_garbage_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "garbage.bin2"
    path.write_bytes(b"\x00\x13not an event file at all" * 10)
    assert main(["inspect", str(path)]) == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["inspect", "render", "simulate"])
def test_help(command):
    res = subprocess.run([sys.executable, "-m", "event_clip_ros.cli", command, "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "usage" in res.stdout


def test_simulate_glyphs_writes_the_sequence_and_its_ground_truth(tmp_path, capsys):
    from event_clip_ros.sim.glyph_scene import glyph_sequence

    path = tmp_path / "glyphs.raw"
    assert main(["simulate", str(path), "--scene", "glyphs", "--classes", "3,k,x", "--seed", "5"]) == 0
    expected, size, segments = glyph_sequence(("3", "k", "x"), 48, seed=5)
    with open_events(path) as reader:
        got = concat_events(list(reader.chunks()))
        assert (reader.size.width, reader.size.height) == (48, 48) == (size.width, size.height)
    assert np.array_equal(got, expected)
    rows = (tmp_path / "glyphs.labels.csv").read_text().splitlines()
    assert rows == ["t_start_us,t_end_us,label", "0,300000,3", "300000,600000,k", "600000,900000,x"]
    assert [s.label for s in segments] == ["3", "k", "x"]
    for s in segments:  # every glyph's events lie inside its segment
        inside = got[(got["t"] >= s.t_start_us) & (got["t"] < s.t_end_us)]
        assert inside.size > 1000
    assert main(["simulate", str(tmp_path / "bad.raw"), "--scene", "glyphs", "--sensor-size", "64x48"]) == 2
    assert "square --sensor-size" in capsys.readouterr().err
