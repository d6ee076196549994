"""The ROS 2 sim node in its own process, driven over DDS from this test process.

Parity: the same seed and actions through the node in lockstep give exactly the gymnasium env's
observations and rewards (both wrap the same engine's robot), across resets and a reseed, with
PyBullet and with MuJoCo (``engine:=mujoco``).
"""

from __future__ import annotations

import itertools
import math
import re
import time

import numpy as np
import pytest
from geometry_msgs.msg import PointStamped
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.ros_common import COMMAND_QOS, STATE_QOS, joint_state_by_name, stamp_to_ns
from ddpg_controller.sim import RobotEnv
from ddpg_controller.tasks import RobotState, load_task

STARTUP_TIMEOUT = 30.0
STEP_TIMEOUT = 5.0
RESET_MESSAGE = re.compile(r"^stamp_ns=(\d+) episode=(\d+)$")


class SimClient:
    """A stand-in controller: publishes commands, pairs signals with joint_states by stamp."""

    def __init__(self, ros, task_name: str) -> None:
        self.ros = ros
        self.task = load_task(task_name)
        node = ros.node
        self.states: dict[int, JointState] = {}
        self.order: list[int] = []  # joint_states stamps in arrival order (with repeats)
        self.signals: dict[str, dict[int, np.ndarray]] = {s: {} for s in self.task.signal_names}
        self.signals_first: list[bool] = []  # on each joint_states: were its signals already here?
        self.clock: list[int] = []
        node.create_subscription(JointState, "/joint_states", self._on_joint_states, STATE_QOS)
        for name in self.task.signal_names:
            node.create_subscription(
                PointStamped, f"/{name}", lambda m, n=name: self._on_signal(n, m), STATE_QOS
            )
        node.create_subscription(
            Clock, "/clock", lambda m: self.clock.append(stamp_to_ns(m.clock)), STATE_QOS
        )
        self.commands = node.create_publisher(
            Float64MultiArray, f"/{self.task.controller_name}/commands", COMMAND_QOS
        )
        self.reset_client = node.create_client(Trigger, "/sim/reset")
        self.param_client = node.create_client(SetParameters, "/sim/set_parameters")
        self.last_stamp = -1

    def _on_joint_states(self, msg: JointState) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
        self.signals_first.append(all(stamp in by for by in self.signals.values()))
        self.states[stamp] = msg
        self.order.append(stamp)

    def _on_signal(self, name: str, msg: PointStamped) -> None:
        p = msg.point
        self.signals[name][stamp_to_ns(msg.header.stamp)] = np.array([p.x, p.y, p.z])

    def complete(self, stamp: int) -> bool:
        return stamp in self.states and all(stamp in by for by in self.signals.values())

    def state(self, stamp: int) -> RobotState:
        pos, vel = joint_state_by_name(self.states[stamp], self.task.joint_names)
        return RobotState(pos, vel, {n: by[stamp] for n, by in self.signals.items()})

    def wait_ready(self, process) -> int:
        """The first (re-published) initial state; returns its stamp."""
        ok = self.ros.spin_until(
            lambda: (
                bool(self.order)
                and self.complete(self.order[-1])
                and self.commands.get_subscription_count() > 0
                and self.reset_client.service_is_ready()
                and self.param_client.service_is_ready()
            ),
            STARTUP_TIMEOUT,
        )
        assert ok, f"sim node not ready:\n{process.output()}"
        self.last_stamp = self.order[-1]
        return self.last_stamp

    def step(self, values) -> tuple[int, RobotState]:
        self.commands.publish(Float64MultiArray(data=[float(v) for v in values]))
        ok = self.ros.spin_until(
            lambda: (
                self.order and self.order[-1] > self.last_stamp and self.complete(self.order[-1])
            ),
            STEP_TIMEOUT,
        )
        assert ok, "no state after a command"
        assert len({s for s in self.order if s > self.last_stamp}) == 1, "one step per command"
        self.last_stamp = self.order[-1]
        return self.last_stamp, self.state(self.last_stamp)

    def reset(self) -> tuple[int, int, RobotState]:
        future = self.reset_client.call_async(Trigger.Request())
        assert self.ros.spin_until(future.done, STEP_TIMEOUT), "reset service did not answer"
        response = future.result()
        assert response.success
        match = RESET_MESSAGE.match(response.message)
        assert match, response.message
        stamp, episode = int(match[1]), int(match[2])
        assert stamp > self.last_stamp
        assert self.ros.spin_until(lambda: self.complete(stamp), STEP_TIMEOUT)
        self.last_stamp = stamp
        return stamp, episode, self.state(stamp)

    def set_seed(self, seed: int) -> None:
        request = SetParameters.Request(
            parameters=[Parameter("seed", value=seed).to_parameter_msg()]
        )
        future = self.param_client.call_async(request)
        assert self.ros.spin_until(future.done, STEP_TIMEOUT)
        assert all(r.successful for r in future.result().results)


def start_sim(spawn, *params: str):
    args = ["-m", "ddpg_controller.sim_node", "--ros-args"]
    for p in params:
        args += ["-p", p]
    return spawn(*args)


