"""The real ROS 2 tools on the project's install, end to end: real processes, real DDS.

``ros2 launch event_clip_ros detector.launch.py`` and ``ros2 run event_clip_ros detector`` from the
install scripts/setup_env.sh lays out in .venv (like ``colcon build --symlink-install``), or from a
system ROS 2; ``event-clip replay`` plays the glyph bag into the launched node, whose
Classifications equal the offline evaluation window by window with every packet delivered;
``ros2 lifecycle``, ``ros2 param`` and ``ros2 topic echo`` work on the node; the core's warnings
reach /rosout under the node's name, once per kind; SIGINT / SIGTERM to the launch's process group
(once, or twice) ends every process cleanly. The README's colcon route builds a workspace that
``ros2 launch`` and ``ros2 run`` find.

Skipped, with the reason, where the tools are missing (PyPI ROS wheels without ../shared/ros2-tools
at set-up, and no system ROS).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from shipped_samples import CLASSES, GLYPHS, REPO, TOY

from event_clip_ros.apps.bag_writer import BagWriteConfig, write_event_bag
from event_clip_ros.apps.evaluation.bag_input import open_bag_topics
from event_clip_ros.apps.evaluation.truth import load_truth_csv

pytestmark = pytest.mark.slow  # the quick tier (scripts/test.sh --quick) leaves it out


PACKAGE = "event_clip_ros"
#: What the test's params_file changes (overlaid on the package's config/detector.yaml).
USER_PARAMS = {"window_duration_ms": 300.0, "min_events": 100, "prompt_templates": ["the {}"], "top_k": 5,
               "torch_threads": 1, "diagnostics_period_s": 0.2}
#: Launch arguments given on the command line (over both files).
LAUNCH_ARGS = {"checkpoint": TOY.name, "labels": ",".join(CLASSES), "device": "cpu"}
NS = "tools_cam"
STAMP0_NS = 1_700_000_000_000_000_000
#: ros2cli verbs without the daemon (nothing left running) wait this long for discovery.
SPIN_TIME = ["--no-daemon", "--spin-time", "1.5"]


def tools_env() -> dict[str, str]:
    """The session's ROS environment plus what ``source .venv/env.sh`` adds: .venv/bin on PATH, .venv in
    AMENT_PREFIX_PATH."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    return env


def ros2_executable() -> str | None:
    return shutil.which("ros2", path=tools_env()["PATH"])


def missing_tools() -> str | None:
    """Why the ROS 2 tools cannot be used here, or None."""
    for module in ("launch", "launch_ros", "ros2cli", "ros2launch", "composition_interfaces"):
        if importlib.util.find_spec(module) is None:
            return (f"{module} is not installed: the PyPI ROS wheels lack launch and the ros2 CLI; run "
                    "scripts/setup_env.sh with ../shared/ros2-tools beside the repo (or EVENT_CLIP_ROS2_TOOLS=DIR), "
                    "or source a ROS 2 install")
    if ros2_executable() is None:
        return "the ros2 command is not on PATH (nor in the venv's bin)"
    prefixes = tools_env()["AMENT_PREFIX_PATH"].split(os.pathsep)
    if not any((Path(p) / "share" / PACKAGE / "launch" / "detector.launch.py").is_file() for p in prefixes):
        return f"{PACKAGE} is not installed in an ament prefix (AMENT_PREFIX_PATH): run scripts/setup_env.sh"
    return None


MISSING = missing_tools()


def needs_tools(test):
    """Talks over DDS (marker ros: skipped without rclpy) with the ROS 2 tools (skipped, saying why, without them)."""
    return pytest.mark.ros(pytest.mark.skipif(MISSING is not None, reason=MISSING or "")(test))


