"""The deploy path of a position-controlled arm (the Panda spec), without the simulator.

The deploy node runs in its own process with PyBullet, gymnasium, matplotlib and tensorboard
blocked (a meta-path blocker in ``sitecustomize``), with no task parameter: it runs the task spec
the exported policy carries. This test plays the robot over DDS and records what it receives
through the position safety layer's faults: commands within the URDF limits less the margin, at
most the URDF velocity x period per step, a hold that stays still (the last command) on a
glitched or non-finite position, an over-speed trip (latched until cleared), the watchdog and the
e-stop.
"""

from __future__ import annotations

import subprocess
import sys
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
from ddpg_controller.learning.export import export_policy
from ddpg_controller.ros_common import COMMAND_QOS, STATE_QOS
from ddpg_controller.tasks import load_task

TASK = load_task("panda_reach")
PERIOD_NS = round(TASK.control_period * 1e9)
MARGIN = 0.05
STEP = TASK.velocity_limit * TASK.control_period  # rad per control period: the default max_delta
BLOCKED = ("pybullet", "pybullet_data", "gymnasium", "matplotlib", "tensorboard")
BLOCKER = f"""
import sys
BLOCKED = {BLOCKED!r}
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{{name}} is blocked: the deploy path must not need it")
        return None
sys.meta_path.insert(0, _Blocker())
"""


def export_pushing_policy(path: Path) -> Path:
    """An untrained policy whose output saturates (±delta_scale): it always pushes the arm."""
    config = DDPGConfig(actor_hidden=(32, 32), critic_hidden=(32, 32))
    agent = DDPG(
        TASK.observation_dim, TASK.action_dim, TASK.action_low, TASK.action_high, config, seed=1
    )
    with torch.no_grad():
        last = [m for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(0.0)
        last.bias.fill_(20.0)  # tanh(20) = 1 in float32: +delta_scale on every joint
    export_policy(path, agent, {**TASK.policy_metadata(), "env_steps": 0})
    return path


class Robot:
    """The robot side of the deploy node's interfaces."""

    def __init__(self, ros) -> None:
        self.ros, node = ros, ros.node
        self.joint_pub = node.create_publisher(JointState, "joint_states", STATE_QOS)
        self.signal_pubs = {
            name: node.create_publisher(PointStamped, name, STATE_QOS) for name in TASK.signal_names
        }
        self.e_stop_pub = node.create_publisher(Bool, "e_stop", COMMAND_QOS)
        self.received: list[np.ndarray] = []
        node.create_subscription(
            Float64MultiArray,
            f"{TASK.controller_name}/commands",
            lambda msg: self.received.append(np.asarray(msg.data)),
            COMMAND_QOS,
        )
        self.lifecycle = node.create_client(ChangeState, "/deploy/change_state")
        self.clear = node.create_client(Trigger, "/deploy/clear_e_stop")
        self.stamp_ns = 1_000 * PERIOD_NS

    def transition(self, transition_id: int) -> bool:
        return self.ros.change_state(self.lifecycle, transition_id)

    def publish(self, position, velocity=None) -> None:
        self.stamp_ns += PERIOD_NS
        sec, nanosec = divmod(self.stamp_ns, 1_000_000_000)
        for pub in self.signal_pubs.values():
            msg = PointStamped()
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            msg.point.x, msg.point.y, msg.point.z = 0.5, 0.0, 0.4
            pub.publish(msg)
        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
        msg.name = list(TASK.joint_names)
        msg.position = [float(v) for v in position]
        msg.velocity = [float(v) for v in (np.zeros(7) if velocity is None else velocity)]
        self.joint_pub.publish(msg)

    def step(self, position, velocity=None) -> np.ndarray:
        count = len(self.received)
        self.publish(position, velocity)
        assert self.ros.spin_until(lambda: len(self.received) > count, 5.0), "no command"
        return self.received[-1]


@pytest.fixture
def blocked_env(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "blocker"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCKER)
    monkeypatch.setenv("PYTHONPATH", str(folder))
    probe = subprocess.run(
        [sys.executable, "-c", "import pybullet"], capture_output=True, text=True, check=False
    )
    assert probe.returncode != 0 and "blocked" in probe.stderr  # the blocker works
    return folder


def test_position_deploy_without_simulator_and_its_safety_faults(
    spawn, ros, tmp_path, blocked_env
) -> None:
    policy = export_pushing_policy(tmp_path / "panda.pt")
    deploy = spawn(
        "-m",
        "ddpg_controller.deploy_node",
        "--ros-args",
        "-r",
        "__node:=deploy",
        "-p",
        f"policy:={policy}",
        "-p",
        f"position_margin:={MARGIN}",
        "-p",
        "latency_log_period:=0.0",
    )
    robot = Robot(ros)
    assert robot.transition(Transition.TRANSITION_CONFIGURE), deploy.output()[-2000:]
    pubs = [robot.joint_pub, *robot.signal_pubs.values(), robot.e_stop_pub]
    assert ros.spin_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs), 20.0)
    assert ros.spin_until(
        lambda: ros.node.count_publishers(f"{TASK.controller_name}/commands") >= 1, 20.0
    )
    assert robot.transition(Transition.TRANSITION_ACTIVATE), deploy.output()[-2000:]
    upper = TASK.position_upper - MARGIN
    home = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785])
    log = []

    lower = TASK.position_lower + MARGIN

    def limited(q):
        return np.clip(q, lower, upper)

    # The first command holds the measured position (joint 4 at -0.06 rad: at 0.0 - margin); then
    # the policy pushes +0.05 rad per step, ramped from the last command at the URDF velocity x
    # period (joint 4 stays at its limit).
    near = home.copy()
    near[3] = -0.06
    command = robot.step(near)
    assert np.allclose(command, limited(near)) and upper[3] == pytest.approx(-MARGIN), command
    log.append(("first state, joint 4 at -0.06 rad", command))
    command = robot.step(near)
    assert np.allclose(command, limited(near + 0.05)), command
    log.append(("pushed up", command))
    # A glitch: joint 1 reads 1 rad away 50 ms later (20 rad/s, URDF 2.175): hold the last
    # command, not the glitched position and not zeros.
    held = command.copy()
    far = near.copy()
    far[0] = 1.0
    command = robot.step(far)
    assert np.allclose(command, held), command
    log.append(("joint 1 glitched 1 rad away", command))
    # NaN in the measured position: hold still.
    bad = near.copy()
    bad[2] = float("nan")
    command = robot.step(bad)
    assert np.allclose(command, held), command
    log.append(("NaN position", command))
    # Over speed: joint 1 at 3 rad/s (URDF 2.175): hold still, latched.
    fast = np.zeros(7)
    fast[0] = 3.0
    command = robot.step(near, fast)
    assert np.allclose(command, held), command
    log.append(("joint 1 at 3 rad/s", command))
    moved = near + 0.01
    command = robot.step(moved)
    assert np.allclose(command, held), command  # still latched: holds still
    log.append(("next normal state, trip latched", command))
    assert robot.ros.call(robot.clear, Trigger.Request()).success
    command = robot.step(moved)
    assert np.allclose(command, limited(moved + 0.05)), command
    assert np.all(np.abs(command - held) <= STEP + 1e-9)
    log.append(("after ~/clear_e_stop", command))
    last = command.copy()
    # Watchdog: no state for longer than state_timeout: hold the last command.
    count = len(robot.received)
    assert ros.spin_until(lambda: len(robot.received) > count, 2.0)
    assert np.allclose(robot.received[-1], last), robot.received[-1]
    log.append(("no state for 0.15 s (watchdog)", robot.received[-1]))
    # E-stop: hold the last command.
    robot.e_stop_pub.publish(Bool(data=True))
    count = len(robot.received)
    assert ros.spin_until(lambda: len(robot.received) > count, 2.0)
    assert np.allclose(robot.received[-1], last)
    log.append(("e_stop True", robot.received[-1]))
    for what, values in log:
        print(f"{what:34s} -> {np.round(values, 4).tolist()}")


