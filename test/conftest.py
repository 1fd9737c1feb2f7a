"""Session setup for the whole suite: an isolated ROS 2 environment, markers and DDS helpers.

``pytest_configure`` runs before any test module is imported, so rclpy (which reads
these variables at ``rclpy.init``) and every subprocess a test starts share them:

* ``ROS_DOMAIN_ID``: random in 1..101 per session, so sessions running side by side
  on one host do not see each other (higher ids risk ports in the ephemeral range).
* ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``: test traffic stays on this host.
* ``ROS_LOG_DIR``: a temporary directory (rclpy writes a log file per process).
* ``FASTDDS_DEFAULT_PROFILES_FILE``: a discovery profile that announces often at
  start-up, so a late joiner is matched within ~0.4 s instead of up to ~3 s.

Markers: ``ros`` (needs rclpy; skipped with the reason when rclpy cannot be
imported) and ``slow`` (takes more than ~30 s; still run by default).

Tests that talk over DDS use the ``ros`` fixture (:class:`RosHarness`): a node in
its own context, a helper that spins until a condition holds (never sleeps), and
one that starts a Python subprocess with the session's environment.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Fast DDS participant profile: 10 announcements 50 ms apart at start-up, then every 250 ms.
FAST_DISCOVERY_PROFILE = """\
<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <participant profile_name="fastdisc" is_default_profile="true"><rtps><builtin><discovery_config>
    <leaseDuration><sec>10</sec></leaseDuration>
    <leaseAnnouncement><sec>0</sec><nanosec>250000000</nanosec></leaseAnnouncement>
    <initialAnnouncements><count>10</count><period><sec>0</sec><nanosec>50000000</nanosec></period></initialAnnouncements>
  </discovery_config></builtin></rtps></participant>
</profiles></dds>
"""

_session_tmp: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _session_tmp
    config.addinivalue_line("markers", "ros: talks to ROS 2 through rclpy (skipped when rclpy is not importable)")
    config.addinivalue_line("markers", "slow: takes more than ~30 s (still run by default)")
    _session_tmp = Path(tempfile.mkdtemp(prefix="event_clip_ros_test_"))
    log_dir = _session_tmp / "ros_log"
    log_dir.mkdir()
    profile = _session_tmp / "fast_discovery.xml"
    profile.write_text(FAST_DISCOVERY_PROFILE)
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_LOG_DIR"] = str(log_dir)
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_tmp is not None:
        shutil.rmtree(_session_tmp, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')} ROS_LOG_DIR={os.environ.get('ROS_LOG_DIR')}"

@pytest.fixture(scope="module")
def restore_torch_threads() -> Iterator[None]:
    """Training sets torch's process-wide thread count (runtime.threads): give the other test modules theirs back.

    Use it in a module with ``pytestmark = pytest.mark.usefixtures("restore_torch_threads")``.
    """
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)



def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ros_items = [item for item in items if item.get_closest_marker("ros")]
    if not ros_items:
        return
    try:
        import rclpy  # noqa: F401
    except ImportError as err:
        skip = pytest.mark.skip(
            reason=f"rclpy is not importable ({str(err).splitlines()[0]}); run scripts/setup_env.sh or source a ROS 2 install"
        )
        for item in ros_items:
            item.add_marker(skip)


class RosProcess:
    """A Python subprocess started with the session's ROS environment.

    It gets a pipe on stdin: a child can block on ``sys.stdin.read()`` to stay
    alive until :meth:`finish` closes it (no sleeps on either side).
    """

    def __init__(self, code: str, args: list[str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO_ROOT,
            env=os.environ.copy(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def check_alive(self) -> None:
        """Fail with the child's output if it has exited already."""
        if self.popen.poll() is not None:
            out, err = self.popen.communicate()
            raise AssertionError(f"subprocess exited early with {self.popen.returncode}\n{out}\n{err}")

    def finish(self, timeout_s: float = 20.0) -> str:
        """Close stdin, wait for a clean exit and return the child's stdout."""
        out, err = self.popen.communicate(input="", timeout=timeout_s)
        assert self.popen.returncode == 0, f"subprocess exited with {self.popen.returncode}\n{out}\n{err}"
        return out

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate()


class RosHarness:
    """A node in its own rclpy context plus helpers for tests that talk over DDS."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._processes: list[RosProcess] = []

    def start_python(self, code: str, *args: str) -> RosProcess:
        """Run ``code`` in a new interpreter (this one's) with ``args`` as sys.argv[1:]."""
        proc = RosProcess(code, list(args))
        self._processes.append(proc)
        return proc

    def spin_until(
        self,
        condition: Callable[[], bool],
        what: str,
        timeout_s: float = 20.0,
        watch: RosProcess | None = None,
    ) -> None:
        """Process callbacks until ``condition()`` holds; fail after ``timeout_s``.

        ``watch``: a subprocess whose early exit fails the wait at once, with its output.
        """
        deadline = time.monotonic() + timeout_s
        while not condition():
            if watch is not None:
                watch.check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            self.executor.spin_once(timeout_sec=min(0.05, remaining))

    def close(self) -> None:
        for proc in self._processes:
            proc.kill()
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture
def ros(request: pytest.FixtureRequest) -> Iterator[RosHarness]:
    """A :class:`RosHarness` whose node is named after the test; torn down afterwards."""
    name = "test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    harness = RosHarness(name)
    try:
        yield harness
    finally:
        harness.close()
