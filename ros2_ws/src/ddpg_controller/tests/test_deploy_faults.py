"""Fault injection: the deploy node (its own process) against a misbehaving robot (this process).

The test process plays a two-joint reacher robot: it publishes ``joint_states`` and the task's
signal topics (``goal``, ``end_effector``) and records every command the node publishes on
``effort_controller/commands``. For each fault it asserts on what the robot received: always
finite, always within the limits, the safe command (zeros) when it must be, the policy's command
(computed here from the same policy file) otherwise.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.export import export_policy, load_policy
from ddpg_controller.ros_common import COMMAND_QOS, RECORD_QOS, STATE_QOS, stamp_to_ns
from ddpg_controller.tasks import RobotState, load_task

TASK = load_task("reacher")
JOINTS = list(TASK.joint_names)
LIMIT = 0.1  # reacher torque bound: the default command limits
PERIOD_NS = 50_000_000
TIMEOUT = 0.15  # state_timeout (three control periods)


def export_test_policy(path: Path, task_name: str = "reacher") -> Path:
    """An untrained policy whose output layer is scaled up so that its commands differ from the
    safe command (zeros) and vary with the state."""
    task = load_task(task_name)
    config = DDPGConfig(actor_hidden=(32, 32), critic_hidden=(32, 32))
    agent = DDPG(
        task.observation_dim, task.action_dim, task.action_low, task.action_high, config, seed=3
    )
    with torch.no_grad():
        last = [m for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(300.0)
    meta = task.policy_metadata()
    export_policy(path, agent, meta)
    return path


@pytest.fixture
def policy_file(tmp_path) -> Path:
    return export_test_policy(tmp_path / "reacher.pt")


class FakeRobot:
    """The robot side of the deploy node's interfaces, in the test process."""

    def __init__(self, ros, policy_file: Path, node_name: str = "deploy") -> None:
        self.ros = ros
        node = ros.node
        self.policy = load_policy(policy_file)
        self.joint_pub = node.create_publisher(JointState, "joint_states", STATE_QOS)
        self.signal_pubs = {
            n: node.create_publisher(PointStamped, n, STATE_QOS) for n in TASK.signal_names
        }
        self.e_stop_pub = node.create_publisher(Bool, "e_stop", COMMAND_QOS)
        self.commands: list[tuple[float, np.ndarray]] = []  # (receive time, command)
        node.create_subscription(
            Float64MultiArray, "effort_controller/commands", self._on_command, COMMAND_QOS
        )
        self.lifecycle = node.create_client(ChangeState, f"/{node_name}/change_state")
        self.clear = node.create_client(Trigger, f"/{node_name}/clear_e_stop")
        self.stamp_ns = 1_000 * PERIOD_NS
        self.rng = np.random.default_rng(0)

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands.append((time.monotonic(), np.asarray(msg.data, dtype=np.float64)))

    def transition(self, transition_id: int) -> bool:
        return self.ros.change_state(self.lifecycle, transition_id)

    def configure_and_activate(self) -> None:
        assert self.transition(Transition.TRANSITION_CONFIGURE)
        self.wait_connected()
        assert self.transition(Transition.TRANSITION_ACTIVATE)

    def wait_connected(self) -> None:
        """Until the node's subscriptions and command publisher have matched ours."""
        pubs = [self.joint_pub, *self.signal_pubs.values(), self.e_stop_pub]
        assert self.ros.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in pubs)
                and self.ros.node.count_publishers("effort_controller/commands") >= 1
            ),
            20.0,
        )
        self.ros.spin_until(lambda: False, 0.3)

    def random_state(self) -> RobotState:
        return RobotState(
            position=self.rng.uniform(-math.pi, math.pi, 2),
            velocity=self.rng.uniform(-2.0, 2.0, 2),
            signals={
                "goal": np.array([*self.rng.uniform(-0.15, 0.15, 2), 0.0]),
                "end_effector": np.array([*self.rng.uniform(-0.2, 0.2, 2), 0.0]),
            },
        )

    def publish(
        self,
        state: RobotState,
        names: list[str] | None = None,
        order: list[int] | None = None,
        stamp_ns: int | None = None,
    ) -> int:
        """Signals, then joint_states (joints in ``order``, named ``names``); returns the stamp."""
        if stamp_ns is None:
            self.stamp_ns += PERIOD_NS
            stamp_ns = self.stamp_ns
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        for name, pub in self.signal_pubs.items():
            msg = PointStamped()
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            msg.point.x, msg.point.y, msg.point.z = (float(v) for v in state.signals[name])
            pub.publish(msg)
        order = order or list(range(len(JOINTS)))
        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        msg.name = [(names or JOINTS)[i] for i in order]
        msg.position = [float(state.position[i]) for i in order]
        msg.velocity = [float(state.velocity[i]) for i in order]
        self.joint_pub.publish(msg)
        return stamp_ns

    def expected(self, state: RobotState) -> np.ndarray:
        """The policy's command for ``state`` (rate limit off), computed here."""
        action = self.policy(TASK.observation(state)).astype(np.float64)
        return np.clip(action, -LIMIT, LIMIT)

    def step(self, state: RobotState, **kwargs) -> np.ndarray:
        """Publish one state and wait for the command it causes."""
        count = len(self.commands)
        self.publish(state, **kwargs)
        assert self.ros.spin_until(lambda: len(self.commands) > count, 5.0), "no command"
        return self.commands[-1][1]

    def no_command_after(self, action, wait: float = 0.1) -> bool:
        count = len(self.commands)
        action()
        self.ros.spin_until(lambda: False, wait)
        return len(self.commands) == count

    def assert_all_safe_bounds(self) -> None:
        for _, command in self.commands:
            assert command.shape == (2,) and np.all(np.isfinite(command)), command
            assert np.all(np.abs(command) <= LIMIT + 1e-12), command


