"""The controller node driving a robot in real time sends every command through the safety layer:
the Panda in the real-time sim node, position commands within the URDF limits less the margin and
changing by at most the URDF velocity limit x control period between consecutive commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from std_msgs.msg import Float64MultiArray

from ddpg_controller.ros_common import COMMAND_QOS
from ddpg_controller.safety import DEFAULT_POSITION_MARGIN
from ddpg_controller.tasks import load_task

PACKAGE = Path(__file__).resolve().parents[1]
TASK = load_task("panda_reach")


def test_realtime_controller_commands_pass_the_safety_layer(spawn, ros, tmp_path) -> None:
    config = str(PACKAGE / "config" / "panda_reach.yaml")
    received: list[np.ndarray] = []
    ros.node.create_subscription(
        Float64MultiArray,
        f"/{TASK.controller_name}/commands",
        lambda msg: received.append(np.asarray(msg.data)),
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
    step = TASK.velocity_limit * TASK.control_period
    changes = np.abs(np.diff(commands, axis=0))
    assert np.all(changes <= step + 1e-9), changes.max(axis=0)  # across resets too
    assert (tmp_path / "run" / "policy.pt").exists()
