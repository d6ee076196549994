"""The PyBullet world: one simulated robot per physics client.

Both the gymnasium env (``ddpg_controller.sim.envs.RobotEnv``) and the ROS 2 sim node
(``ddpg_controller.sim_node``) wrap :class:`SimulatedRobot`, so the same seed and the same actions
give the same states through either, by construction.

Every ``reset`` rebuilds the world (``resetSimulation`` + ``loadURDF``, ~16 ms for the iiwa), so an
episode depends only on the RNG state and the actions, never on solver warm-start left over from an
earlier episode.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet
import pybullet_data

from .tasks import RobotState, Task, make_task

__all__ = ["URDF_DIR", "RandomizationConfig", "SimulatedRobot", "urdf_path"]

URDF_DIR = Path(__file__).resolve().parent / "urdf"
GRAVITY = 9.81


def urdf_path(spec: str) -> Path:
    """``"name.urdf"`` -> sim/urdf/name.urdf; ``"pybullet_data:rel/path"`` -> pybullet_data file."""
    if spec.startswith("pybullet_data:"):
        return Path(pybullet_data.getDataPath()) / spec.split(":", 1)[1]
    return URDF_DIR / spec


def _range(value, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a finite (low, high) with low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomisation, sampled at every reset from the robot's RNG. Off by default.

    Ranges are ``(low, high)`` sampled uniformly and independently per link / joint; a range with
    ``low == high`` is a constant and draws nothing from the RNG, so the default config leaves the
    random stream (and hence every episode) identical to no randomisation.

    - ``mass_scale``: factor on each link's mass and inertia.
    - ``joint_damping``: viscous damping (N·m·s/rad) *added* to the task's nominal damping.
    - ``joint_friction``: Coulomb friction (N·m) *added* to the task's nominal friction (torque
      tasks: a zero-velocity motor with that force limit; velocity tasks: an opposing torque).
    - ``actuator_gain``: factor between the (clipped) command and what the actuator does
      (torque, or target velocity).
    - ``observation_noise_std``: Gaussian noise added to the reported joint positions and
      velocities (the physics state is unaffected; signals are exact).
    - ``action_delay_steps``: the action given to ``step`` takes effect k steps later (zeros
      before).
    """

    mass_scale: tuple[float, float] = (1.0, 1.0)
    joint_damping: tuple[float, float] = (0.0, 0.0)
    joint_friction: tuple[float, float] = (0.0, 0.0)
    actuator_gain: tuple[float, float] = (1.0, 1.0)
    observation_noise_std: float = 0.0
    action_delay_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("mass_scale", "joint_damping", "joint_friction", "actuator_gain"):
            object.__setattr__(self, name, _range(getattr(self, name), name))
        if self.mass_scale[0] <= 0.0:
            raise ValueError("mass_scale must be positive")
        if self.joint_damping[0] < 0.0 or self.joint_friction[0] < 0.0:
            raise ValueError("joint_damping and joint_friction must be >= 0")
        std = float(self.observation_noise_std)
        if not math.isfinite(std) or std < 0.0:
            raise ValueError("observation_noise_std must be finite and >= 0")
        object.__setattr__(self, "observation_noise_std", std)
        delay = int(self.action_delay_steps)
        if delay < 0 or delay != self.action_delay_steps:
            raise ValueError("action_delay_steps must be an integer >= 0")
        object.__setattr__(self, "action_delay_steps", delay)

    @property
    def enabled(self) -> bool:
        return self != RandomizationConfig()


