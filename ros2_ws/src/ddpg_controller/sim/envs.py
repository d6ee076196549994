"""Gymnasium envs over :class:`~ddpg_controller.sim.robot.SimulatedRobot` and a task.

Registered ids (on import of ``ddpg_controller.sim``): ``ddpg_controller/Pendulum-v0``,
``ddpg_controller/Reacher-v0`` and ``ddpg_controller/ArmReach-v0``; extra ``gymnasium.make`` kwargs
(``randomization=RandomizationConfig(...)``) go to :class:`RobotEnv`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from .robot import RandomizationConfig, SimulatedRobot
from .tasks import Task, make_task

__all__ = ["ENV_IDS", "RobotEnv", "register_envs"]

ENV_IDS: dict[str, str] = {
    "pendulum": "ddpg_controller/Pendulum-v0",
    "reacher": "ddpg_controller/Reacher-v0",
    "arm_reach": "ddpg_controller/ArmReach-v0",
}


class RobotEnv(gymnasium.Env):
    """obs = task.observation, reward = task.reward, terminated = task.terminated; truncated after
    ``task.max_episode_steps`` steps. Actions are in joint units, Box(action_low, action_high);
    out-of-range actions are clipped by the robot (actuator saturation)."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        task: str | Task = "pendulum",
        randomization: RandomizationConfig | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError("RobotEnv does not render")
        self.task: Task = make_task(task) if isinstance(task, str) else task
        self.robot = SimulatedRobot(self.task, randomization)
        self.action_space = spaces.Box(
            low=self.task.action_low.astype(np.float32),
            high=self.task.action_high.astype(np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Box(
            low=-np.inf, high=np.inf, shape=(self.task.observation_dim,), dtype=np.float32
        )
        self._state = None
        self._elapsed = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.robot.reset(seed)
        # One random stream: the robot's; gymnasium's np_random is the same generator.
        self._np_random = self.robot.rng
        self._elapsed = 0
        return self.task.observation(self._state), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() first")
        action = np.asarray(action, dtype=np.float64)
        state = self._state
        next_state = self.robot.step(action)
        self._state = next_state
        self._elapsed += 1
        reward = self.task.reward(state, action, next_state)
        terminated = self.task.terminated(next_state)
        truncated = self._elapsed >= self.task.max_episode_steps
        info = {"effort": self.robot.applied_effort.copy()}
        return self.task.observation(next_state), float(reward), terminated, truncated, info

    @property
    def state(self):
        return self._state

    def close(self) -> None:
        self.robot.close()
        super().close()


def register_envs() -> None:
    """Register the ids of ``ENV_IDS`` with gymnasium (idempotent)."""
    for task_name, env_id in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="ddpg_controller.sim.envs:RobotEnv",
            kwargs={"task": task_name},
            max_episode_steps=make_task(task_name).max_episode_steps,
        )