def start_deploy(spawn, policy: Path, *params: str, name: str = "deploy"):
    args = ["-p", "task:=reacher", "-p", f"policy:={policy}", "-p", "latency_log_period:=0.0"]
    for param in params:
        args += ["-p", param]
    return spawn("-m", "ddpg_controller.deploy_node", "--ros-args", "-r", f"__node:={name}", *args)


# ---- configuration checks ----------------------------------------------------------------------
def test_policy_metadata_mismatches_are_named() -> None:
    meta = TASK.policy_metadata()
    meta.update(obs_dim=TASK.observation_dim, action_dim=TASK.action_dim)
    assert TASK.policy_mismatches(meta) == []
    renamed = {**meta, "joint_names": ["reacher_joint_1", "elbow"]}
    (problem,) = TASK.policy_mismatches(renamed)
    assert "policy-only ['elbow']" in problem and "task-only ['reacher_joint_2']" in problem
    reordered = {**meta, "joint_names": JOINTS[::-1]}
    assert "joint order differs" in TASK.policy_mismatches(reordered)[0]
    no_signals = {**meta, "signal_names": ["goal"]}
    assert "signal_names (topics): policy ['goal']" in TASK.policy_mismatches(no_signals)[0]
    three = {**meta, "action_dim": 3}
    assert "action count vs controller joints: policy 3, task 2" in TASK.policy_mismatches(three)
    slow = {**meta, "control_rate_hz": 10.0}
    assert "control_rate_hz: policy 10.0, task 20" in TASK.policy_mismatches(slow)
    pendulum = load_task("pendulum").policy_metadata()
    assert len(TASK.policy_mismatches(pendulum)) >= 4


