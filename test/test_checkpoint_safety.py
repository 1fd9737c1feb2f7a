"""Checkpoints and the faults real files have (issue 11).

* A pickle that would run code (``__reduce__`` to ``os.system``, ``open``, ``exec``) is refused
  with a one-line error naming what it needs, by every loader (``--checkpoint``, the node's
  ``checkpoint`` parameter, export, training resume); the payload never runs.
* A checkpoint with 4 KB of its tensor data overwritten (.safetensors fp32 and fp16, the paper's
  .pt) is refused at load, naming the damaged tensor; NaN / Inf weights are never written.
* Non-finite embeddings (a model poisoned after load) never become a score: the detector skips
  and counts those windows (``nonfinite_windows``), warning once per kind.
* A save killed with SIGKILL leaves a ``.<name>.<pid>.<token>.tmp`` that the next save of the same
  file (and a training resume) removes; temporaries of live writers are kept.
"""

from __future__ import annotations

import argparse
import builtins
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import safetensors
import safetensors.torch
import torch

from event_clip_ros.apps.detector import Detector
from event_clip_ros.apps.detector_config import AnomalyConfig, DetectorConfig
from event_clip_ros.apps.event_input import EventInput
from event_clip_ros.atomic_files import atomic_write, atomic_write_bytes, remove_stale_temporaries
from event_clip_ros.cli import main
from event_clip_ros.events.types import SensorSize, make_events
from event_clip_ros.events.windows import WindowConfig
from event_clip_ros.model import ModelSpec, create_event_clip
from event_clip_ros.model.checkpoint import CheckpointError, load_any_checkpoint, load_checkpoint, save_checkpoint
from event_clip_ros.model.event_clip import EventClip
from event_clip_ros.model.factory import model_config
from event_clip_ros.model.finite import FiniteEmbeddings, split_finite
from event_clip_ros.model.official_checkpoint import import_official_checkpoint
from event_clip_ros.train.engine.checkpointing import CheckpointDir, CheckpointLoadError, read_training_state

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = "EventCLIP-Tiny"
SIZE = SensorSize(64, 48)
WINDOW = WindowConfig(duration_us=10_000, min_events=50)
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def tiny_model(seed: int = 0) -> EventClip:
    torch.manual_seed(seed)
    return create_event_clip(ModelSpec(arch=TINY, pretrained=None, device="cpu"))