def test_every_fault_class_at_1_khz_gets_safe_commands(spawn, ros, tmp_path) -> None:
    """The fault robot of ``fault_robot.py`` (issue 25's fault classes) at 1 kHz, 0.5 s each:
    no command over the rate bound, out of limits or non-finite, every fault held still, every
    valid state answered or skipped for a newer one (the numbers: ``./run bench faults``)."""
    from fault_robot import FAULTS, FaultRobot
    from test_deploy_faults import export_test_policy

    policy = export_test_policy(tmp_path / "panda.pt", "panda_reach")
    deploy = spawn(
        "-m", "ddpg_controller.deploy_node", "--ros-args", "-p", f"policy:={policy}",
        "-p", "latency_log_period:=0.0",
    )  # fmt: skip
    robot = FaultRobot(ros)
    robot.configure_and_activate()
    rows = []
    for fault in FAULTS:
        audit = robot.run(fault, 1000.0, 0.5)
        rows.append(audit.row())
        print(audit.row())
        violations = (audit.over_step, audit.out_of_limit, audit.not_holding, audit.records_lost)
        assert violations == (0, 0, 0, 0), rows[-1]
        assert audit.answered > 0 and audit.commands >= audit.answered, rows[-1]
        if fault == "e_stop":
            assert audit.e_stop_ms is not None, rows[-1]
        robot.rearm()
    assert "clock reset #1" in deploy.output() and "a position glitch" in deploy.output()
