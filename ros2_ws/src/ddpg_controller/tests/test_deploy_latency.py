"""Latency of the deployed node at 500 Hz real-time state input (a measurement, not a timed test).

The test process publishes pendulum ``joint_states`` at 500 Hz for 5 s and records, for every
state, the round trip until the command it caused arrives; the deploy node (its own process)
measures state received -> command published with its ``LatencyMeter`` and logs p50/p99 at
deactivation. Both are printed (run with ``-s``) and attached to the test report as properties;
the assertions are only that every state was answered with a finite, bounded command.

    .venv/bin/python -m pytest -s ros2_ws/src/ddpg_controller/tests/test_deploy_latency.py
"""

from __future__ import annotations

import math
import re
import time
from collections import deque

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from test_deploy_faults import export_test_policy

from ddpg_controller.ros_common import COMMAND_QOS, STATE_QOS

RATE_HZ = 500.0
DURATION_S = 5.0


def test_latency_at_500_hz(spawn, ros, tmp_path, record_property) -> None:
    policy = export_test_policy(tmp_path / "pendulum.pt", "pendulum")
    node = spawn(
        "-m",
        "ddpg_controller.deploy_node",
        "--ros-args",
        "-p",
        "task:=pendulum",
        "-p",
        f"policy:={policy}",
        "-p",
        "latency_log_period:=0.0",
    )
    sent: deque[float] = deque()
    round_trips: list[float] = []
    commands: list[list[float]] = []

    def on_command(msg: Float64MultiArray) -> None:
        now = time.perf_counter()
        if sent:
            round_trips.append(now - sent.popleft())
        commands.append(list(msg.data))

    publisher = ros.node.create_publisher(JointState, "joint_states", STATE_QOS)
    ros.node.create_subscription(
        Float64MultiArray, "effort_controller/commands", on_command, COMMAND_QOS
    )
    client = ros.node.create_client(ChangeState, "/deploy/change_state")

    def transition(transition_id: int) -> bool:
        assert ros.spin_until(client.service_is_ready, 30.0), node.output()
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        assert ros.spin_until(future.done, 30.0)
        return future.result().success

    assert transition(Transition.TRANSITION_CONFIGURE), node.output()
    assert ros.spin_until(
        lambda: (
            publisher.get_subscription_count() >= 1
            and ros.node.count_publishers("effort_controller/commands") >= 1
        ),
        20.0,
    )
    ros.spin_until(lambda: False, 0.3)
    assert transition(Transition.TRANSITION_ACTIVATE), node.output()

    period = 1.0 / RATE_HZ
    count = int(RATE_HZ * DURATION_S)
    msg = JointState(name=["pendulum_joint"])
    start = time.perf_counter()
    for i in range(count):
        due = start + i * period
        while (now := time.perf_counter()) < due:
            ros.executor.spin_once(timeout_sec=min(due - now, 0.001))
        stamp_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        theta = math.sin(i * 0.01) * math.pi
        msg.position, msg.velocity = [theta], [math.cos(i * 0.01)]
        sent.append(time.perf_counter())
        publisher.publish(msg)
    achieved_hz = count / (time.perf_counter() - start)
    assert ros.spin_until(lambda: len(commands) >= count, 10.0), (len(commands), count)
    assert transition(Transition.TRANSITION_DEACTIVATE)
    assert ros.spin_until(lambda: "deactivated: safe command published" in node.output(), 5.0)

    line = re.search(r"deactivated: .*?p50 (\S+) ms p99 (\S+) ms max (\S+) ms", node.output())
    node_p50, node_p99, node_max = (float(v) for v in line.groups())
    trips = np.array(round_trips) * 1e3
    numbers = {
        "publish_rate_hz": round(achieved_hz, 1),
        "states": count,
        "commands": len(commands) - 1,  # minus the deactivation's safe command
        "node_p50_ms": node_p50,
        "node_p99_ms": node_p99,
        "node_max_ms": node_max,
        "round_trip_p50_ms": round(float(np.percentile(trips, 50)), 3),
        "round_trip_p99_ms": round(float(np.percentile(trips, 99)), 3),
        "round_trip_max_ms": round(float(trips.max()), 3),
    }
    for key, value in numbers.items():
        record_property(key, value)
    print(f"\ndeploy latency at {RATE_HZ:.0f} Hz: {numbers}")
    values = np.array(commands)
    assert np.all(np.isfinite(values)) and np.all(np.abs(values) <= 2.0)
    assert len(round_trips) >= count