def paper_state(seed: int = 10) -> dict[str, torch.Tensor]:
    """The paper's 'checkpoint' state dict (encoder_k, encoder_q, foundation_model) of tiny open_clip CLIPs."""
    torch.manual_seed(seed)
    clip = open_clip.model.CLIP(**model_config(TINY)).eval()
    return {f"{name}.{k}": v.clone() for name in ("encoder_k", "encoder_q", "foundation_model") for k, v in clip.state_dict().items()}


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------------------ code
class RunsCode:
    """Unpickling this calls ``func(*args)``: what a hostile checkpoint does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker: Path) -> dict[str, tuple[Any, str]]:
    """Objects that create ``marker`` when unpickled, with the global torch's refusal names."""
    return {
        "os.system": (RunsCode(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        "open": (RunsCode(builtins.open, str(marker), "w"), f"{builtins.open.__module__}.open"),
        "exec": (RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()"), "exec"),
        "inside a Namespace": (argparse.Namespace(lr=1e-6, hook=RunsCode(os.system, f"touch {marker}")),
                               f"{os.system.__module__}.system"),
    }


def assert_refused(exc: BaseException, needed: str, marker: Path) -> None:
    message = str(exc)
    assert "\n" not in message
    assert f"refused: its pickle needs {needed}," in message and "loading it would run code from the file" in message
    assert "weights_only=False" not in message
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", list(payloads(Path("x"))))
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, kind, legacy):
    marker = tmp_path / "created_by_the_payload"
    payload, needed = payloads(marker)[kind]
    path = tmp_path / "vitb.pt"
    torch.save({"checkpoint": paper_state(), "args": payload}, path, _use_new_zipfile_serialization=not legacy)
    for load in (load_any_checkpoint, import_official_checkpoint,
                 lambda p: create_event_clip(ModelSpec(checkpoint=str(p), device="cpu"))):  # --checkpoint, the node
        with pytest.raises(CheckpointError) as err:
            load(path)
        assert_refused(err.value, needed, marker)


def test_export_and_resume_refuse_such_files_too(tmp_path, capsys):
    marker = tmp_path / "created_by_the_payload"
    payload, needed = payloads(marker)["os.system"]
    path = tmp_path / "evil.pt"
    torch.save({"checkpoint": paper_state(), "optimizer": payload}, path)
    assert main(["export", str(path), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"refused: its pickle needs {needed}," in err
    assert not (tmp_path / "out.safetensors").exists() and not marker.exists()

    torch.save({"format": "event_clip_ros.train_state", "state": payload}, path)
    with pytest.raises(CheckpointLoadError) as exc:
        read_training_state(path)
    assert_refused(exc.value, needed, marker)


# ------------------------------------------------------------------------------------- NaN / Inf
def overwrite(path: Path, offset: int, n: int = 4096, seed: int = 0) -> bytes:
    """Overwrite ``n`` bytes at ``offset`` with seeded random bytes (the damage), returned."""
    noise = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(noise)
    return noise


def largest_safetensors_tensor(path: Path) -> tuple[str, int, int]:
    """(name, first byte in the file, byte length) of the file's largest tensor."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    header.pop("__metadata__", None)
    name, info = max(header.items(), key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
    begin, end = info["data_offsets"]
    return name, 8 + header_len + begin, end - begin


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_overwritten_tensor_data_in_a_safetensors_file_is_refused(tmp_path, dtype):
    path = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors", storage_dtype=dtype)
    name, start, length = largest_safetensors_tensor(path)
    assert length > 3 * 4096
    noise = overwrite(path, start + length // 2 // 4 * 4)
    assert not np.isfinite(np.frombuffer(noise, dtype=np.float32 if dtype == torch.float32 else np.float16)).all()
    for load in (load_checkpoint, load_any_checkpoint):
        with pytest.raises(CheckpointError, match=rf"NaN or Inf in 1 tensor\(s\): {re.escape(name)} \(\d+ values?\): the file is damaged"):
            load(path)


def test_overwritten_tensor_data_in_the_papers_torch_file_is_refused(tmp_path):
    state = paper_state()
    path = tmp_path / "vitb.pt"
    torch.save({"checkpoint": state}, path)
    # torch.save stores tensor i (in pickling order) as the uncompressed zip record ".../data/i"
    with zipfile.ZipFile(path) as z:
        records = {int(i.filename.rsplit("/", 1)[1]): i for i in z.infolist() if "/data/" in i.filename}
    names = list(state)
    index = max(range(len(names)), key=lambda i: records[i].file_size if names[i].startswith("encoder_k.") else -1)
    info = records[index]
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    start = info.header_offset + 30 + name_len + extra_len
    noise = overwrite(path, start + info.file_size // 2 // 4 * 4)
    assert not np.isfinite(np.frombuffer(noise, dtype=np.float32)).all()
    with pytest.raises(CheckpointError, match=rf"NaN or Inf in 1 tensor\(s\): {re.escape(names[index])} \("):
        import_official_checkpoint(path)


def test_the_cli_refuses_a_damaged_checkpoint_instead_of_printing_nan_scores(tmp_path, capsys):
    path = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors")
    _, start, length = largest_safetensors_tensor(path)
    overwrite(path, start + length // 2 // 4 * 4)
    recording = tmp_path / "a.raw"
    assert main(["simulate", str(recording), "--sensor-size", "96x72", "--duration-ms", "100", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["classify", str(recording), "--labels", "disc,bar", "--json", "--checkpoint", str(path), "--window-ms", "25"]) == 2
    out, err = capsys.readouterr()
    assert "nan" not in out.lower() and '"labels"' not in out
    assert "NaN or Inf in 1 tensor(s)" in err and err.strip().count("\n") == 0


def test_non_finite_weights_are_never_written(tmp_path):
    model = tiny_model()
    target = tmp_path / "m.safetensors"
    with torch.no_grad():
        model.event_tower.proj[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"not saving .*NaN or Inf in 1 tensor\(s\): event_tower.proj \(1 value\)"):
        save_checkpoint(model, target)
    with torch.no_grad():
        model.event_tower.proj[0, 0] = 1e6  # finite in fp32, Inf in fp16
    save_checkpoint(model, target)
    with pytest.raises(CheckpointError, match=r"NaN or Inf when stored as torch.float16 in 1 tensor\(s\): event_tower.proj"):
        save_checkpoint(model, target, storage_dtype=torch.float16)
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_split_finite_and_the_counter_warn_once_per_kind(caplog):
    emb = torch.randn(5, 8)
    emb[1, 3], emb[3, 0] = float("nan"), float("inf")
    kept, mask = split_finite(emb)
    assert mask.tolist() == [True, False, True, False, True] and torch.equal(kept, emb[[0, 2, 4]])
    counter = FiniteEmbeddings()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            rows, items = counter.keep(emb, ["a", "b", "c", "d", "e"])
            assert items == ["a", "c", "e"] and torch.equal(rows, emb[[0, 2, 4]])
    assert counter.nonfinite_windows == 6
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "NaN" in warnings[0] and "infinite" in warnings[1]


def scene(n: int = 8_000, duration_us: int = 60_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 5_000 + np.sort(rng.integers(0, duration_us, n))
    return make_events(t, rng.integers(0, SIZE.width, n), rng.integers(0, SIZE.height, n), rng.integers(0, 2, n))


@pytest.mark.parametrize("mode", ["zero_shot", "anomaly"])
def test_a_poisoned_event_tower_gives_no_scores_and_counts_the_windows(mode):
    model = tiny_model()
    det = Detector(DetectorConfig(mode=mode, labels=("disc", "bar", "square"), window=WINDOW, anomaly=AnomalyConfig()), model=model)
    det.load()
    source = EventInput("event_camera_msgs/msg/EventPacket", WINDOW)
    windows = source.feed_events(scene(), SIZE) + source.flush()
    assert len(windows) >= 5
    healthy = det.infer_all(windows)
    assert len(healthy) == len(windows) and all(np.isfinite(s.score) for r in healthy for s in r.labels)

    good = model.event_tower.conv1.weight.detach().clone()
    with torch.no_grad():
        model.event_tower.conv1.weight[0, 0, 0, 0] = float("nan")  # after load: every event embedding is NaN
    assert det.infer_all(windows) == []
    counters = det.counters()
    assert counters["nonfinite_windows"] == len(windows)
    assert counters["inferred_windows"] == len(windows)  # only the healthy pass was scored

    with torch.no_grad():
        model.event_tower.conv1.weight.copy_(good)
    again = det.infer_all(windows[:2] + windows[:1])
    assert [r.index for r in again] == [windows[0].window.index, windows[1].window.index, windows[0].window.index]
    assert det.counters()["nonfinite_windows"] == len(windows)


def test_a_poisoned_text_tower_is_a_clear_error_before_any_score():
    model = tiny_model()
    with torch.no_grad():
        model.clip.token_embedding.weight.fill_(float("inf"))
    det = Detector(DetectorConfig(labels=("disc", "bar"), window=WINDOW), model=model)
    with pytest.raises(ValueError, match=r"text encoder gives NaN or infinite embeddings for \d+ of \d+ prompts"):
        det.load()


# ------------------------------------------------------------------------------- temporaries
def start_child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(child: subprocess.Popen, marker: str) -> None:
    """SIGKILL the child once it prints a line starting with ``marker``; reap it."""
    try:
        for line in child.stdout:
            if line.startswith(marker):
                break
        else:
            child.wait()
            raise AssertionError(f"child ended (code {child.returncode}) before {marker!r}:\n{child.stderr.read()}")
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_export_leaves_a_temporary_that_the_next_export_removes(tmp_path, capsys):
    source = save_checkpoint(tiny_model(1), tmp_path / "source.safetensors")
    target = tmp_path / "out" / "tiny.safetensors"
    save_checkpoint(tiny_model(2), target)  # the previous export, which a killed one must leave intact
    before = target.read_bytes()
    child = start_child("kill-mid-export", str(source), str(target))
    kill_when(child, "writing")

    left = temporaries(target.parent)
    assert len(left) == 1
    match = TEMP_NAME.match(left[0])
    assert match and match["target"] == target.name and int(match["pid"]) == child.pid
    assert (target.parent / left[0]).stat().st_size > 0.9 * target.stat().st_size  # the whole payload, never renamed
    assert target.read_bytes() == before

    assert main(["export", str(source), str(target)]) == 0
    assert temporaries(target.parent) == []
    loaded = load_checkpoint(target)
    reference = load_checkpoint(source)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))


def test_checkpoints_get_ordinary_permissions_and_replacements_keep_the_old_ones(tmp_path):
    """safetensors creates its files 0600; an atomic write gives a new checkpoint the umask's permissions (a ROS node
    running as another user can read it) and a replaced file keeps its own."""
    model = tiny_model()
    old_umask = os.umask(0o022)
    try:
        path = save_checkpoint(model, tmp_path / "new.safetensors")
        assert path.stat().st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)
        save_checkpoint(model, path)
        assert path.stat().st_mode & 0o777 == 0o640
        os.umask(0o077)
        assert atomic_write_bytes(tmp_path / "private.txt", b"x").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old_umask)


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        def temp(target: str, pid: int) -> Path:
            p = tmp_path / f".{target}.{pid}.0123abcd.tmp"
            p.write_bytes(b"partial")
            return p

        live_a = temp("a.pt", live.pid)  # a write in progress in another process: kept
        dead_a = temp("a.pt", dead.pid)
        own_a = temp("a.pt", os.getpid())  # this pid, not being written (a restart that got the dead writer's pid)
        legacy_a = tmp_path / ".a.pt.0123456789abcdef0123456789abcdef.tmp"  # before pids were recorded
        legacy_a.write_bytes(b"partial")
        dead_b = temp("b.pt", dead.pid)  # another file's: left to its own next save, or to a resume
        reused = temp("c.pt", live.pid)
        old = time.time() - 3600
        os.utime(reused, (old, old))  # last written an hour before `live` started: its writer is gone
        others = [tmp_path / "notes.tmp", tmp_path / ".a.pt.tmp", tmp_path / "a.pt.1.0123abcd.tmp"]
        for p in others:
            p.write_bytes(b"not ours")

        atomic_write_bytes(tmp_path / "a.pt", b"new")
        assert (tmp_path / "a.pt").read_bytes() == b"new"
        assert live_a.exists() and dead_b.exists() and reused.exists()
        assert not dead_a.exists() and not own_a.exists() and not legacy_a.exists()

        assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead_b, reused])  # what a resume does
        assert live_a.exists() and all(p.exists() for p in others)
    finally:
        live.kill()
        live.wait()
    CheckpointDir(tmp_path).clean_temporaries()
    assert not live_a.exists()


def test_a_temporary_being_written_by_this_process_is_kept(tmp_path):
    target = tmp_path / "a.pt"
    seen: list[str] = []

    def write(f) -> None:
        f.write(b"part")
        f.flush()
        remove_stale_temporaries(tmp_path)  # a resume, or another thread's save, while this write runs
        seen.extend(temporaries(tmp_path))
        f.write(b" done")

    atomic_write(target, write)
    assert len(seen) == 1 and int(TEMP_NAME.match(seen[0])["pid"]) == os.getpid()
    assert target.read_bytes() == b"part done" and temporaries(tmp_path) == []


# ----------------------------------------------------------------------------- child process
def _child_kill_mid_export(source: str, target: str) -> None:
    real_save = safetensors.torch.save_file

    def stalled_save(tensors: Any, filename: str, metadata: Any = None) -> None:
        real_save(tensors, filename, metadata=metadata)  # the whole file at its temporary name, not yet renamed
        print("writing", flush=True)
        sys.stdin.read()  # until the parent's SIGKILL

    safetensors.torch.save_file = stalled_save
    main(["export", source, target])


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    {"kill-mid-export": _child_kill_mid_export}[role](*rest)