@pytest.mark.parametrize(
    ("task_name", "engine"),
    [("pendulum", "pybullet"), ("arm_reach", "pybullet"), ("reacher", "mujoco")],
)
def test_lockstep_parity_with_gym_env(task_name, engine, spawn, ros):
    seed, reseed = 7, 13
    process = start_sim(
        spawn, f"task:={task_name}", f"seed:={seed}", "mode:=lockstep", f"engine:={engine}"
    )
    client = SimClient(ros, task_name)
    task = client.task
    env = RobotEnv(task_name, engine=engine)
    try:
        first = client.wait_ready(process)
        # The start-up reset is stamped one period into sim time and re-published (same stamp)
        # until the first command, so this late subscriber still got it.
        assert first == round(task.control_period * 1e9)
        obs, _ = env.reset(seed=seed)
        ros_state = client.state(first)
        assert np.array_equal(task.observation(ros_state), obs)
        rng = np.random.default_rng(0)
        steps = 0

        def run(n: int) -> None:
            nonlocal ros_state, steps
            for _ in range(n):
                action = rng.uniform(task.action_low, task.action_high)
                obs, reward, *_, info = env.step(action)
                _, next_state = client.step(action)
                assert np.array_equal(task.observation(next_state), obs), f"step {steps}"
                assert np.array_equal(next_state.position, env.state.position)
                assert np.array_equal(next_state.velocity, env.state.velocity)
                assert task.reward(ros_state, action, next_state) == reward
                effort = np.asarray(client.states[client.last_stamp].effort)
                assert np.allclose(effort, info["effort"], atol=1e-9)
                ros_state = next_state
                steps += 1

        run(30)
        # A reset continues the RNG, in the env and in the node.
        _, episode, ros_state = client.reset()
        assert episode == 1
        obs, _ = env.reset()
        assert np.array_equal(task.observation(ros_state), obs)
        run(25)
        # Setting the seed parameter reseeds the next reset.
        client.set_seed(reseed)
        _, episode, ros_state = client.reset()
        assert episode == 2
        obs, _ = env.reset(seed=reseed)
        assert np.array_equal(task.observation(ros_state), obs)
        run(5)
        assert steps >= 50
        # Stamps: sim time, strictly increasing; /clock carries the same times.
        distinct = sorted(set(client.order))
        period_ns = round(task.control_period * 1e9)
        assert distinct == [first + i * period_ns for i in range(len(distinct))]
        assert client.ros.spin_until(lambda: client.clock and client.clock[-1] == distinct[-1], 2.0)
        assert all(b > a for a, b in itertools.pairwise(client.clock))
        assert set(distinct) <= set(client.clock)
        # Signals go out before the joint_states they belong to.
        if task.signal_names:
            assert sum(client.signals_first) >= 0.9 * len(client.signals_first)
    finally:
        env.close()
    assert process.alive(), process.output()
    assert process.stop() == 0, process.output()


def test_malformed_commands_step_with_zeros(spawn, ros):
    process = start_sim(spawn, "task:=reacher", "seed:=3")
    client = SimClient(ros, "reacher")
    task = client.task
    env = RobotEnv("reacher")
    try:
        client.wait_ready(process)
        env.reset(seed=3)
        for values in ([0.05], [0.05, 0.05, 0.05], [], [math.nan, 0.05], [0.05, math.inf]):
            obs, *_ = env.step(np.zeros(2))
            stamp, state = client.step(values)
            assert np.all(np.isfinite(state.position)) and np.all(np.isfinite(state.velocity))
            assert np.array_equal(task.observation(state), obs), values
            assert list(client.states[stamp].effort) == [0.0, 0.0]
        obs, *_ = env.step(np.array([0.05, -0.05]))
        _, state = client.step([0.05, -0.05])
        assert np.array_equal(task.observation(state), obs)
        assert process.alive()
    finally:
        env.close()
    log = process.output()
    assert process.stop() == 0, log
    assert "expected 2" in log and "not finite" in log, log


def test_realtime_rate_and_held_command(spawn, ros):
    process = start_sim(spawn, "task:=pendulum", "mode:=realtime")
    client = SimClient(ros, "pendulum")
    period = client.task.control_period
    client.wait_ready(process)
    client.commands.publish(Float64MultiArray(data=[1.5]))
    ros.spin_until(lambda: False, 0.3)
    start = time.monotonic()
    n0 = len(client.order)
    ros.spin_until(lambda: False, 1.0)
    elapsed = time.monotonic() - start
    stamps = client.order[n0:]
    rate = len(stamps) / elapsed
    assert rate == pytest.approx(1.0 / period, rel=0.2), rate
    stamp_rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) * 1e-9)
    assert stamp_rate == pytest.approx(1.0 / period, rel=0.2), stamp_rate
    assert all(b > a for a, b in itertools.pairwise(stamps))
    # The last command is held on every tick.
    assert all(list(client.states[s].effort) == [1.5] for s in stamps)
    assert not client.clock  # no /clock in real time
    assert process.stop() == 0, process.output()


def test_bad_task_parameter_exits(spawn):
    process = start_sim(spawn, "task:=nope")
    assert process.wait(STARTUP_TIMEOUT) != 0
    assert "known tasks" in process.output(), process.output()
    process = start_sim(spawn, "engine:=ode")
    assert process.wait(STARTUP_TIMEOUT) == 2
    assert "sim_node: engine must be one of pybullet, mujoco, got 'ode'" in process.output()