class Output:
    """A process's merged stdout/stderr, read on a thread; waits for lines without sleeping."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 90.0, count: int = 1) -> str:
        """Until ``count`` lines match the regex ``pattern``; fails with the output on exit or timeout."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                hits = [line for line in self.lines if regex.search(line)]
                if len(hits) >= count:
                    return hits[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._thread.is_alive()):
                    why = "timed out" if remaining <= 0 else f"the process exited with {self.proc.returncode}"
                    raise AssertionError(f"{why} waiting for {pattern!r}; output:\n{''.join(self.lines)}")
                self._cond.wait(min(remaining, 1.0))

    def finish(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """Wait for the exit; (return code, whole output)."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running {timeout_s} s after the signal; output:\n{self.text}") from None
        self._thread.join(timeout=10)
        return self.proc.returncode, self.text


def start_session(cmd: list[str], cwd: Path | None = None) -> Output:
    """``cmd`` in its own session (process group), as a terminal would run it."""
    proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=tools_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return Output(proc)


def assert_ctrl_c_ends_it(run, ns: str) -> None:
    """Once the detector started by ``run`` is active, Ctrl-C (SIGINT to its group) ends it: exit 0, no traceback."""
    try:
        run.wait_for(rf"\[{ns}\.detector\]: active: listening on /{ns}/detector/events")
        os.killpg(run.proc.pid, signal.SIGINT)
        rc, output = run.finish()
        assert rc == 0 and "Traceback" not in output, output
    finally:
        kill_group(run)


def kill_group(out: Output) -> None:
    if out.proc.poll() is None:
        try:
            os.killpg(out.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out.proc.wait()


def ros2(*args: str, timeout_s: float = 60.0) -> str:
    """``ros2 ARGS``; its stdout (fails with both streams on a non-zero exit)."""
    result = subprocess.run([ros2_executable(), *args], cwd=REPO, env=tools_env(), capture_output=True, text=True,
                            timeout=timeout_s)
    assert result.returncode == 0, \
        f"ros2 {' '.join(args)} exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def launch_command(camera: str, params_file: Path | None = None, **arguments: str) -> list[str]:
    cmd = [ros2_executable(), "launch", PACKAGE, "detector.launch.py", f"camera:={camera}"]
    cmd += [f"{k}:={v}" for k, v in arguments.items()]
    if params_file is not None:
        cmd.append(f"params_file:={params_file}")
    return cmd


def assert_clean_exit(rc: int, output: str, processes: int = 1) -> None:
    assert rc == 0, f"ros2 launch exited with {rc}\n{output}"
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "process has died" not in output and "[ERROR]" not in output, output
    assert output.count("process has finished cleanly") == processes, output


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def glyph_bag(tmp_path_factory) -> Path:
    """data/samples/glyphs.raw as a bag of 5 ms EVT3 EventPackets on /<NS>/events (+ /labels)."""
    out = tmp_path_factory.mktemp("ros2_tools") / "glyphs"
    write_event_bag(GLYPHS, out, BagWriteConfig(packet_ms=5, topic=f"/{NS}/events", stamp_origin_ns=STAMP0_NS),
                    load_truth_csv(GLYPHS.with_suffix(".labels.csv")))
    return out


@pytest.fixture(scope="module")
def params_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ros2_tools_params") / "detector_overrides.yaml"
    path.write_text(yaml.safe_dump({"/**/detector": {"ros__parameters": USER_PARAMS}}))
    return path


@pytest.fixture(scope="module")
def offline(glyph_bag, tmp_path_factory):
    """The offline evaluation (``event-clip evaluate``'s code) with the parameters the launched node gets:
    package YAML, then the params file, then the launch arguments."""
    import torch

    from event_clip_ros.apps.detector_params import config_from_parameters, load_parameters_yaml
    from event_clip_ros.apps.evaluation.offline import EvaluationSetup, evaluate_bag

    torch.set_num_threads(1)
    values = {**load_parameters_yaml(REPO / "config" / "detector.yaml"), **USER_PARAMS,
              "checkpoint": str(TOY), "labels": list(CLASSES), "device": "cpu"}
    config, _ = config_from_parameters(values)
    truth = load_truth_csv(GLYPHS.with_suffix(".labels.csv"))
    _, evaluation = evaluate_bag(glyph_bag, EvaluationSetup(config, truth, "csv"), tmp_path_factory.mktemp("offline"))
    return evaluation


class NodeWatcher:
    """The test's view of /<ns>/detector: results, LabelInfo, its /diagnostics values, its /rosout records."""

    def __init__(self, ros, ns: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rcl_interfaces.msg import Log
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Classification, LabelInfo

        self.ros, self.fqn = ros, f"/{ns}/detector"
        self.results: list = []
        self.label_infos: list = []
        self.diagnostics: list[dict[str, str]] = []
        self.rosout: list = []
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        rosout_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node = ros.node
        node.create_subscription(Classification, f"{self.fqn}/classification", self.results.append, 100)
        node.create_subscription(LabelInfo, f"{self.fqn}/label_info", self.label_infos.append, latched)
        name = f"{self.fqn}: event_clip detector"
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.extend(
            {kv.key: kv.value for kv in s.values} for s in m.status if s.name == name), 100)
        logger = f"{ns}.detector"
        node.create_subscription(Log, "/rosout", lambda m: m.name == logger and self.rosout.append(m), rosout_qos)

    def value(self, key: str) -> str:
        return self.diagnostics[-1].get(key, "") if self.diagnostics else ""

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        try:
            self.ros.spin_until(condition, what, timeout_s=timeout_s)
        except AssertionError as exc:
            seen = {k: self.value(k) for k in ("packets", "lost_packets", "windows", "dropped_windows", "decode_errors")}
            raise AssertionError(f"{exc}; seen {len(self.results)} results, diagnostics {seen}") from None


# ------------------------------------------------------------------ tests
@needs_tools
@pytest.mark.slow
def test_ros2_launch_replay_cli_tools_and_ctrl_c(ros, glyph_bag, params_file, offline):
    from event_camera_msgs.msg import EventPacket
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from event_clip_ros.events.ros_cdr import encode_event_packet

    node = NodeWatcher(ros, NS)
    launch = start_session(launch_command(NS, params_file, **LAUNCH_ARGS))
    try:
        launch.wait_for(rf"\[{NS}\.detector\]: active: listening on /{NS}/events")

        # A bag played into /<ns>/events with event-clip replay: every packet arrives, and the node's
        # Classifications equal the offline evaluation window by window.
        bag = open_bag_topics(glyph_bag)
        replay = subprocess.run([sys.executable, "-m", "event_clip_ros.cli", "replay", str(glyph_bag), "--rate", "1",
                                 "--topic", bag.event_topic, "--wait-s", "60"],
                                cwd=REPO, env=tools_env(), capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert f"pass 1: {bag.message_count} messages" in replay.stdout, replay.stdout
        expected = [w.result for w in offline.windows]
        assert len(expected) == 9
        node.wait(lambda: len(node.results) >= len(expected) and node.value("packets") == str(bag.message_count),
                  f"{len(expected)} results and {bag.message_count} packets counted", timeout_s=180.0)
        assert node.value("lost_packets") == "0" and node.value("dropped_windows") == "0"
        assert len(node.results) == len(expected)
        for msg, r in zip(node.results, expected):
            assert stamp_ns(msg.header) == r.stamp_ns and msg.header.frame_id == r.frame_id
            assert [h.class_id for h in msg.results] == [s.label for s in r.labels]
            assert [h.score for h in msg.results] == pytest.approx([s.score for s in r.labels], abs=1e-5)

        # The core's decoder warning reaches /rosout under the node's name, once for its kind.
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)
        pub = ros.node.create_publisher(EventPacket, f"/{NS}/events", qos)
        bogus = [encode_event_packet(b"\0" * 8, encoding="bogus", width=48, height=48, seq=bag.message_count + i)
                 for i in range(2)]
        node.wait(lambda: pub.publish(bogus[0]) or int(node.value("bad_packets") or 0) > 0, "a bogus packet counted")
        before = int(node.value("bad_packets"))
        pub.publish(bogus[1])
        node.wait(lambda: int(node.value("bad_packets")) > before, "a second bogus packet counted")
        node.wait(lambda: any("bogus" in m.msg for m in node.rosout), "the decoder warning on /rosout")
        warnings = [m for m in node.rosout if "unknown event encoding 'bogus'" in m.msg]
        assert len(warnings) == 1 and warnings[0].level == 30, [m.msg for m in node.rosout]  # WARN, once
        assert "event_clip_ros.events" in warnings[0].msg
        launch.wait_for(rf"WARN.*\[{NS}\.detector\]: .*unknown event encoding 'bogus'")

        # ros2 lifecycle / param / topic on the running node.
        fqn = f"/{NS}/detector"
        assert "active [3]" in ros2("lifecycle", "get", fqn, *SPIN_TIME)
        assert "Transitioning successful" in ros2("lifecycle", "set", fqn, "deactivate", *SPIN_TIME)
        node.wait(lambda: node.value("state") == "inactive", "diagnostics state inactive")
        assert "Transitioning successful" in ros2("lifecycle", "set", fqn, "activate", *SPIN_TIME)
        node.wait(lambda: node.value("state") == "active", "diagnostics state active")
        described = ros2("param", "describe", fqn, "window_duration_ms", "labels", *SPIN_TIME)
        assert "Parameter name: window_duration_ms" in described and "window length on sensor time" in described
        assert "Min value: 0.01" in described and "Max value: 60000.0" in described
        assert "zero-shot class names" in described and "[applies at once]" in described
        infos = len(node.label_infos)
        assert "Set parameter successful" in ros2("param", "set", fqn, "labels", "[cat, dog]", *SPIN_TIME)
        node.wait(lambda: len(node.label_infos) > infos, "LabelInfo republished")
        assert [c.class_name for c in node.label_infos[-1].class_map] == ["cat", "dog"]
        echoed = ros2("topic", "echo", "--once", f"{fqn}/label_info", *SPIN_TIME)
        assert "class_name: cat" in echoed and "class_name: dog" in echoed

        # Ctrl-C in the terminal: SIGINT to the process group (launch forwards it, so the node gets it twice).
        os.killpg(launch.proc.pid, signal.SIGINT)
        rc, output = launch.finish()
        assert_clean_exit(rc, output)
        assert f"[{NS}.detector]: SIGINT: shutting down" in output
    finally:
        kill_group(launch)


@needs_tools
@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGINT", "SIGINT")], ids=["sigterm", "sigint-twice"])
def test_signals_to_the_launch_process_group_end_every_process_cleanly(signals):
    ns = f"sig_{signals[0].lower()}_{len(signals)}"
    launch = start_session(launch_command(ns, checkpoint=str(TOY), labels="a,b", device="cpu"))
    try:
        launch.wait_for(rf"\[{ns}\.detector\]: active: listening on /{ns}/events")
        for name in signals:  # a double Ctrl-C: the second while launch still handles the first
            os.killpg(launch.proc.pid, getattr(signal, name))
        rc, output = launch.finish()
        assert_clean_exit(rc, output)
        # The node got the group's signal and launch's SIGINT (the order in which it sees them may vary).
        assert re.search(rf"\[{ns}\.detector\]: SIG(INT|TERM): shutting down", output), output
        if signals[0] == "SIGTERM":
            assert "SIGTERM: shutting down as on ctrl-c" in output  # launch itself shut down in order
    finally:
        kill_group(launch)


def fifo_allowed() -> bool:
    """Whether a process started from here may put a thread at SCHED_FIFO 20 (CAP_SYS_NICE, or RLIMIT_RTPRIO >= 20)."""
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def group_process(pgid: int, needle: str) -> int:
    """The pid of the process of group ``pgid`` whose command line contains ``needle``."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            if entry.name.isdigit() and int(stat.rsplit(")", 1)[1].split()[2]) == pgid and \
                    needle in (entry / "cmdline").read_bytes().decode(errors="replace"):
                return int(entry.name)
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
    raise AssertionError(f"no process of group {pgid} runs {needle!r}")


def reception_threads(pid: int) -> dict[str, tuple[int, int]]:
    """Fast DDS's transport reception threads of ``pid`` (dds.shm.<port>, dds.udp.<port>): name -> (policy, priority)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        name = (task / "comm").read_text().strip()
        if re.fullmatch(r"dds\.(shm|udp)\.\d+", name):
            out[f"{name}/{task.name}"] = (os.sched_getscheduler(int(task.name)), os.sched_getparam(int(task.name)).sched_priority)
    return out


@needs_tools
@pytest.mark.slow
def test_fastdds_profile_realtime_puts_the_nodes_reception_threads_at_fifo_and_input_flows(ros):
    """``fastdds_profile:=realtime``: Fast DDS applies the shipped profile in the node's process (its transport
    reception threads at SCHED_FIFO 20 where this machine allows it, else its error says so and they run as
    before), and packets still reach the node over the profile's transports (counted in its /diagnostics)."""
    from event_camera_msgs.msg import EventPacket

    from event_clip_ros.events.encoders import encode_evt3
    from event_clip_ros.events.ros_cdr import encode_event_packet
    from event_clip_ros.events.types import make_events
    from event_clip_ros.ros.interfaces import EVENT_QOS

    ns = "rt_profile"
    node = NodeWatcher(ros, ns)
    launch = start_session(launch_command(ns, checkpoint=str(TOY), labels="a,b", device="cpu", fastdds_profile="realtime"))
    try:
        launch.wait_for(rf"\[{ns}\.detector\]: active: listening on /{ns}/events")
        threads = reception_threads(group_process(launch.proc.pid, "__node:=detector"))
        assert len(threads) >= 2, threads  # shared memory and UDP, unicast and multicast
        if fifo_allowed():
            assert set(threads.values()) == {(os.SCHED_FIFO, 20)}, threads
        else:
            assert set(threads.values()) == {(os.SCHED_OTHER, 0)}, threads
            launch.wait_for(r"Problem to set scheduler of thread .*Operation not permitted")
        pub = ros.node.create_publisher(EventPacket, f"/{ns}/events", EVENT_QOS)  # as a driver publishes
        events = make_events(np.arange(0, 2000, 2), np.arange(1000) % 48, np.arange(1000) // 48 % 48, np.arange(1000) % 2)
        packet = encode_event_packet(encode_evt3(events), encoding="evt3", width=48, height=48, seq=0)
        node.wait(lambda: pub.publish(packet) or int(node.value("packets") or 0) > 0, "a packet counted by the node")
        assert node.value("bad_packets") in ("0", "")
        os.killpg(launch.proc.pid, signal.SIGINT)
        rc, output = launch.finish()
        assert_clean_exit(rc, output)
    finally:
        kill_group(launch)


@needs_tools
def test_ros2_run_starts_the_detector_and_ctrl_c_ends_it(tmp_path):
    ns = "run_cam"
    run = start_session([ros2_executable(), "run", PACKAGE, "detector", "--ros-args", "-r", f"__ns:=/{ns}",
                         "-p", f"checkpoint:={TOY}", "-p", "labels:=[a, b]", "-p", "device:=cpu",
                         "-p", "torch_threads:=1"], cwd=tmp_path)
    assert_ctrl_c_ends_it(run, ns)


@pytest.mark.ros
def test_replay_waits_for_a_subscriber_and_says_so_when_none_comes(tmp_path):
    topic = f"/nobody_{os.getpid()}/events"  # a topic no process of this session ever subscribed to
    write_event_bag(GLYPHS, tmp_path / "bag", BagWriteConfig(packet_ms=50, topic=topic))
    result = subprocess.run([sys.executable, "-m", "event_clip_ros.cli", "replay", str(tmp_path / "bag"),
                             "--wait-s", "1"], cwd=REPO, env=tools_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"nothing subscribes to {topic} after 1 s" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "pass 1" not in result.stdout


@needs_tools
def test_colcon_workspace_routes_are_found_by_ros2_pkg_launch_and_run(tmp_path):
    """The README's workspace route: ``colcon build`` (a copy: the node from it starts and stops cleanly) and
    ``colcon build --symlink-install`` (real share folders of links), each used through install/setup.sh
    (colcon-core here, no colcon-bash; setup.bash does the same)."""
    colcon = shutil.which("colcon", path=tools_env()["PATH"])
    if colcon is None:
        pytest.skip("colcon is not installed (requirements-dev.txt installs colcon-core, colcon-ros)")
    env = tools_env()
    for kind, extra in (("copy", []), ("symlink", ["--symlink-install"])):
        build = subprocess.run([colcon, "--log-base", f"log_{kind}", "build", *extra, "--base-paths", str(REPO),
                                "--packages-select", PACKAGE, "--build-base", f"build_{kind}", "--install-base",
                                f"install_{kind}", "--event-handlers", "console_direct-"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert build.returncode == 0, build.stdout + build.stderr
        prefix = tmp_path / f"install_{kind}" / PACKAGE
        share = prefix / "share" / PACKAGE
        for folder in ("launch", "config", "models"):
            assert (share / folder).is_dir() and not (share / folder).is_symlink(), (kind, folder)
        assert (share / "launch" / "detector.launch.py").is_file() and (share / "models" / TOY.name).is_file()
        assert os.access(prefix / "lib" / PACKAGE / "detector", os.X_OK)
        script = (f". '{tmp_path}/install_{kind}/setup.sh' && ros2 pkg prefix {PACKAGE} && "
                  f"ros2 pkg executables {PACKAGE} && ros2 launch {PACKAGE} detector.launch.py --show-args")
        used = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert used.returncode == 0, used.stdout + used.stderr
        assert used.stdout.splitlines()[0] == str(prefix)
        assert f"{PACKAGE} detector" in used.stdout and "'checkpoint':" in used.stdout, used.stdout

    # The copied install runs on its own files (package data included): the node starts on the toy model.
    ns = "colcon_cam"
    run = start_session(["bash", "-c", f". '{tmp_path}/install_copy/setup.sh' && exec ros2 run {PACKAGE} detector "
                                       f"--ros-args -r __ns:=/{ns} -p checkpoint:={TOY} -p 'labels:=[a, b]' "
                                       "-p device:=cpu -p torch_threads:=1"], cwd=tmp_path)
    assert_ctrl_c_ends_it(run, ns)
