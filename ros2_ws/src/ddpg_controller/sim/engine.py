"""The engine-blind face of a simulated robot: what the sim node and the gym envs call.

Two physics engines play the robot: PyBullet (:class:`~ddpg_controller.sim.robot.SimulatedRobot`,
the training simulator) and MuJoCo (:class:`~ddpg_controller.sim.mujoco_robot.MujocoRobot`, the
second engine that stands in for a real robot in the sim-to-sim transfer check). Both are built
from the same task spec and answer the same calls, so everything above them (task spec,
controller, deploy, fleet) never knows which one runs. Each engine is imported only when chosen:
a PyBullet-only install runs without MuJoCo and the other way round.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np

from ddpg_controller.tasks import RandomizationConfig, RobotState, Task

__all__ = [
    "ENGINES",
    "GRAVITY",
    "EngineRobot",
    "RobotBase",
    "checked_command",
    "make_robot",
    "sample_range",
]

ENGINES = ("pybullet", "mujoco")
GRAVITY = 9.81  # m/s², along −z in both engines


class EngineRobot(Protocol):
    """A task's robot in one physics engine. ``reset(seed)`` starts an episode (a seed reseeds
    the RNG, ``None`` continues it); ``step(command)`` applies a joint command (task joint order,
    the task's interface) for one control period; ``applied_effort`` is what the actuators did."""

    task: Task
    applied_effort: np.ndarray
    episode_steps: int

    @property
    def rng(self) -> np.random.Generator: ...

    @property
    def state(self) -> RobotState: ...

    def reset(self, seed: int | None = None) -> RobotState: ...

    def set_joint_state(self, position, velocity) -> RobotState: ...

    def step(self, command) -> RobotState: ...

    def close(self) -> None: ...


# ``typing.Self`` is Python 3.11+; Humble's Python is 3.10.
_Robot = TypeVar("_Robot", bound="RobotBase")


class RobotBase:
    """What both engines' robots do alike: the episode's RNG (a seed given to ``reset`` reseeds
    it, ``None`` continues it), measuring the state from the engine's joint readings and link
    frames, the last measured state, setting the joints' state, and ``with`` closing."""

    task: Task
    randomization: RandomizationConfig
    _goal: np.ndarray | None = None
    _rng: np.random.Generator | None = None
    _state: RobotState | None = None

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            raise RuntimeError("call reset() first")
        return self._rng

    @property
    def state(self) -> RobotState:
        if self._state is None:
            raise RuntimeError("call reset() first")
        return self._state

    def _measure(self, rng: np.random.Generator | None) -> RobotState:
        """The robot's state as its sensors give it: the sensed joints (driven, then passive) with
        the randomisation's observation noise, and the task's signals."""
        task = self.task
        pos, vel = self._joint_readings()
        std = self.randomization.observation_noise_std
        if std > 0.0 and rng is not None:
            pos = pos + rng.normal(0.0, std, size=pos.shape)
            vel = vel + rng.normal(0.0, std, size=vel.shape)
        signals: dict[str, np.ndarray] = {}
        for name in task.signal_names:
            if name == "goal":
                signals[name] = np.array(self._goal, dtype=np.float64)
            elif name == "end_effector":
                signals[name] = self._link_position(task.end_effector_link)
            else:  # upright_axis: the link's z axis in the world frame
                signals[name] = self._link_z_axis(task.upright_link)
        n = task.action_dim
        return RobotState(
            position=pos[:n],
            velocity=vel[:n],
            signals=signals,
            passive_position=pos[n:],
            passive_velocity=vel[n:],
        )

    def set_joint_state(self, position, velocity) -> RobotState:
        """Put the sensed joints (driven, then passive) in a given state (tests, scripted
        starts); the goal is unchanged."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        self._write_joints(position, velocity)
        self._state = self._measure(self._rng)
        return self._state

    def _write_joints(self, position, velocity) -> None:
        """Set the sensed joints' (driven, then passive) positions and velocities in the engine."""
        raise NotImplementedError

    def _joint_readings(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions and velocities of the sensed joints (driven, then passive), exact."""
        raise NotImplementedError

    def _link_position(self, link: str) -> np.ndarray:
        """A link frame's origin in the world frame."""
        raise NotImplementedError

    def _link_z_axis(self, link: str) -> np.ndarray:
        """A link frame's z axis in the world frame."""
        raise NotImplementedError

    def _reseed(self, seed: int | None) -> np.random.Generator:
        """The RNG of the episode ``reset(seed)`` starts."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        return self._rng

    def close(self) -> None:
        """Release the engine's resources (nothing by default)."""

    def __enter__(self: _Robot) -> _Robot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_robot(
    task: Task | str, randomization: RandomizationConfig | None = None, engine: str = "pybullet"
) -> EngineRobot:
    """The task's robot in ``engine`` (one of :data:`ENGINES`); ValueError naming the choices
    for any other."""
    if engine == "pybullet":
        from .robot import SimulatedRobot

        return SimulatedRobot(task, randomization)
    if engine == "mujoco":
        from .mujoco_robot import MujocoRobot

        return MujocoRobot(task, randomization)
    raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def sample_range(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    """``n`` uniform draws in ``bounds``; a constant range draws nothing from the RNG (so domain
    randomisation that is off leaves every episode as without it)."""
    lo, hi = bounds
    if lo == hi:
        return np.full(n, lo)
    return rng.uniform(lo, hi, size=n)


def checked_command(task: Task, command) -> np.ndarray:
    """``command`` as the robot takes it: one finite value per joint (ValueError otherwise),
    clipped to the task's command bounds (actuator saturation)."""
    a = np.asarray(command, dtype=np.float64).reshape(-1)
    if a.shape != (task.action_dim,):
        raise ValueError(f"command must have {task.action_dim} values, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"command must be finite, got {a}")
    return np.clip(a, task.command_low, task.command_high)