def _sample(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    lo, hi = bounds
    if lo == hi:
        return np.full(n, lo)
    return rng.uniform(lo, hi, size=n)


class SimulatedRobot:
    """A task's robot in its own PyBullet physics client (DIRECT).

    ``reset(seed)`` starts an episode: a seed reseeds the RNG, ``None`` continues it (the first
    reset without a seed seeds from OS entropy), as gymnasium does. ``step(action)`` clips the
    action to the task bounds and applies it for one control period (``task.sim_substeps``
    physics steps).
    """

    def __init__(self, task: Task | str, randomization: RandomizationConfig | None = None) -> None:
        self.task: Task = make_task(task) if isinstance(task, str) else task
        if self.task.command_interface not in ("effort", "velocity"):
            raise ValueError(f"unsupported command interface {self.task.command_interface!r}")
        self.randomization = randomization if randomization is not None else RandomizationConfig()
        self._client: int | None = pybullet.connect(pybullet.DIRECT)
        if self._client < 0:
            raise RuntimeError("pybullet.connect(DIRECT) failed")
        self._rng: np.random.Generator | None = None
        self._body: int | None = None
        self._joints: list[int] = []
        self._ee_link: int | None = None
        self._goal: np.ndarray | None = None
        self._gain = np.ones(self.task.action_dim)
        self._friction = np.zeros(self.task.action_dim)
        self._delay: deque[np.ndarray] = deque()
        self._state: RobotState | None = None
        self.applied_effort = np.zeros(self.task.action_dim)
        self.episode_steps = 0

    # ---- public API ------------------------------------------------------------------------------
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

    @property
    def physics_client(self) -> int:
        if self._client is None:
            raise RuntimeError("robot is closed")
        return self._client

    def reset(self, seed: int | None = None) -> RobotState:
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        self._build_world()
        self._randomize(rng)
        q, qd = self.task.sample_initial_joints(rng)
        goal = self.task.sample_goal(rng)
        self._goal = None if goal is None else np.asarray(goal, dtype=np.float64).copy()
        cid, body = self.physics_client, self._body
        for j, qj, qdj in zip(self._joints, q, qd, strict=True):
            pybullet.resetJointState(body, j, float(qj), float(qdj), physicsClientId=cid)
        zero = np.zeros(self.task.action_dim)
        self._delay = deque(zero.copy() for _ in range(self.randomization.action_delay_steps))
        self.applied_effort = zero
        self.episode_steps = 0
        self._state = self._measure(rng)
        return self._state

    def set_joint_state(self, position, velocity) -> RobotState:
        """Put the joints in a given state (tests, scripted starts); the goal is unchanged."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        cid = self.physics_client
        for j, qj, qdj in zip(self._joints, position, velocity, strict=True):
            pybullet.resetJointState(self._body, j, float(qj), float(qdj), physicsClientId=cid)
        self._state = self._measure(self._rng)
        return self._state

    def step(self, action) -> RobotState:
        """Apply ``action`` (joint units, task joint order) for one control period."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.task.action_dim,):
            raise ValueError(f"action must have {self.task.action_dim} values, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, self.task.action_low, self.task.action_high)
        self._delay.append(a)
        command = self._gain * self._delay.popleft()
        cid, body, joints = self.physics_client, self._body, self._joints
        n = len(joints)
        velocity = self.task.command_interface == "velocity"
        if velocity:
            pybullet.setJointMotorControlArray(
                body,
                joints,
                pybullet.VELOCITY_CONTROL,
                targetVelocities=command.tolist(),
                forces=[self.task.velocity_force_limit] * n,
                physicsClientId=cid,
            )
        friction = np.any(self._friction > 0.0)
        for _ in range(self.task.sim_substeps):
            if not velocity:
                torques = command.tolist()
            elif friction:
                qd = np.array(
                    [s[1] for s in pybullet.getJointStates(body, joints, physicsClientId=cid)]
                )
                torques = (-self._friction * np.sign(qd)).tolist()
            else:
                torques = None
            if torques is not None:
                pybullet.setJointMotorControlArray(
                    body, joints, pybullet.TORQUE_CONTROL, forces=torques, physicsClientId=cid
                )
            pybullet.stepSimulation(physicsClientId=cid)
        if velocity:
            states = pybullet.getJointStates(body, joints, physicsClientId=cid)
            self.applied_effort = np.array([s[3] for s in states], dtype=np.float64)
        else:
            self.applied_effort = command.copy()
        self.episode_steps += 1
        self._state = self._measure(self._rng)
        return self._state

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(pybullet.error):
                pybullet.disconnect(physicsClientId=self._client)
            self._client = None

    def __enter__(self) -> SimulatedRobot:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ---- internals -------------------------------------------------------------------------------
    def _build_world(self) -> None:
        cid = self.physics_client
        task = self.task
        pybullet.resetSimulation(physicsClientId=cid)
        pybullet.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=cid)
        pybullet.setTimeStep(task.control_period / task.sim_substeps, physicsClientId=cid)
        path = urdf_path(task.urdf)
        # Inertia from the URDF: PyBullet otherwise recomputes it from the collision shapes.
        body = pybullet.loadURDF(
            str(path),
            useFixedBase=True,
            flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
            physicsClientId=cid,
        )
        if body < 0:
            raise RuntimeError(f"cannot load {path}")
        self._body = body
        by_joint: dict[str, int] = {}
        by_link: dict[str, int] = {}
        for j in range(pybullet.getNumJoints(body, physicsClientId=cid)):
            info = pybullet.getJointInfo(body, j, physicsClientId=cid)
            by_joint[info[1].decode()] = j
            by_link[info[12].decode()] = j
        missing = [name for name in task.joint_names if name not in by_joint]
        if missing:
            raise RuntimeError(f"{path} lacks joints {missing}")
        self._joints = [by_joint[name] for name in task.joint_names]
        self._ee_link = None
        if task.end_effector_link is not None:
            self._ee_link = by_link[task.end_effector_link]
        # PyBullet's default link damping (0.04) would dissipate energy: the tasks model none.
        for link in range(-1, pybullet.getNumJoints(body, physicsClientId=cid)):
            pybullet.changeDynamics(
                body, link, linearDamping=0.0, angularDamping=0.0, physicsClientId=cid
            )

    def _randomize(self, rng: np.random.Generator) -> None:
        cid, body, task, cfg = self.physics_client, self._body, self.task, self.randomization
        n = task.action_dim
        links = range(-1, pybullet.getNumJoints(body, physicsClientId=cid))
        scales = _sample(rng, cfg.mass_scale, len(links))
        if cfg.mass_scale != (1.0, 1.0):
            for link, s in zip(links, scales, strict=True):
                info = pybullet.getDynamicsInfo(body, link, physicsClientId=cid)
                mass, inertia = info[0], info[2]
                if mass > 0.0:
                    pybullet.changeDynamics(
                        body,
                        link,
                        mass=mass * s,
                        localInertiaDiagonal=[float(i * s) for i in inertia],
                        physicsClientId=cid,
                    )
        damping = task.joint_damping + _sample(rng, cfg.joint_damping, n)
        self._friction = task.joint_friction + _sample(rng, cfg.joint_friction, n)
        self._gain = _sample(rng, cfg.actuator_gain, n)
        for j, d in zip(self._joints, damping, strict=True):
            pybullet.changeDynamics(body, j, jointDamping=float(d), physicsClientId=cid)
        if task.command_interface == "effort":
            # Disable the default velocity motors (torque control); a zero-velocity motor with a
            # force limit equal to the friction models Coulomb friction.
            pybullet.setJointMotorControlArray(
                body,
                self._joints,
                pybullet.VELOCITY_CONTROL,
                targetVelocities=[0.0] * n,
                forces=self._friction.tolist(),
                physicsClientId=cid,
            )
        else:
            pybullet.setJointMotorControlArray(
                body,
                self._joints,
                pybullet.VELOCITY_CONTROL,
                targetVelocities=[0.0] * n,
                forces=[task.velocity_force_limit] * n,
                physicsClientId=cid,
            )

    def _measure(self, rng: np.random.Generator | None) -> RobotState:
        cid, body = self.physics_client, self._body
        states = pybullet.getJointStates(body, self._joints, physicsClientId=cid)
        pos = np.array([s[0] for s in states], dtype=np.float64)
        vel = np.array([s[1] for s in states], dtype=np.float64)
        std = self.randomization.observation_noise_std
        if std > 0.0 and rng is not None:
            pos = pos + rng.normal(0.0, std, size=pos.shape)
            vel = vel + rng.normal(0.0, std, size=vel.shape)
        signals: dict[str, np.ndarray] = {}
        for name in self.task.signal_names:
            if name == "goal":
                signals[name] = np.array(self._goal, dtype=np.float64)
            elif name == "end_effector":
                link = pybullet.getLinkState(
                    body, self._ee_link, computeForwardKinematics=True, physicsClientId=cid
                )
                signals[name] = np.array(link[4], dtype=np.float64)
            else:
                raise RuntimeError(f"unknown signal {name!r}")
        return RobotState(position=pos, velocity=vel, signals=signals)
