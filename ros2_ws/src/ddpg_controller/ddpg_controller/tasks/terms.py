"""Observation, reward and termination terms: what a task computes from a robot state.

A robot state holds only what a robot publishes: joint positions and velocities (``joint_states``:
the driven joints and the passive ones, sensed but not driven) and the task signals
(geometry_msgs/PointStamped topics): ``goal``, ``end_effector`` and, for the upright terms,
``upright_axis`` (the z axis of a link in the world frame, as an IMU gives it).
The controller node, the deploy node and the simulator's gymnasium env all call these functions,
so the three agree by construction. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "OBSERVATION_TERMS",
    "REWARD_TERMS",
    "ObservationTerm",
    "RewardTerm",
    "RobotState",
    "per_joint",
]

AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class RobotState:
    """What a robot publishes: joint positions/velocities in task joint order, and task signals."""

    position: np.ndarray  # float64, joint positions in the task's joint order
    velocity: np.ndarray  # float64
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> xyz float64
    # The passive joints (sensed, not driven), in the task's passive order; empty for most robots.
    passive_position: np.ndarray = field(default_factory=lambda: np.zeros(0))
    passive_velocity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def sensed_position(self) -> np.ndarray:
        """Driven then passive joint positions: what joint terms select from."""
        if len(self.passive_position) == 0:
            return np.asarray(self.position, dtype=np.float64)
        return np.concatenate([self.position, self.passive_position]).astype(np.float64)

    @property
    def sensed_velocity(self) -> np.ndarray:
        if len(self.passive_velocity) == 0:
            return np.asarray(self.velocity, dtype=np.float64)
        return np.concatenate([self.velocity, self.passive_velocity]).astype(np.float64)


@dataclass(frozen=True)
class ObservationTerm:
    """One block of the observation vector; ``axes`` selects components of a 3-D signal,
    ``joints`` the sensed joints (indices into driven + passive) of a joint term."""

    term: str
    axes: tuple[int, ...] = (0, 1, 2)
    noise_std: float = 0.0
    joints: tuple[int, ...] | None = None  # None: every sensed joint


@dataclass(frozen=True)
class RewardTerm:
    """``weight * value``; ``at`` says whether the value is taken on the state before the step
    (``previous``) or after it (``next``)."""

    term: str
    weight: float
    at: str = "next"  # previous | next
    axes: tuple[int, ...] = (0, 1, 2)
    wrap: bool = False  # joint_position_sq: angles wrapped to [-pi, pi) first
    normalized: bool = True  # action terms: divided by the action bound first
    std: float = 0.1  # ee_goal_distance_tanh: 1 - tanh(d / std)
    joints: tuple[int, ...] | None = None  # joint terms: sensed joints (None: all of them)


# name -> (signals it needs, description)
OBSERVATION_TERMS: dict[str, tuple[tuple[str, ...], str]] = {
    "joint_position": ((), "joint positions (rad or m)"),
    "joint_position_cos": ((), "cos of the joint positions"),
    "joint_position_sin": ((), "sin of the joint positions"),
    "joint_velocity": ((), "joint velocities"),
    "goal": (("goal",), "goal position (world frame)"),
    "end_effector": (("end_effector",), "end-effector position (world frame)"),
    "ee_minus_goal": (("goal", "end_effector"), "end effector minus goal (world frame)"),
    "upright_axis": (("upright_axis",), "z axis of the upright link in the world frame"),
    "previous_action": ((), "the action of the previous step (zeros at an episode start)"),
}
REWARD_TERMS: dict[str, tuple[tuple[str, ...], str]] = {
    "ee_goal_distance": (("goal", "end_effector"), "distance end effector - goal (m)"),
    "ee_goal_distance_tanh": (("goal", "end_effector"), "1 - tanh(distance / std)"),
    "action_sq": ((), "sum of squared actions (normalized by the bound unless told otherwise)"),
    "action_rate_sq": ((), "sum of squared changes of the action since the previous step"),
    "joint_velocity_sq": ((), "sum of squared joint velocities"),
    "joint_position_sq": ((), "sum of squared joint positions (wrap: angles from 0)"),
    "upright_angle": (("upright_axis",), "angle (rad) of the upright link's z axis from vertical"),
    "alive": ((), "1 per step (a bonus for not terminating)"),
}


def wrap_angle(x: np.ndarray) -> np.ndarray:
    return ((x + math.pi) % (2.0 * math.pi)) - math.pi


def upright_angle(axis: np.ndarray) -> float:
    """Angle between a unit vector and +z."""
    return math.acos(min(1.0, max(-1.0, float(axis[2]) / max(1e-12, float(np.linalg.norm(axis))))))


def per_joint(term: ObservationTerm) -> bool:
    """True for the terms with one value per joint; the others are 3-D signals (``axes``)."""
    return term.term.startswith("joint_") or term.term == "previous_action"


def _selected(values: np.ndarray, joints: tuple[int, ...] | None) -> np.ndarray:
    return values if joints is None else values[list(joints)]


def observation_block(
    term: ObservationTerm, state: RobotState, previous_action: np.ndarray
) -> np.ndarray:
    name = term.term
    if name == "joint_velocity":
        return _selected(state.sensed_velocity, term.joints)
    q = _selected(state.sensed_position, term.joints)
    if name == "joint_position":
        return q
    if name == "joint_position_cos":
        return np.cos(q)
    if name == "joint_position_sin":
        return np.sin(q)
    if name == "previous_action":
        return np.asarray(previous_action, dtype=np.float64)
    if name == "ee_minus_goal":
        value = np.asarray(state.signals["end_effector"], np.float64) - np.asarray(
            state.signals["goal"], np.float64
        )
    else:  # goal, end_effector, upright_axis: the signal of that name
        value = np.asarray(state.signals[name], dtype=np.float64)
    return value[list(term.axes)]


def reward_value(
    term: RewardTerm,
    state: RobotState,
    action: np.ndarray,
    next_state: RobotState,
    previous_action: np.ndarray,
    action_bound: np.ndarray,
) -> float:
    """The unweighted value of one reward term; actions are already clipped to their bounds."""
    s = state if term.at == "previous" else next_state
    name = term.term
    if name in ("ee_goal_distance", "ee_goal_distance_tanh"):
        offset = np.asarray(s.signals["end_effector"], np.float64) - np.asarray(
            s.signals["goal"], np.float64
        )
        distance = float(np.linalg.norm(offset[list(term.axes)]))
        return distance if name == "ee_goal_distance" else 1.0 - math.tanh(distance / term.std)
    if name in ("action_sq", "action_rate_sq"):
        a = action - previous_action if name == "action_rate_sq" else action
        if term.normalized:
            a = a / action_bound
        return float(np.dot(a, a))
    if name == "joint_velocity_sq":
        v = _selected(s.sensed_velocity, term.joints)
        return float(np.dot(v, v))
    if name == "joint_position_sq":
        q = _selected(s.sensed_position, term.joints)
        if term.wrap:
            q = wrap_angle(q)
        return float(np.dot(q, q))
    if name == "upright_angle":
        return upright_angle(s.signals["upright_axis"])
    if name == "alive":
        return 1.0
    raise ValueError(f"unknown reward term {name!r}")