def test_configure_fails_on_missing_corrupt_or_mismatched_policy(spawn, ros, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a policy")
    pendulum = export_test_policy(tmp_path / "pendulum.pt", "pendulum")
    cases = {
        "deploy_missing": (tmp_path / "missing.pt", "policy file not found"),
        "deploy_corrupt": (corrupt, "is not a readable TorchScript policy"),
        "deploy_wrong": (pendulum, "joint names differ: policy ['pendulum_joint']"),
    }
    nodes = {name: start_deploy(spawn, path, name=name) for name, (path, _) in cases.items()}
    for name, (_, message) in cases.items():
        robot = FakeRobot(ros, pendulum, node_name=name)
        assert not robot.transition(Transition.TRANSITION_CONFIGURE), name
        output = nodes[name].output
        assert ros.spin_until(lambda o=output, m=message: m in o(), 5.0), output()
        assert nodes[name].alive()


# ---- faults while active ------------------------------------------------------------------------
def test_watchdog_and_non_finite_states_give_the_safe_command(spawn, ros, policy_file) -> None:
    node = start_deploy(spawn, policy_file, "max_delta:=[0.0]")
    robot = FakeRobot(ros, policy_file)
    robot.configure_and_activate()
    for _ in range(5):
        state = robot.random_state()
        np.testing.assert_array_equal(robot.step(state), robot.expected(state))
        ros.spin_until(lambda: False, 0.04)
    assert np.any(np.abs(robot.commands[-1][1]) > 1e-3), "the policy must differ from safe"

    # The state stream stops: one safe command within the timeout (+ the 30 ms check period).
    last_state = time.monotonic()
    count = len(robot.commands)
    assert ros.spin_until(lambda: len(robot.commands) > count, 2.0), node.output()
    fired, command = robot.commands[-1]
    assert command.tolist() == [0.0, 0.0]
    assert fired - last_state < TIMEOUT + 0.1, f"watchdog took {fired - last_state:.3f} s"
    ros.spin_until(lambda: False, 0.5)
    assert len(robot.commands) == count + 1, "the safe command is sent once per outage"

    # States return: the policy acts again.
    for _ in range(3):
        state = robot.random_state()
        np.testing.assert_array_equal(robot.step(state), robot.expected(state))

    # NaN / inf anywhere in the state: the safe command for that state, then recovery.
    for field, index in [("position", 0), ("velocity", 1), ("goal", 0), ("end_effector", 2)]:
        for bad in (math.nan, math.inf):
            state = robot.random_state()
            target = state.signals[field] if field in state.signals else getattr(state, field)
            target[index] = bad
            assert robot.step(state).tolist() == [0.0, 0.0], (field, bad)
            good = robot.random_state()
            np.testing.assert_array_equal(robot.step(good), robot.expected(good))
    robot.assert_all_safe_bounds()
    assert ros.spin_until(lambda: "non-finite value in the robot state" in node.output(), 5.0)
    assert "no state for 150 ms: safe command" in node.output()


def test_e_stop_latches_until_the_service_clears_it(spawn, ros, policy_file) -> None:
    start_deploy(spawn, policy_file, "max_delta:=[0.0]", "state_timeout:=5.0")
    robot = FakeRobot(ros, policy_file)
    robot.configure_and_activate()
    state = robot.random_state()
    np.testing.assert_array_equal(robot.step(state), robot.expected(state))

    count = len(robot.commands)
    robot.e_stop_pub.publish(Bool(data=True))
    assert ros.spin_until(lambda: len(robot.commands) > count, 5.0), "e-stop: no safe command"
    assert robot.commands[-1][1].tolist() == [0.0, 0.0]
    for _ in range(3):
        assert robot.step(robot.random_state()).tolist() == [0.0, 0.0]
    robot.e_stop_pub.publish(Bool(data=False))  # does not clear the latch
    ros.spin_until(lambda: False, 0.2)
    for _ in range(3):
        assert robot.step(robot.random_state()).tolist() == [0.0, 0.0]

    response = robot.ros.call(robot.clear, Trigger.Request())
    assert response.success and response.message == "e-stop cleared"
    state = robot.random_state()
    np.testing.assert_array_equal(robot.step(state), robot.expected(state))
    robot.assert_all_safe_bounds()


def test_joint_order_duplicates_and_out_of_order_stamps(spawn, ros, policy_file) -> None:
    node = start_deploy(spawn, policy_file, "max_delta:=[0.0]", "state_timeout:=5.0")
    robot = FakeRobot(ros, policy_file)
    robot.configure_and_activate()

    # Joints in a different order in the message: the same command as in task order.
    state = robot.random_state()
    in_order = robot.step(state)
    reordered = robot.step(state, order=[1, 0])  # same values, new stamp, joints swapped
    np.testing.assert_array_equal(in_order, robot.expected(state))
    np.testing.assert_array_equal(reordered, in_order)

    # A duplicate stamp and an older stamp: ignored, never acted on twice.
    last = robot.stamp_ns
    assert robot.no_command_after(lambda: robot.publish(robot.random_state(), stamp_ns=last))
    older = last - 3 * PERIOD_NS
    assert robot.no_command_after(lambda: robot.publish(robot.random_state(), stamp_ns=older))
    state = robot.random_state()
    np.testing.assert_array_equal(robot.step(state), robot.expected(state))
    robot.assert_all_safe_bounds()

    # Ctrl-C (SIGINT) while active: the node publishes the safe command before it exits.
    count = len(robot.commands)
    assert node.stop() == 0
    assert ros.spin_until(lambda: len(robot.commands) > count, 5.0), node.output()
    assert robot.commands[-1][1].tolist() == [0.0, 0.0]


def test_missing_or_renamed_joints(spawn, ros, policy_file) -> None:
    node = start_deploy(spawn, policy_file, "max_delta:=[0.0]", "state_timeout:=5.0")
    robot = FakeRobot(ros, policy_file)
    assert robot.transition(Transition.TRANSITION_CONFIGURE)
    robot.wait_connected()

    # Before activation a renamed joint is seen: activate fails, saying which joint is missing.
    robot.publish(robot.random_state(), names=["reacher_joint_1", "elbow"])
    ros.spin_until(lambda: False, 0.3)
    assert not robot.transition(Transition.TRANSITION_ACTIVATE)
    assert ros.spin_until(lambda: "activate refused" in node.output(), 5.0)
    assert "lacks joints ['reacher_joint_2']" in node.output()
    assert robot.commands == []

    # The right joints come back: activation succeeds.
    robot.publish(robot.random_state())
    ros.spin_until(lambda: False, 0.3)
    assert robot.transition(Transition.TRANSITION_ACTIVATE)
    state = robot.random_state()
    np.testing.assert_array_equal(robot.step(state), robot.expected(state))

    # While active: a renamed joint or a missing joint gives the safe command.
    assert robot.step(robot.random_state(), names=["a", "b"]).tolist() == [0.0, 0.0]
    state = robot.random_state()
    msg_state = RobotState(state.position[:1], state.velocity[:1], state.signals)
    assert robot.step(msg_state, order=[0]).tolist() == [0.0, 0.0]  # only joint 1 published
    state = robot.random_state()
    np.testing.assert_array_equal(robot.step(state), robot.expected(state))
    robot.assert_all_safe_bounds()


def test_burst_at_ten_times_the_rate_is_limited(spawn, ros, policy_file) -> None:
    max_delta = 0.02
    start_deploy(spawn, policy_file, f"max_delta:=[{max_delta}]", "state_timeout:=5.0")
    robot = FakeRobot(ros, policy_file)
    answers: list[tuple[int, np.ndarray]] = []  # (stamp of the state answered, command)
    ros.node.create_subscription(
        JointState,
        "/deploy/command_state",
        lambda m: answers.append((stamp_to_ns(m.header.stamp), np.asarray(m.effort))),
        RECORD_QOS,
    )
    robot.configure_and_activate()
    for _ in range(3):  # at the normal rate first
        robot.step(robot.random_state())
    assert ros.spin_until(lambda: answers and answers[-1][0] == robot.stamp_ns, 5.0)
    start = len(answers) - 1
    burst = 100
    for _ in range(burst):  # 10x the control rate: stamps 5 ms apart, random states
        robot.publish(robot.random_state(), stamp_ns=robot.stamp_ns + PERIOD_NS // 10)
        robot.stamp_ns += PERIOD_NS // 10
        ros.spin_until(lambda: False, 0.005)
    # The node acts on the newest state (a loaded machine skips some): the last one is answered.
    assert ros.spin_until(lambda: answers[-1][0] == robot.stamp_ns, 10.0)
    robot.assert_all_safe_bounds()
    stamps = np.array([stamp for stamp, _ in answers[start:]])
    commands = np.array([command for _, command in answers[start:]])
    steps = np.abs(np.diff(commands, axis=0))
    # A state k/10 of a period after the last one answered may move the command k/10 of
    # max_delta: bursts cannot speed it up.
    allowed = max_delta * np.minimum(1.0, np.diff(stamps) / PERIOD_NS)
    assert np.all(steps <= allowed[:, None] + 1e-12), (steps.max(axis=1) / allowed).max()
    assert np.all(np.abs(commands[-1] - commands[0]) <= max_delta * burst / 10 + 1e-12)
    assert steps.max() > 0.0, "the policy's commands should move"
