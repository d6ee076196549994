"""Task definitions: each task is defined once, here, and used by both sides.

The gymnasium env (``ddpg_controller.sim.envs``) and the ROS controller node compute the
observation, reward and termination with the same :class:`Task` methods, from a
:class:`RobotState` that holds only what a real robot can publish: joint positions and velocities
(``joint_states``) and the task signals (``geometry_msgs/PointStamped`` topics named after
``Task.signal_names``).

This module imports neither PyBullet nor ROS nor torch. The simulator-only facts of a task (URDF,
substeps, initial-state and goal distributions, nominal joint damping) live here too, so that a task
is one object; the simulator (``ddpg_controller.sim.robot``) reads them.

Tasks (``TASK_NAMES``):

``pendulum``
    Gymnasium Pendulum-v1 in PyBullet: a uniform rod, m = 1 kg, l = 1 m, about a horizontal axis at
    one end, torque control |u| <= 2 N·m, 0.05 s per step, 200 steps. θ = 0 is upright,
    obs = [cos θ, sin θ, θ̇], reward = −(θ_norm² + 0.1 θ̇² + 0.001 u²) on the state *before* the step
    (as Pendulum-v1). Start θ ~ U[−π, π], θ̇ ~ U[−1, 1]. Differences from Pendulum-v1: g = 9.81 (not
    10), the velocity is not clipped to ±8 rad/s, and the dynamics are PyBullet's (10 substeps of
    5 ms) instead of one explicit Euler step. Solved: mean return >= −200 (SB3 zoo DDPG −152 ± 94).
``reacher``
    Planar two-link arm in a horizontal plane (no gravity effect), links 0.1 m and 0.11 m
    (0.1 kg each), joint damping 0.02 N·m·s, torque control |u| <= 0.1 N·m per joint, 0.05 s per
    step, 50 steps. The goal is uniform in the reachable annulus 0.05 m <= r <= 0.2 m; start
    q ~ U[−0.1, 0.1], q̇ = 0. obs (10) = [cos q1, cos q2, sin q1, sin q2, q̇1, q̇2, goal x, goal y,
    (ee − goal) x, (ee − goal) y]; reward = −‖ee − goal‖ (after the step, metres)
    − 0.01 Σ (u_i / u_max)². Solved: mean return >= −4 (measured over 20 seeded episodes: a
    scripted task-space PD controller, τ = Jᵀ(10 (goal − ee) − 1 ẋ), scores −2.5 ± 1.4; zero
    torque −12.4 ± 4.8; uniform random torque −12.0 ± 4.8).
``arm_reach``
    KUKA iiwa 7-DoF (``pybullet_data/kuka_iiwa/model.urdf``, fixed base), joint-velocity control
    |q̇_cmd| <= 1 rad/s (PyBullet VELOCITY_CONTROL, force limit 300 N·m = the URDF effort limit),
    0.05 s per step, 100 steps. Start q = home + U[−0.1, 0.1] per joint, home =
    [0, 0.4, 0, −1.2, 0, 0.9, 0]; goal uniform in the box x ∈ [0.3, 0.7], y ∈ [−0.4, 0.4],
    z ∈ [0.3, 0.8] m (all reachable). obs (20) = [q (7), q̇ (7), goal xyz (3), ee xyz (3)] (ee =
    origin of ``lbr_iiwa_link_7``); reward = −‖ee − goal‖ (after the step, metres)
    − 0.01 Σ (u_i / u_max)². Solved: mean return >= −8 (measured over 20 seeded episodes: a
    scripted damped-least-squares Jacobian controller, q̇ = Jᵀ(JJᵀ + 1e-3 I)⁻¹ 3 (goal − ee),
    scores −2.4 ± 1.3; zero velocity −31.3 ± 12.9; uniform random velocity −36.9 ± 12.5).

No task terminates early: ``terminated`` is always False; episodes end by truncation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "TASK_NAMES",
    "ArmReachTask",
    "PendulumTask",
    "ReacherTask",
    "RobotState",
    "Task",
    "make_task",
]


@dataclass(frozen=True)
class RobotState:
    """What a robot publishes: joint positions/velocities in task joint order, and task signals."""

    position: np.ndarray  # float64, joint positions in the task's joint order
    velocity: np.ndarray  # float64
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> xyz float64


def _angle_normalize(x: float) -> float:
    return ((x + math.pi) % (2.0 * math.pi)) - math.pi


class Task:
    """A control task: the interface (joints, command interface, bounds, timing) and the MDP."""

    name: str
    joint_names: tuple[str, ...]
    command_interface: str  # "effort" or "velocity"
    controller_name: str
    signal_names: tuple[str, ...]
    action_low: np.ndarray
    action_high: np.ndarray
    control_period: float
    max_episode_steps: int
    solved_threshold: float
    observation_names: tuple[str, ...]

    # Simulator-side facts (read by ddpg_controller.sim.robot).
    urdf: str  # file name in sim/urdf/, or "pybullet_data:<relative path>"
    sim_substeps: int  # physics steps per control period
    joint_damping: float = 0.0  # nominal viscous damping, N·m·s/rad, on every task joint
    joint_friction: float = 0.0  # nominal Coulomb friction, N·m, on every task joint
    velocity_force_limit: float = 0.0  # motor force limit for velocity control, N·m
    end_effector_link: str | None = None  # URDF link whose frame origin is "end_effector"

    # ---- MDP -----------------------------------------------------------------------------------
    def observation(self, state: RobotState) -> np.ndarray:
        raise NotImplementedError

    def reward(self, state: RobotState, action: np.ndarray, next_state: RobotState) -> float:
        raise NotImplementedError

    def terminated(self, state: RobotState) -> bool:
        return False

    @property
    def observation_dim(self) -> int:
        return len(self.observation_names)

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    # ---- simulator-side distributions ----------------------------------------------------------
    def sample_initial_joints(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray | None:
        return None

    def _action_cost(self, action: np.ndarray) -> float:
        a = np.asarray(action, dtype=np.float64) / self.action_high
        return float(np.dot(a, a))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class PendulumTask(Task):
    name = "pendulum"
    joint_names = ("pendulum_joint",)
    command_interface = "effort"
    controller_name = "effort_controller"
    signal_names = ()
    control_period = 0.05
    max_episode_steps = 200
    solved_threshold = -200.0
    observation_names = ("cos_theta", "sin_theta", "theta_dot")
    urdf = "pendulum.urdf"
    sim_substeps = 10
    max_torque = 2.0
    gravity = 9.81
    length = 1.0
    mass = 1.0

    def __init__(self) -> None:
        self.action_low = np.array([-self.max_torque])
        self.action_high = np.array([self.max_torque])

    def observation(self, state: RobotState) -> np.ndarray:
        th = float(state.position[0])
        return np.array([math.cos(th), math.sin(th), float(state.velocity[0])], dtype=np.float32)

    def reward(self, state: RobotState, action: np.ndarray, next_state: RobotState) -> float:
        th = _angle_normalize(float(state.position[0]))
        thdot = float(state.velocity[0])
        u = float(
            np.clip(np.asarray(action, dtype=np.float64)[0], -self.max_torque, self.max_torque)
        )
        return -(th * th + 0.1 * thdot * thdot + 0.001 * u * u)

    def sample_initial_joints(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        high = np.array([math.pi, 1.0])
        th, thdot = rng.uniform(low=-high, high=high)
        return np.array([th]), np.array([thdot])


class ReacherTask(Task):
    name = "reacher"
    joint_names = ("reacher_joint_1", "reacher_joint_2")
    command_interface = "effort"
    controller_name = "effort_controller"
    signal_names = ("goal", "end_effector")
    control_period = 0.05
    max_episode_steps = 50
    solved_threshold = -4.0
    observation_names = (
        "cos_q1",
        "cos_q2",
        "sin_q1",
        "sin_q2",
        "q1_dot",
        "q2_dot",
        "goal_x",
        "goal_y",
        "ee_minus_goal_x",
        "ee_minus_goal_y",
    )
    urdf = "reacher.urdf"
    sim_substeps = 10
    joint_damping = 0.02
    end_effector_link = "fingertip"
    max_torque = 0.1
    goal_radius = (0.05, 0.2)
    action_cost_weight = 0.01

    def __init__(self) -> None:
        self.action_low = np.full(2, -self.max_torque)
        self.action_high = np.full(2, self.max_torque)

    def observation(self, state: RobotState) -> np.ndarray:
        q = np.asarray(state.position, dtype=np.float64)
        goal = np.asarray(state.signals["goal"], dtype=np.float64)
        ee = np.asarray(state.signals["end_effector"], dtype=np.float64)
        return np.concatenate(
            [
                np.cos(q),
                np.sin(q),
                np.asarray(state.velocity, np.float64),
                goal[:2],
                (ee - goal)[:2],
            ]
        ).astype(np.float32)

    def reward(self, state: RobotState, action: np.ndarray, next_state: RobotState) -> float:
        ee = np.asarray(next_state.signals["end_effector"], dtype=np.float64)
        goal = np.asarray(next_state.signals["goal"], dtype=np.float64)
        dist = float(np.linalg.norm((ee - goal)[:2]))
        return -dist - self.action_cost_weight * self._action_cost(action)

    def sample_initial_joints(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return rng.uniform(-0.1, 0.1, size=2), np.zeros(2)

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.goal_radius
        r = math.sqrt(rng.uniform(lo * lo, hi * hi))  # uniform over the annulus' area
        phi = rng.uniform(-math.pi, math.pi)
        return np.array([r * math.cos(phi), r * math.sin(phi), 0.0])


class ArmReachTask(Task):
    name = "arm_reach"
    joint_names = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
    command_interface = "velocity"
    controller_name = "velocity_controller"
    signal_names = ("goal", "end_effector")
    control_period = 0.05
    max_episode_steps = 100
    solved_threshold = -8.0
    observation_names = (
        *(f"q{i}" for i in range(1, 8)),
        *(f"q{i}_dot" for i in range(1, 8)),
        "goal_x",
        "goal_y",
        "goal_z",
        "ee_x",
        "ee_y",
        "ee_z",
    )
    urdf = "pybullet_data:kuka_iiwa/model.urdf"
    sim_substeps = 12
    joint_damping = 0.5  # the URDF's <dynamics damping>
    velocity_force_limit = 300.0
    end_effector_link = "lbr_iiwa_link_7"
    max_velocity = 1.0
    home = (0.0, 0.4, 0.0, -1.2, 0.0, 0.9, 0.0)
    goal_low = (0.3, -0.4, 0.3)
    goal_high = (0.7, 0.4, 0.8)
    action_cost_weight = 0.01

    def __init__(self) -> None:
        self.action_low = np.full(7, -self.max_velocity)
        self.action_high = np.full(7, self.max_velocity)

    def observation(self, state: RobotState) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(state.position, np.float64),
                np.asarray(state.velocity, np.float64),
                np.asarray(state.signals["goal"], np.float64),
                np.asarray(state.signals["end_effector"], np.float64),
            ]
        ).astype(np.float32)

    def reward(self, state: RobotState, action: np.ndarray, next_state: RobotState) -> float:
        ee = np.asarray(next_state.signals["end_effector"], dtype=np.float64)
        goal = np.asarray(next_state.signals["goal"], dtype=np.float64)
        dist = float(np.linalg.norm(ee - goal))
        return -dist - self.action_cost_weight * self._action_cost(action)

    def sample_initial_joints(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(self.home) + rng.uniform(-0.1, 0.1, size=7)
        return q, np.zeros(7)

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(np.asarray(self.goal_low), np.asarray(self.goal_high))


_TASKS: dict[str, type[Task]] = {
    PendulumTask.name: PendulumTask,
    ReacherTask.name: ReacherTask,
    ArmReachTask.name: ArmReachTask,
}
TASK_NAMES: tuple[str, ...] = tuple(_TASKS)


def make_task(name: str) -> Task:
    """A fresh task object by name; ValueError listing the known names otherwise."""
    try:
        cls = _TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASK_NAMES)}") from None
    return cls()
