"""The controller node driving a robot in real time sends every command through the safety layer:
the Panda in the real-time sim node, position commands within the URDF limits less the margin and
changing by at most the URDF velocity limit x control period between consecutive commands, the
first after a reset from where the robot is (not from the last episode's pose, which it would
drive back to at its velocity limit); and a transition records the action the robot was given,
not the one the policy asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from ddpg_controller.robot_link import RobotLink
from ddpg_controller.ros_common import COMMAND_QOS, STATE_QOS
from ddpg_controller.safety import DEFAULT_POSITION_MARGIN
from ddpg_controller.tasks import RobotState, load_task

PACKAGE = Path(__file__).resolve().parents[1]
TASK = load_task("panda_reach")


def test_realtime_controller_commands_pass_the_safety_layer(spawn, ros, tmp_path) -> None:
    config = str(PACKAGE / "config" / "panda_reach.yaml")
    received: list[np.ndarray] = []
    measured: list[np.ndarray] = []  # joint positions
    seen: list[int] = []  # per command: how many joint states had arrived before it
    ros.node.create_subscription(
        JointState, "/joint_states", lambda msg: measured.append(np.array(msg.position)), STATE_QOS
    )
    ros.node.create_subscription(
        Float64MultiArray,
        f"/{TASK.controller_name}/commands",
        lambda msg: (received.append(np.asarray(msg.data)), seen.append(len(measured))),
        COMMAND_QOS,
    )
    sim = spawn(
        "-m", "ddpg_controller.sim_node", "--ros-args", "-r", "__node:=sim",
        "--params-file", config, "-p", "mode:=realtime",
    )  # fmt: skip
    controller = spawn(
        "-m", "ddpg_controller.controller_node", "--ros-args", "-r", "__node:=controller",
        "--params-file", config, "-p", "lockstep:=false", "-p", "training:=false",
        "-p", "total_steps:=10", "-p", "eval_every_steps:=0", "-p", "final_eval_episodes:=1",
        "-p", "checkpoint_every_steps:=0", "-p", "save_replay:=false",
        "-p", f"run_dir:={tmp_path / 'run'}",
    )  # fmt: skip
    ros.spin_until(lambda: not controller.alive(), 120.0)  # receiving every command meanwhile
    assert controller.wait(timeout=5) == 0, controller.output()[-3000:] + sim.output()[-2000:]
    assert len(received) >= 55, len(received)  # 10 steps + a 50-step evaluation episode
    commands = np.array(received)
    low = TASK.position_lower + DEFAULT_POSITION_MARGIN
    high = TASK.position_upper - DEFAULT_POSITION_MARGIN
    assert np.all(commands >= low - 1e-12) and np.all(commands <= high + 1e-12)
    step = TASK.velocity_limit * TASK.control_period + 1e-9
    restarts = 0
    for k in range(1, len(commands)):
        if np.all(np.abs(commands[k] - commands[k - 1]) <= step):
            continue
        # A jump: only after a reset (the evaluation episode's), within a step of the robot's
        # position then (one of the last states this process saw before the command).
        recent = measured[max(0, seen[k] - 3) : seen[k]]
        assert any(np.all(np.abs(commands[k] - q) <= step) for q in recent), (k, commands[k])
        restarts += 1
    assert restarts <= 1, restarts
    assert (tmp_path / "run" / "policy.pt").exists()


class _NoEpisodes:
    """A link's owner that is never called here: no reset service answers in this test."""

    def begin_episode(self) -> None: ...

    def on_episode_start(self) -> None: ...

    def on_state(self, stamp_ns: int, state: RobotState, received: float) -> None: ...


def test_realtime_link_returns_the_action_the_safety_layer_let_through(ros) -> None:
    # The pendulum's torque is rate-limited to a quarter of its ±2 N·m range per 50 ms period,
    # ramping from the safe command (0); a transition must store what the robot received.
    task = load_task("pendulum")
    published: list[float] = []
    ros.node.create_subscription(
        Float64MultiArray,
        f"{task.controller_name}/commands",
        lambda msg: published.extend(msg.data),
        COMMAND_QOS,
    )
    realtime = RobotLink(
        ros.node, _NoEpisodes(), task, task.controller_name, "no_reset", lockstep=False
    )
    period_ns = round(task.control_period * 1e9)
    still = RobotState(np.zeros(1), np.zeros(1))
    wanted = [2.0, -2.0, 0.5, 1.2]
    applied = [
        realtime.act(np.array([a]), (k + 1) * period_ns, still) for k, a in enumerate(wanted)
    ]
    broken = RobotState(np.array([np.nan]), np.zeros(1))
    applied.append(realtime.act(np.array([1.0]), 5 * period_ns, broken))  # safe command: 0
    assert np.array(applied).ravel().tolist() == [1.0, 0.0, 0.5, 1.2, 0.0]
    assert ros.spin_until(lambda: len(published) == 5, 5.0), published
    assert published == [1.0, 0.0, 0.5, 1.2, 0.0]

    lockstep = RobotLink(ros.node, _NoEpisodes(), task, task.controller_name, "no_reset", True)
    action = np.array([2.0])
    assert lockstep.act(action, 6 * period_ns, still) is action  # the gym env's action, as is
