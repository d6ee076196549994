"""Test isolation and process helpers shared by the integration tests.

Every test run claims a DDS domain of its own (held by a lock file for the whole run) and keeps
discovery on localhost, so two runs on one machine never hear each other.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ddpg_controller.processes import NodeProcess
from ddpg_controller.ros_common import find_packages_in_this_prefix, isolate_ros_traffic


def pytest_configure(config: pytest.Config) -> None:
    isolate_ros_traffic()
    find_packages_in_this_prefix()
    # A shell's background job (`bash .ci/run &` in a script) starts with SIGINT ignored, and every
    # process it starts inherits that: the Ctrl-C tests' ddpg-train then ignored its SIGINT, never
    # stopped, and its orphaned nodes published into the tests after it (16 failures seen). A
    # Python handler here is not inherited: children start with the default disposition.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} discovery=LOCALHOST"


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

    def call(self, client, request):
        """Call a service and return its answer; fails the test if none comes within 30 s."""
        assert self.spin_until(client.service_is_ready, 30.0), client.srv_name
        future = client.call_async(request)
        assert self.spin_until(future.done, 30.0), client.srv_name
        return future.result()

    def change_state(self, client, transition_id: int) -> bool:
        """Ask a lifecycle node's ``change_state`` service for one transition."""
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(client, request).success

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)


@pytest.fixture
def ros() -> Iterator[RosHarness]:
    harness = RosHarness()
    yield harness
    harness.close()
