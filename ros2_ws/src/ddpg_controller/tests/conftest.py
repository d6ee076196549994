"""Test isolation and process helpers shared by the integration tests.

Every test run claims a DDS domain of its own (held by a lock file for the whole run) and keeps
discovery on localhost, so two runs on one machine never hear each other.
"""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_DOMAIN_LOCK = None


def _claim_domain() -> int:
    """Lock a free ROS_DOMAIN_ID in 1..100 for this process's lifetime."""
    global _DOMAIN_LOCK
    candidates = list(range(1, 101))
    random.shuffle(candidates)
    for domain in candidates:
        lock = open(f"/tmp/ddpg_controller_ros_domain_{domain}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        _DOMAIN_LOCK = lock
        return domain
    raise RuntimeError("no free ROS_DOMAIN_ID in 1..100")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(_claim_domain())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    prefix = sys.prefix
    paths = os.environ.get("AMENT_PREFIX_PATH", "")
    if prefix not in paths.split(":"):
        os.environ["AMENT_PREFIX_PATH"] = f"{prefix}:{paths}" if paths else prefix


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} discovery=LOCALHOST"


class NodeProcess:
    """A node in its own process and process group, stopped with SIGINT like `ros2 launch` does."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115
        self.popen = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start ``python ARGS...`` processes (``"-m", "module", ...`` or a script); all are stopped
    when the test ends, and each one's output is kept in a log file for failure messages."""
    processes: list[NodeProcess] = []

    def start(*args: str) -> NodeProcess:
        name = Path(args[1] if args[0] == "-m" else args[0]).stem.rsplit(".", 1)[-1]
        process = NodeProcess([sys.executable, *args], tmp_path / f"{name}-{len(processes)}.log")
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


class RosHarness:
    """An rclpy context, node and executor in the test process."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.experimental import EventsExecutor

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"test_{os.getpid()}", context=self.context)
        self.executor = EventsExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``condition()`` holds; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    harness = RosHarness()
    yield harness
    harness.close()
