"""The nodes run on an rclpy without ``rclpy.experimental.EventsExecutor``, as Humble's (3.3.x) is.

The sim node runs in its own process with that module hidden by an import hook, and is driven over
DDS from this process exactly as on the EventsExecutor: same states as the gymnasium env.
"""

from __future__ import annotations

import numpy as np
from test_sim_node import SimClient

from ddpg_controller.sim import RobotEnv

HIDDEN = "rclpy.experimental hidden, as on Humble"

RUN_SIM_NODE_LIKE_HUMBLE = f"""
import importlib.abc
import runpy
import sys


class HideEventsExecutor(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "rclpy.experimental":
            print({HIDDEN!r}, flush=True)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, HideEventsExecutor())
runpy.run_module("ddpg_controller.sim_node", run_name="__main__", alter_sys=True)
"""


def test_sim_node_serves_lockstep_over_dds_with_the_single_threaded_executor(
    spawn, ros, tmp_path
) -> None:
    script = tmp_path / "sim_node_like_humble.py"
    script.write_text(RUN_SIM_NODE_LIKE_HUMBLE)
    process = spawn(
        str(script), "--ros-args", "-p", "task:=pendulum", "-p", "seed:=7", "-p", "mode:=lockstep"
    )
    client = SimClient(ros, "pendulum")
    env = RobotEnv("pendulum")
    try:
        first = client.wait_ready(process)
        assert HIDDEN in process.output()
        observation, _ = env.reset(seed=7)
        assert np.array_equal(client.task.observation(client.state(first)), observation)
        rng = np.random.default_rng(0)
        for step in range(20):
            action = rng.uniform(client.task.action_low, client.task.action_high)
            observation, *_ = env.step(action)
            _, state = client.step(action)
            assert np.array_equal(client.task.observation(state), observation), f"step {step}"
        _, episode, _ = client.reset()
        assert episode == 1
    finally:
        env.close()
    assert process.alive(), process.output()
    assert process.stop() == 0, process.output()
