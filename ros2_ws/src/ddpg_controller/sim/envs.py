"""Gymnasium envs over a simulated robot (``ddpg_controller.sim.engine``) and a task spec.

Registered ids (on import of ``ddpg_controller.sim``): one per built-in task,
``ddpg_controller/<CamelName>-v0`` (``ENV_IDS``: ``Pendulum-v0``, ``Reacher-v0``, ``ArmReach-v0``,
``PandaReach-v0``, ...). Any spec file runs as ``RobotEnv("my_robot.yaml")`` or
``gymnasium.make(<any id>, task="my_robot.yaml")``; extra kwargs
(``randomization=RandomizationConfig(...)``, ``engine="mujoco"``) go to :class:`RobotEnv`.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from ddpg_controller.tasks import RandomizationConfig, Task, builtin_task_names, load_task

from .engine import make_robot

__all__ = ["ENV_IDS", "RobotEnv", "register_envs", "untrained_returns"]

ENV_IDS: dict[str, str] = {
    name: "ddpg_controller/" + "".join(part.title() for part in name.split("_")) + "-v0"
    for name in builtin_task_names()
}


class RobotEnv(gymnasium.Env):
    """obs = task.observation, reward = task.reward, terminated = task.terminated; truncated after
    ``task.max_episode_steps`` steps; ``engine`` (``pybullet`` or ``mujoco``) simulates the robot.
    Actions are the policy's (``Box(action_low, action_high)``: joint units, or position offsets
    in delta mode); ``task.command`` turns them into the joint command the robot receives, which
    the robot clips to its limits (actuator saturation)."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium's)

    def __init__(
        self,
        task: str | Task = "pendulum",
        randomization: RandomizationConfig | None = None,
        render_mode: str | None = None,
        engine: str = "pybullet",
        render_size: tuple[int, int] = (160, 120),
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"RobotEnv renders 'rgb_array' only, not {render_mode!r}")
        self.render_mode = render_mode
        self.render_size = render_size  # width, height of render()'s frames
        self.task: Task = load_task(task) if isinstance(task, str) else task
        # gymnasium's RecordVideo plays frames at render_fps: one frame per control period.
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.task.control_period}
        self.robot = make_robot(self.task, randomization, engine)
        self.action_space = spaces.Box(
            low=self.task.action_low.astype(np.float32),
            high=self.task.action_high.astype(np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Box(
            low=-np.inf, high=np.inf, shape=(self.task.observation_dim,), dtype=np.float32
        )
        self._state = None
        self._previous_action = np.zeros(self.task.action_dim)
        self._noise_rng: np.random.Generator | None = None
        self._elapsed = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.robot.reset(seed)
        # One random stream for the world: the robot's; gymnasium's np_random is the same one.
        # Observation-term noise has its own, so it never shifts the world's draws.
        self._np_random = self.robot.rng
        if seed is not None or self._noise_rng is None:
            self._noise_rng = np.random.default_rng(seed)
        self._previous_action = np.zeros(self.task.action_dim)
        self._elapsed = 0
        return self.task.observation(self._state, self._previous_action, self._noise_rng), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() first")
        action = np.clip(
            np.asarray(action, np.float64), self.task.action_low, self.task.action_high
        )
        state = self._state
        next_state = self.robot.step(self.task.command(action, state))
        self._state = next_state
        self._elapsed += 1
        reward = self.task.reward(state, action, next_state, self._previous_action)
        self._previous_action = action
        terminated = self.task.terminated(next_state)
        truncated = self._elapsed >= self.task.max_episode_steps
        info = {"effort": self.robot.applied_effort.copy()}
        observation = self.task.observation(next_state, action, self._noise_rng)
        return observation, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The scene as an RGB array (``render_mode="rgb_array"``; None without a render mode),
        from PyBullet's offscreen CPU renderer."""
        if self.render_mode is None:
            return None
        return self.robot.render(*self.render_size)

    @property
    def state(self):
        return self._state

    def close(self) -> None:
        self.robot.close()
        super().close()


def untrained_returns(task: Task, episodes: int = 5, seed: int = 0) -> dict[str, float]:
    """Mean return of a zero action and of uniformly random actions over ``episodes`` episodes
    each (the same starts): what a solved threshold must be above to mean anything."""
    env = RobotEnv(task)
    rng = np.random.default_rng(seed)
    policies = {
        "zero": lambda: np.zeros(task.action_dim),
        "random": lambda: rng.uniform(task.action_low, task.action_high),
    }
    means = {}
    try:
        for name, policy in policies.items():
            total = 0.0
            for episode in range(episodes):
                env.reset(seed=seed + episode)
                done = False
                while not done:
                    _, reward, terminated, truncated, _ = env.step(policy())
                    total += reward
                    done = terminated or truncated
            means[name] = total / episodes
    finally:
        env.close()
    return means


def register_envs() -> None:
    """Register the ids of ``ENV_IDS`` with gymnasium (idempotent)."""
    for task_name, env_id in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="ddpg_controller.sim.envs:RobotEnv",
            kwargs={"task": task_name},
            max_episode_steps=load_task(task_name).max_episode_steps,
        )
