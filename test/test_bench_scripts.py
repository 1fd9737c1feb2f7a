"""The benchmark scripts that CI and a GPU session run: bench/ci_ratios.py's verdicts,
bench/bench_gpu.py's CPU path (tiny models), and a short bench/bench_input.py run over DDS, in
subprocesses as they are run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
REALTIME_PROFILE = BENCH.parent / "config" / "fastdds_realtime.xml"


def run_script(name: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=timeout)


def test_ci_ratios_fail_only_when_a_ratio_falls_below_the_recorded_floor(tmp_path):
    recorded = tmp_path / "ratios.json"
    quick = ["--simulated", "--events", "200000", "--repeats", "1", "--recorded", str(recorded)]
    out = run_script("ci_ratios.py", *quick)
    assert out.returncode == 0 and "nothing to check" in out.stdout, out.stdout + out.stderr
    out = run_script("ci_ratios.py", *quick, "--record")
    assert out.returncode == 0, out.stderr
    data = json.loads(recorded.read_text())
    (entry,) = data["inputs"].values()
    ratios = entry["ratios"]
    assert set(ratios) == {"evt3 decode / bare evt3", "evt3 decode+window+frame / bare evt3",
                           "mono decode+window+frame / bare evt3", "build_frame / numpy bincount+resize"}
    assert all(value > 0 for value in ratios.values())

    # One ratio far above what this run reaches, the others far below (one repetition is noisy):
    # that one fails, alone; then all far below: the run passes
    name = "evt3 decode+window+frame / bare evt3"
    measured = dict(ratios)
    for key in ratios:
        ratios[key] = measured[key] * (100 if key == name else 0.01)
    recorded.write_text(json.dumps(data))
    out = run_script("ci_ratios.py", *quick)
    assert out.returncode == 1, out.stdout
    assert f"1 ratio(s) more than 25% below the recorded value: {name}" in out.stderr
    assert out.stdout.count("REGRESSION") == 1
    ratios[name] = measured[name] * 0.01
    recorded.write_text(json.dumps(data))
    out = run_script("ci_ratios.py", *quick)
    assert out.returncode == 0 and "all ratios within 25%" in out.stdout, out.stdout + out.stderr


def test_ci_ratios_reject_a_meaningless_run():
    out = run_script("ci_ratios.py", "--repeats", "0")
    assert out.returncode == 2 and "--repeats >= 1" in out.stderr


@pytest.mark.parametrize("missing", ["inputs", "ratios"])
def test_ci_ratios_with_nothing_recorded_for_the_input_check_nothing(tmp_path, missing):
    recorded = tmp_path / "ratios.json"
    recorded.write_text(json.dumps({"inputs": {} if missing == "inputs" else {"other input": {"ratios": {"x": 1.0}}}}))
    out = run_script("ci_ratios.py", "--simulated", "--events", "200000", "--repeats", "1", "--recorded", str(recorded))
    assert out.returncode == 0 and "nothing to check" in out.stdout


def gpu_bench_cpu(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench_gpu.json"
    run = run_script("bench_gpu.py", "--device", "cpu", "--repeats", "2", "--node-seconds", "0.3",
                     "--out", str(out), *args, timeout=280)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run, json.loads(out.read_text())


def check_gpu_bench_encoder(data: dict) -> None:
    rows = {(r["arch"], r["precision"], r["variant"]): r for r in data["encoder"]}
    assert set(rows) == {("EventCLIP-Tiny", "fp32", "torch autocast (node)"), ("EventCLIP-Tiny", "fp32", "torch fp32 weights"),
                         ("EventCLIP-Tiny", "bf16", "torch bf16 weights")}
    assert all(0 < r["median_ms"] <= r["p90_ms"] for r in rows.values())


def test_gpu_bench_cpu_path_in_process(tmp_path):
    """The GPU benchmark's CPU path (tiny model; onnxruntime's CPU provider where the ONNX export is),
    the detector in the benchmark's process."""
    run, data = gpu_bench_cpu(tmp_path, "--no-ros")
    check_gpu_bench_encoder(data)
    try:
        import onnxruntime  # noqa: F401

        from event_clip_ros.model import onnx_export  # noqa: F401
    except ImportError:
        assert any(s["what"].startswith("onnxruntime") for s in data["skipped"])
    else:
        (row,) = data["onnx"]
        assert row["variant"] == "onnxruntime cpu" and 0 < row["median_ms"] <= row["p90_ms"]
    node = data["node"]
    assert node["path"].startswith("detector in this process") and node["windows"] >= 3
    assert node["latency_ms_p50"] >= node["inference_ms_p50"] > 0 and "meets_target" in node
    assert "1. encoder latency, batch 1" in run.stdout and "results:" in run.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_gpu_bench_cpu_path_through_the_node(tmp_path):
    """The same with the detector as the ROS node: a bag replayed into it over DDS, its /diagnostics read."""
    pytest.importorskip("rclpy")
    _, data = gpu_bench_cpu(tmp_path, "--onnx-archs", "none")
    node = data["node"]
    assert node["path"].startswith("ROS 2 node over DDS") and int(node["windows"]) >= 3
    assert float(node["latency_ms_p50"]) > 0 and float(node["inference_ms_p50"]) > 0 and "meets_target" in node


@pytest.mark.ros
@pytest.mark.slow
def test_input_bench_plays_the_node_and_loads_the_reference_with_its_cpu(tmp_path):
    """bench/bench_input.py over DDS at one low rate: the node plays first and its CPU use is read from /proc,
    then the bare subscriber beside a load burning that much; every subscriber's row counts what it received,
    and the node's row the rate of its input side alone on these packets. The subscribers run with the realtime
    Fast DDS profile (--subscriber-profile), the driver without."""
    pytest.importorskip("rclpy")
    out = tmp_path / "bench_input.json"
    run = run_script("bench_input.py", "--rates", "2", "--duration-s", "1", "--only", "detector", "--only", "bare",
                     "--only", "bare_loaded", "--subscriber-profile", str(REALTIME_PROFILE), "--out", str(out),
                     timeout=280)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {row["subscriber"]: row for row in data["rows"]}
    assert data["subscriber_profile"] == str(REALTIME_PROFILE)  # the subscribers' processes took it
    assert "fastdds_realtime.xml (subscribers)" in run.stdout
    assert list(rows) == ["detector", "bare", "bare_loaded"]  # the node first: the load needs its CPU use
    node, loaded = rows["detector"], rows["bare_loaded"]
    assert node["cores"] > 0 and loaded["load_cores"] == node["cores"]
    assert node["input_thread_mev_s"] > 2  # the node's own bound, measured at these packets: above the rate played
    for row in rows.values():  # 977 packets of 1 ms at 2 Mev/s; a hiccup of the box may cost a few
        assert row["sent"] == 977 and 0.95 * row["sent"] <= row["received"] <= row["sent"]
        assert row["lossless"] == (row["received"] == row["sent"] and row["lost_by_seq"] == 0)
    assert set(data["lossless_mev_s"]) == set(rows) and "highest lossless rate" in run.stdout
    if data["lossless_isolated_failures_ok_mev_s"]["detector"] == 2:  # the node's ceiling beside its own bound
        assert data["input_thread_mev_s_at_node_ceiling"] == node["input_thread_mev_s"]
        assert "node / min(bare, that)" in run.stdout
