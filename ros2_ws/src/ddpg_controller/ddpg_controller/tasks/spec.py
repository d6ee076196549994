"""A task is a URDF plus one YAML file: the validated spec and the task built from it.

The spec (see docs/own-robot.md and ``builtin/*.yaml``) names the robot and its
controlled joints, the command interface and action mode, the goal sampler, the observation,
reward and termination terms, the timing and the domain randomisation. :func:`load_task` reads
and checks it — unknown keys, wrong types, joints missing from the URDF, absent or zero limits,
a goal region beyond the arm's reach all fail with one line naming the file and the element —
and returns a :class:`Task`, which the simulator, the controller node and the deploy node share.

Imports numpy, PyYAML and the standard library only: a robot computer runs it without PyBullet.
"""

from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import yaml

from ..yaml_numbers import load_yaml
from .terms import (
    AXES,
    OBSERVATION_TERMS,
    REWARD_TERMS,
    ObservationTerm,
    RewardTerm,
    RobotState,
    observation_block,
    per_joint,
    reward_value,
    upright_angle,
)
from .urdf import MOVABLE_TYPES, RobotDescription, TaskSpecError, load_urdf, parse_urdf, resolve_uri

__all__ = [
    "BUILTIN_DIR",
    "INTERFACES",
    "RandomizationConfig",
    "Task",
    "TaskSpecError",
    "builtin_task_names",
    "load_task",
    "task_from_dict",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
INTERFACES = ("position", "velocity", "effort")
ACTION_MODES = ("absolute", "delta")
LIMIT_KEYS = ("lower", "upper", "velocity", "effort")
TOP_KEYS = (
    "name",
    "description",
    "robot",
    "command",
    "goal",
    "observation",
    "reward",
    "termination",
    "timing",
    "solved_threshold",
    "simulator",
    "randomization",
)
ROBOT_KEYS = (
    "urdf",
    "robot_description",
    "mjcf",
    "base",
    "joints",
    "passive_joints",
    "held_joints",
    "end_effector_link",
    "upright_link",
    "limits",
    "initial_state",
)
COMMAND_KEYS = ("interface", "controller", "action", "delta_scale", "action_bound", "gains")
_LIMIT_FIELDS = {
    "lower": "position_lower",
    "upper": "position_upper",
    "velocity": "velocity_limit",
    "effort": "effort_limit",
}


def builtin_task_names() -> tuple[str, ...]:
    """The spec files shipped with the package (``tasks/builtin/<name>.yaml``)."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


# ---- reading a mapping with errors that name the file and the key --------------------------------
class FieldTrace(Protocol):
    """What :mod:`.schema` records while it reads the built-in specs: every field each accessor
    of :class:`_Section` defines, so the JSON Schema is generated from the reader itself."""

    def field(self, path: str, key: str, schema: dict[str, Any], required: bool) -> None: ...

    def keys(self, path: str, keys: Sequence[str]) -> None: ...


class _Section:
    """Typed access to one mapping of the spec; :meth:`done` rejects keys nobody asked for.

    Each accessor is the definition of its field: its type, choices, bounds and whether it is
    required are what it checks, and (while ``trace`` is set) what it reports for the schema."""

    trace: ClassVar[FieldTrace | None] = None

    def __init__(self, data: Any, source: str, path: str) -> None:
        if data is None:
            data = {}
        self.source, self.path = source, path
        if not isinstance(data, Mapping):
            self.fail(f"must be a mapping, got {type(data).__name__}")
        self.data, self.seen = dict(data), set()

    def where(self, key: str = "") -> str:
        name = f"{self.path}.{key}" if self.path and key else (key or self.path or "top level")
        return f"{self.source}: {name}"

    def fail(self, message: str, key: str = "") -> None:
        raise TaskSpecError(f"{self.where(key)}: {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def _define(self, key: str, schema: dict[str, Any], required: bool) -> None:
        if _Section.trace is not None:
            _Section.trace.field(self.path, key, schema, required)

    def raw(
        self, key: str, default: Any = None, required: bool = False, schema: dict | None = None
    ) -> Any:
        """The value as written; ``schema`` describes what the caller then checks by hand."""
        self._define(key, schema or {}, required)
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.fail("is required", key)
            return default
        return self.data[key]

    def text(self, key: str, default: str | None = None, choices=None, required=False) -> Any:
        value = self.raw(key, default, required)
        self._define(
            key, {"type": "string", **({"enum": list(choices)} if choices else {})}, required
        )
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(f"must be a string, got {value!r}", key)
        if choices is not None and value not in choices:
            self.fail(f"must be one of {list(choices)}, got {value!r}", key)
        return value

    def number(
        self, key: str, default: float | None = None, minimum=None, positive=False, required=False
    ) -> Any:
        value = self.raw(key, default, required)
        bounds = {"exclusiveMinimum": 0} if positive else {}
        bounds |= {} if minimum is None else {"minimum": minimum}
        self._define(key, {"type": "number", **bounds}, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"must be a number, got {value!r}", key)
        value = float(value)
        if not math.isfinite(value):
            self.fail(f"must be finite, got {value!r}", key)
        if positive and value <= 0.0:
            self.fail(f"must be > 0, got {value!r}", key)
        if minimum is not None and value < minimum:
            self.fail(f"must be >= {minimum}, got {value!r}", key)
        return value

    def integer(self, key: str, default: int | None, minimum: int = 0) -> int:
        value = self.raw(key, default, required=default is None)
        self._define(key, {"type": "integer", "minimum": minimum}, default is None)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"must be an integer >= {minimum}, got {value!r}", key)
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        self._define(key, {"type": "boolean"}, False)
        if not isinstance(value, bool):
            self.fail(f"must be true or false, got {value!r}", key)
        return value

    def vector(self, key: str, count: int | None, default=None, required=False, finite=True) -> Any:
        """A list of numbers (finite unless told otherwise: limits may be .inf); with ``count``,
        one value (for all) or ``count`` values."""
        value = self.raw(key, default, required)
        self._define(key, _vector_schema(count), required)
        if value is None:
            return None
        items = value if isinstance(value, list | tuple) else [value]
        if not items or any(isinstance(v, bool) or not isinstance(v, int | float) for v in items):
            self.fail(f"must be a number or a list of numbers, got {value!r}", key)
        array = np.asarray(items, dtype=np.float64)
        if np.any(np.isnan(array)) or (finite and not np.all(np.isfinite(array))):
            self.fail(f"must be finite, got {value!r}", key)
        if count is not None:
            if array.size == 1:
                array = np.full(count, float(array[0]))
            elif array.size != count:
                self.fail(f"has {array.size} values; expected 1 or {count}", key)
        return array

    def section(self, key: str, known: Sequence[str], required: bool = False) -> _Section:
        """The mapping at ``key``, its keys checked against ``known`` before any is read, so a
        misspelt key is named as unknown rather than reported as a missing one."""
        path = f"{self.path}.{key}" if self.path else key
        section = _Section(self.raw(key, None, required), self.source, path)
        self._define(key, {"type": "object"}, required)
        section.only(*known)
        return section

    def only(self, *keys: str) -> None:
        """Reject unknown keys before reading any (a typo is named before what it left unset)."""
        if _Section.trace is not None:
            _Section.trace.keys(self.path, keys)
        unknown = sorted(set(self.data) - set(keys))
        if unknown:
            self.fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})", "")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            self.fail(f"unknown key {unknown[0]!r} (known: {known})", "")


class JointCount(int):
    """The number of driven (or sensed) joints, as the ``count`` of a per-joint
    :meth:`_Section.vector`: the schema then allows any list length (the spec's joints, which a
    schema cannot count)."""


def _vector_schema(count: int | None) -> dict[str, Any]:
    """One number, or a list of them: of one value or ``count`` values when ``count`` is fixed."""
    array: dict[str, Any] = {"type": "array", "items": {"type": "number"}, "minItems": 1}
    if count is None or isinstance(count, JointCount):
        return {"anyOf": [{"type": "number"}, array]}
    fixed = {**array, "minItems": count, "maxItems": count}
    return {"anyOf": [{"type": "number"}, {**array, "maxItems": 1}, fixed]}


# ---- domain randomisation ----------------------------------------------------------------------
def _range(value, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a finite (low, high) with low <= high, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class RandomizationConfig:
    """Domain randomisation, sampled by the simulator at every reset. Off by default.

    Ranges are ``(low, high)`` sampled uniformly and independently per link / joint; a range with
    ``low == high`` is a constant and draws nothing from the RNG, so the default config leaves the
    random stream (and hence every episode) identical to no randomisation.

    - ``mass_scale``: factor on each link's mass and inertia.
    - ``joint_damping``: viscous damping (N·m·s/rad) *added* to the task's nominal damping.
    - ``joint_friction``: Coulomb friction (N·m) *added* to the task's nominal friction (torque
      tasks: a zero-velocity motor with that force limit; velocity/position tasks: an opposing
      torque).
    - ``actuator_gain``: factor between the (clipped) command and what the actuator does
      (torque, or target velocity; position commands are not scaled).
    - ``observation_noise_std``: Gaussian noise added to the reported joint positions and
      velocities (the physics state is unaffected; signals are exact).
    - ``action_delay_steps``: the command given to ``step`` takes effect k steps later.
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

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _read_only(array: np.ndarray) -> np.ndarray:
    copy = np.array(array, dtype=np.float64)
    copy.setflags(write=False)
    return copy


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


# ---- the task ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoalSampler:
    """A goal uniform in a box, or in an annulus of the xy plane (area-uniform), in ``frame``."""

    frame: str
    low: np.ndarray | None  # box
    high: np.ndarray | None
    radius: tuple[float, float] | None  # annulus
    z: float
    resample_every_steps: int  # 0: once per episode

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.radius is not None:
            lo, hi = self.radius
            r = math.sqrt(rng.uniform(lo * lo, hi * hi))
            phi = rng.uniform(-math.pi, math.pi)
            return np.array([r * math.cos(phi), r * math.sin(phi), self.z])
        return rng.uniform(self.low, self.high)

    def corners(self) -> list[np.ndarray]:
        if self.radius is not None:
            return [np.array([self.radius[1], 0.0, self.z])]
        return [
            np.where([bool(i & 1), bool(i & 2), bool(i & 4)], self.high, self.low) for i in range(8)
        ]


@dataclass(frozen=True)
class Task:
    """A control task built from a spec: the interface (joints, command interface, limits,
    timing), the MDP (observation, reward, termination, action -> command) and the simulator's
    facts. Immutable; see :func:`load_task`."""

    name: str
    source: str  # the spec file (or "policy <file>" for a spec carried by a policy)
    spec: dict[str, Any]  # the spec as loaded, with the robot's limits filled in per joint
    joint_names: tuple[str, ...]
    command_interface: str
    controller_name: str
    action_mode: str  # absolute | delta
    delta_scale: np.ndarray
    action_bound: np.ndarray | None  # absolute velocity/effort: |action| <= it (None: the limit)
    # Joint limits (URDF, overridden by the spec): position lower/upper (-inf/inf if none),
    # velocity and effort (inf if none).
    position_lower: np.ndarray
    position_upper: np.ndarray
    velocity_limit: np.ndarray
    effort_limit: np.ndarray
    end_effector_link: str | None
    upright_link: str | None
    goal: GoalSampler | None
    observation_terms: tuple[ObservationTerm, ...]
    reward_terms: tuple[RewardTerm, ...]
    terminate_on_joint_limits: bool
    workspace_low: np.ndarray | None
    workspace_high: np.ndarray | None
    max_upright_angle: float | None
    control_period: float
    max_episode_steps: int
    solved_threshold: float
    # Simulator facts.
    urdf: RobotDescription | None
    fixed_base: bool
    sim_substeps: int
    joint_damping: np.ndarray
    joint_friction: np.ndarray
    # Reflected rotor inertia of each sensed joint's drive (kg·m², simulator.joint_armature):
    # MuJoCo's dof_armature; PyBullet has no such term.
    joint_armature: np.ndarray
    position_gain: float
    velocity_gain: float
    initial_position: np.ndarray
    initial_position_noise: np.ndarray
    initial_velocity_noise: np.ndarray
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    # Joints sensed but not driven (robot.passive_joints): in joint_states and the joint terms
    # after the driven joints, free in the simulator, never commanded. Initial state, damping and
    # friction are per sensed joint (driven, then passive).
    passive_joint_names: tuple[str, ...] = ()
    # Movable joints held still at their reference position in both simulators (robot.held_joints:
    # a gripper's fingers on a reaching arm); neither sensed nor commanded.
    held_joint_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # what loading noticed but accepted (one line each)
    # Where each limit came from, per LIMIT_KEYS key and driven joint ("URDF <limit>", ...).
    limit_origins: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mjcf: Path | None = None  # the user's MuJoCo model of the robot (robot.mjcf), if any

    # ---- interface (computed once: the control loop reads them every state) --------------------
    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    @property
    def sensed_joint_names(self) -> tuple[str, ...]:
        """What ``joint_states`` must carry: the driven joints, then the passive ones."""
        return self.joint_names + self.passive_joint_names

    @cached_property
    def command_low(self) -> np.ndarray:
        """What the robot accepts: position limits, or ± the velocity/effort limit."""
        if self.command_interface == "position":
            return _read_only(self.position_lower)
        return _read_only(-self._interface_limit())

    @cached_property
    def command_high(self) -> np.ndarray:
        if self.command_interface == "position":
            return _read_only(self.position_upper)
        return _read_only(self._interface_limit())

    @cached_property
    def action_high(self) -> np.ndarray:
        """The policy's action bounds: ``±delta_scale`` in delta mode, ``±action_bound`` when the
        spec sets one, else the command bounds."""
        if self.action_mode == "delta":
            return _read_only(self.delta_scale)
        return _read_only(self.action_bound if self.action_bound is not None else self.command_high)

    @cached_property
    def action_low(self) -> np.ndarray:
        if self.action_mode == "delta" or self.action_bound is not None:
            return _read_only(-self.action_high)
        return self.command_low

    def _interface_limit(self) -> np.ndarray:
        limit = self.velocity_limit if self.command_interface == "velocity" else self.effort_limit
        return limit.copy()

    @cached_property
    def signal_names(self) -> tuple[str, ...]:
        """The PointStamped topics the task reads besides ``joint_states``."""
        names = ("goal", "end_effector") if self.goal is not None else ()
        return names + (("upright_axis",) if self.upright_link is not None else ())

    @cached_property
    def observation_names(self) -> tuple[str, ...]:
        """``joint_position[panda_joint1]``, ..., ``ee_minus_goal.x``, ...: the layout a deploy
        node checks against the policy's."""
        names: list[str] = []
        sensed = self.sensed_joint_names
        for term in self.observation_terms:
            if term.term == "previous_action":
                names += [f"{term.term}[{joint}]" for joint in self.joint_names]
            elif per_joint(term):
                selected = range(len(sensed)) if term.joints is None else term.joints
                names += [f"{term.term}[{sensed[i]}]" for i in selected]
            else:
                names += [f"{term.term}.{'xyz'[i]}" for i in term.axes]
        return tuple(names)

    @cached_property
    def observes_velocity(self) -> bool:
        """Whether the policy sees joint velocities: a robot without a velocity interface (NaN
        velocities in ``joint_states``) can run it only where it does not."""
        return any(term.term == "joint_velocity" for term in self.observation_terms)

    @property
    def observation_dim(self) -> int:
        return len(self.observation_names)

    # ---- MDP -----------------------------------------------------------------------------------
    def observation(
        self,
        state: RobotState,
        previous_action: np.ndarray | None = None,
        noise_rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """The observation vector (float32); noise of the terms only when ``noise_rng`` is
        given (training in simulation)."""
        previous = np.zeros(self.action_dim) if previous_action is None else previous_action
        blocks = []
        for term in self.observation_terms:
            block = observation_block(term, state, previous)
            if noise_rng is not None and term.noise_std > 0.0:
                block = block + noise_rng.normal(0.0, term.noise_std, size=block.shape)
            blocks.append(block)
        return np.concatenate(blocks).astype(np.float32)

    def reward(
        self,
        state: RobotState,
        action: np.ndarray,
        next_state: RobotState,
        previous_action: np.ndarray | None = None,
    ) -> float:
        """Σ weight · term for the step ``state --action--> next_state``."""
        a = np.clip(np.asarray(action, dtype=np.float64), self.action_low, self.action_high)
        previous = np.zeros(self.action_dim) if previous_action is None else previous_action
        bound = np.maximum(np.abs(self.action_low), np.abs(self.action_high))
        total = 0.0
        for term in self.reward_terms:
            total += term.weight * reward_value(term, state, a, next_state, previous, bound)
        return total

    def terminated(self, state: RobotState) -> bool:
        """A joint beyond its limits, the end effector out of the workspace, or the upright link
        tilted beyond its bound (each only when the spec asks for it)."""
        if self.terminate_on_joint_limits:
            q = np.asarray(state.position)
            if np.any(q < self.position_lower) or np.any(q > self.position_upper):
                return True
        if self.workspace_low is not None:
            ee = np.asarray(state.signals["end_effector"])
            if np.any(ee < self.workspace_low) or np.any(ee > self.workspace_high):
                return True
        if self.max_upright_angle is not None:
            return upright_angle(state.signals["upright_axis"]) > self.max_upright_angle
        return False

    def command(self, action: np.ndarray, state: RobotState) -> np.ndarray:
        """The joint command for the policy's ``action``: the action itself (absolute), or the
        measured position plus the action (delta), within the command bounds."""
        a = np.clip(np.asarray(action, dtype=np.float64), self.action_low, self.action_high)
        if self.action_mode == "delta":
            a = np.asarray(state.position, dtype=np.float64) + a
        return np.clip(a, self.command_low, self.command_high)

    def action_of_command(self, command: np.ndarray, state: RobotState) -> np.ndarray:
        """The action a published command stands for (an observer's view: delta mode gives the
        offset from the measured position)."""
        command = np.asarray(command, dtype=np.float64)
        if self.action_mode == "delta":
            return command - np.asarray(state.position, dtype=np.float64)
        return command

    def hold_command(self, state: RobotState) -> np.ndarray | None:
        """The safe command: zero effort or velocity, or for position control the measured
        position (a zero position command would drive the arm to its zero pose); None when the
        measured position is not finite (the robot then keeps its last command)."""
        if self.command_interface != "position":
            return np.zeros(self.action_dim)
        q = np.asarray(state.position, dtype=np.float64)
        if not np.all(np.isfinite(q)):
            return None
        return np.clip(q, self.command_low, self.command_high)

    # ---- the contract an exported policy carries -------------------------------------------------
    def policy_metadata(self) -> dict[str, Any]:
        """What a policy trained on this task stores, for a deploy node to check its robot."""
        return {
            "task": self.name,
            "task_spec": self.spec,
            "observation_names": list(self.observation_names),
            "joint_names": list(self.joint_names),
            "passive_joint_names": list(self.passive_joint_names),
            "signal_names": list(self.signal_names),
            "command_interface": self.command_interface,
            "action_mode": self.action_mode,
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "control_rate_hz": 1.0 / self.control_period,
        }

    def policy_mismatches(self, meta: Mapping[str, Any]) -> list[str]:
        """Everything in a policy's metadata that differs from this task (empty: it fits)."""
        problems = []
        trained, expected = list(meta.get("joint_names", [])), list(self.joint_names)
        if trained != expected:
            if sorted(trained) == sorted(expected):
                problems.append(f"joint order differs: policy {trained}, task {expected}")
            else:
                missing = [j for j in trained if j not in expected]
                extra = [j for j in expected if j not in trained]
                problems.append(
                    f"joint names differ: policy {trained}, task {expected} (policy-only "
                    f"{missing}, task-only {extra})"
                )
        checks = [
            ("task", meta.get("task"), self.name),
            (
                "passive_joint_names",
                list(meta.get("passive_joint_names", [])),
                list(self.passive_joint_names),
            ),
            ("command_interface", meta.get("command_interface"), self.command_interface),
            ("action_mode", meta.get("action_mode", "absolute"), self.action_mode),
            ("signal_names (topics)", list(meta.get("signal_names", [])), list(self.signal_names)),
            (
                "observation_names",
                list(meta.get("observation_names", [])),
                list(self.observation_names),
            ),
            ("action count vs controller joints", meta.get("action_dim"), self.action_dim),
            ("obs_dim", meta.get("obs_dim"), self.observation_dim),
        ]
        for what, policy_value, task_value in checks:
            if policy_value != task_value:
                problems.append(f"{what}: policy {policy_value!r}, task {task_value!r}")
        rate = meta.get("control_rate_hz")
        if rate is None or not math.isclose(float(rate), 1.0 / self.control_period, rel_tol=1e-6):
            problems.append(f"control_rate_hz: policy {rate}, task {1.0 / self.control_period:g}")
        for key, mine in (("action_low", self.action_low), ("action_high", self.action_high)):
            values = meta.get(key)
            if values is None or len(values) != self.action_dim:
                problems.append(f"{key}: policy {values}, expected {self.action_dim} values")
            elif not np.allclose(values, mine, rtol=1e-9, atol=0.0):
                problems.append(f"{key}: policy {list(values)}, task {mine.tolist()}")
        carried = meta.get("task_spec", {}).get("robot", {}).get("limits")
        if carried is not None:
            for key in LIMIT_KEYS:
                mine = getattr(self, _LIMIT_FIELDS[key])
                theirs = np.asarray(carried.get(key, []), dtype=np.float64)
                if theirs.shape != mine.shape or not np.array_equal(theirs, mine):
                    problems.append(f"{key} limits: policy {theirs.tolist()}, task {mine.tolist()}")
        return problems

    # ---- simulator-side distributions ----------------------------------------------------------
    def sample_initial_joints(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Home ± uniform noise of every sensed joint (driven, then passive); the velocity draw
        comes with the position draw (one call) when any velocity noise is set, so that a
        one-joint task draws (θ, θ̇) as Pendulum-v1 does."""
        n = len(self.sensed_joint_names)
        if np.any(self.initial_velocity_noise > 0.0):
            high = np.concatenate([self.initial_position_noise, self.initial_velocity_noise])
            draw = rng.uniform(low=-high, high=high)
            return self.initial_position + draw[:n], draw[n:]
        noise = rng.uniform(-self.initial_position_noise, self.initial_position_noise)
        return self.initial_position + noise, np.zeros(n)

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray | None:
        return None if self.goal is None else self.goal.sample(rng)

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, source={self.source!r})"


# ---- loading -------------------------------------------------------------------------------------
def load_task(name_or_file: str | Path) -> Task:
    """A built-in task by name (``builtin_task_names()``) or a spec file; TaskSpecError (a
    ValueError) with one line naming the file and the element when anything is wrong."""
    text = str(name_or_file)
    if text in builtin_task_names():
        path = BUILTIN_DIR / f"{text}.yaml"
    else:
        path = Path(text)
        if path.suffix not in (".yaml", ".yml"):
            raise TaskSpecError(
                f"unknown task {text!r}; known tasks: {', '.join(builtin_task_names())} "
                "(or a .yaml spec file)"
            )
        if not path.is_file():
            raise TaskSpecError(f"{path}: task spec file not found")
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise TaskSpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return task_from_dict(data, str(path), spec_dir=path.parent, default_name=path.stem)


def task_from_dict(
    data: Any, source: str, spec_dir: Path | None = None, default_name: str = "task"
) -> Task:
    """Build and check a task from a spec mapping; ``source`` names it in errors. A spec whose
    robot has no URDF (one carried by an exported policy) must give every limit itself."""
    top = _Section(data, source, "")
    top.only(*TOP_KEYS)
    name = top.text("name", default_name)
    top.text("description", "")
    robot = top.section("robot", ROBOT_KEYS, required=True)
    urdf = _robot_description(robot, spec_dir)
    base = robot.text("base", "fixed", choices=("fixed", "floating"))
    names = {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True}
    joints = robot.raw("joints", required=True, schema=names)
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        robot.fail(f"must be a non-empty list of joint names, got {joints!r}", "joints")
    if len(set(joints)) != len(joints):
        robot.fail(f"lists a joint twice: {joints}", "joints")
    n = JointCount(len(joints))
    passive = _joint_names(robot, urdf, "passive_joints", {"robot.joints": joints})
    sensed = [*joints, *passive]
    taken = {"robot.joints": joints, "robot.passive_joints": passive}
    held = _joint_names(robot, urdf, "held_joints", taken)
    n_sensed = JointCount(len(sensed))
    mjcf = _mjcf(robot, spec_dir, sensed)
    command = top.section("command", COMMAND_KEYS, required=True)
    interface = command.text("interface", required=True, choices=INTERFACES)
    limit_origins: dict[str, tuple[str, ...]] = {}
    limits = _limits(robot, urdf, joints, interface, limit_origins)
    links = set(urdf.links) if urdf is not None else None
    ee_link = _link(robot, "end_effector_link", links)
    upright_link = _link(robot, "upright_link", links)
    initial = robot.section("initial_state", ("position", "position_noise", "velocity_noise"))
    home = initial.vector("position", n_sensed, default=[0.0])
    position_noise = initial.vector("position_noise", n_sensed, default=[0.0])
    velocity_noise = initial.vector("velocity_noise", n_sensed, default=[0.0])
    initial.done()
    robot.done()

    controller = command.text("controller", f"{interface}_controller")
    mode = command.text("action", "absolute", choices=ACTION_MODES)
    if mode == "delta" and interface != "position":
        command.fail("delta actions need the position interface", "action")
    scale = command.vector("delta_scale", n, default=None)
    bound = command.vector("action_bound", n, default=None)
    if bound is not None and (mode == "delta" or interface == "position" or np.any(bound <= 0)):
        command.fail("is for absolute velocity/effort actions and must be > 0", "action_bound")
    if mode == "delta" and (scale is None or np.any(scale <= 0.0)):
        command.fail("delta mode needs delta_scale > 0 (joint units per control period)", "")
    gains = command.section("gains", ("position", "velocity"))
    position_gain = gains.number("position", 0.3, positive=True)
    velocity_gain = gains.number("velocity", 1.0, positive=True)
    gains.done()
    command.done()

    timing = top.section("timing", ("control_period", "substeps", "episode_steps"), required=True)
    period = timing.number("control_period", positive=True, required=True)
    substeps = timing.integer("substeps", 10, minimum=1)
    steps = timing.integer("episode_steps", None, minimum=1)
    timing.done()

    goal = _goal(top, ee_link, urdf, period)
    observation = _terms(top, "observation", sensed, goal is not None, upright_link)
    reward = _terms(top, "reward", sensed, goal is not None, upright_link)
    termination = top.section("termination", ("joint_limits", "workspace", "upright_angle"))
    on_limits = termination.flag("joint_limits", False)
    workspace = termination.section("workspace", ("low", "high"))
    ws_low = workspace.vector("low", 3)
    ws_high = workspace.vector("high", 3)
    workspace.done()
    if (ws_low is None) != (ws_high is None):
        termination.fail("needs both low and high", "workspace")
    if ws_low is not None and ee_link is None:
        termination.fail("needs robot.end_effector_link", "workspace")
    max_angle = termination.number("upright_angle", None, positive=True)
    if max_angle is not None and upright_link is None:
        termination.fail("needs robot.upright_link", "upright_angle")
    termination.done()
    solved = top.number("solved_threshold", 0.0)

    simulator = top.section("simulator", ("joint_damping", "joint_friction", "joint_armature"))
    default_damping = [j.damping for j in _urdf_joints(urdf, sensed)] if urdf else [0.0]
    default_friction = [j.friction for j in _urdf_joints(urdf, sensed)] if urdf else [0.0]
    damping = simulator.vector("joint_damping", n_sensed, default=default_damping)
    friction = simulator.vector("joint_friction", n_sensed, default=default_friction)
    armature = simulator.vector("joint_armature", n_sensed, default=[0.0])
    if np.any(damping < 0.0) or np.any(friction < 0.0) or np.any(armature < 0.0):
        simulator.fail("joint_damping, joint_friction and joint_armature must be >= 0")
    simulator.done()
    randomization = _randomization(top)
    top.done()

    resolved = copy.deepcopy(dict(data))
    resolved["name"] = name
    resolved_robot = dict(resolved["robot"])
    for key in ("urdf", "robot_description", "mjcf"):
        resolved_robot.pop(key, None)
    resolved_robot["limits"] = {key: limits[key].tolist() for key in LIMIT_KEYS}
    resolved["robot"] = resolved_robot
    resolved["randomization"] = randomization.to_dict()
    return Task(
        name=name,
        source=source,
        spec=resolved,
        joint_names=tuple(joints),
        command_interface=interface,
        controller_name=controller,
        action_mode=mode,
        delta_scale=scale if scale is not None else np.zeros(n),
        action_bound=bound,
        position_lower=limits["lower"],
        position_upper=limits["upper"],
        velocity_limit=limits["velocity"],
        effort_limit=limits["effort"],
        end_effector_link=ee_link,
        upright_link=upright_link,
        goal=goal,
        observation_terms=observation,
        reward_terms=reward,
        terminate_on_joint_limits=on_limits,
        workspace_low=ws_low,
        workspace_high=ws_high,
        max_upright_angle=max_angle,
        control_period=period,
        max_episode_steps=steps,
        solved_threshold=solved,
        urdf=urdf,
        fixed_base=base == "fixed",
        sim_substeps=substeps,
        joint_damping=damping,
        joint_friction=friction,
        joint_armature=armature,
        position_gain=position_gain,
        velocity_gain=velocity_gain,
        initial_position=home,
        initial_position_noise=position_noise,
        initial_velocity_noise=velocity_noise,
        randomization=randomization,
        passive_joint_names=tuple(passive),
        held_joint_names=tuple(held),
        limit_origins=limit_origins,
        warnings=tuple(_load_warnings(urdf, [*sensed, *held], source)),
        mjcf=mjcf,
    )


def _robot_description(robot: _Section, spec_dir: Path | None) -> RobotDescription | None:
    uri = robot.text("urdf")
    text = robot.text("robot_description")
    if uri is not None and text is not None:
        robot.fail("give urdf or robot_description, not both")
    if uri is not None:
        return load_urdf(uri, spec_dir or Path.cwd(), robot.where("urdf"))
    if text is not None:
        return parse_urdf(text, robot.where("robot_description"), None)
    return None


def _mjcf(robot: _Section, spec_dir: Path | None, joints: list[str]) -> Path | None:
    """``robot.mjcf``: a MuJoCo model of the robot (e.g. from MuJoCo Menagerie) for the MuJoCo
    engine, resolved as ``robot.urdf`` is; every joint of the spec must be a joint of it."""
    uri = robot.text("mjcf")
    if uri is None:
        return None
    where = robot.where("mjcf")
    path = resolve_uri(uri, spec_dir or Path.cwd(), where)
    names = _mjcf_joint_names(path, where)
    missing = [j for j in joints if j not in names]
    if missing:
        robot.fail(f"joints {missing} are not in {path} (its joints: {sorted(names)})", "mjcf")
    return path


def _mjcf_joint_names(path: Path, where: str) -> set[str]:
    """The named joints of an MJCF file and the files it ``<include>``s (relative to it)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise TaskSpecError(f"{where}: cannot read the MuJoCo model {path}: {exc}") from None
    if root.tag != "mujoco":
        raise TaskSpecError(f"{where}: {path} is not MJCF (root <{root.tag}>, not <mujoco>)")
    names = {j.get("name") for j in root.iter("joint") if j.get("name")}
    for include in root.iter("include"):
        names |= _mjcf_joint_names(path.parent / include.get("file", ""), where)
    return names


def _urdf_joints(urdf: RobotDescription, joints: Sequence[str]) -> list:
    return [urdf.joints[j] for j in joints]


def _joint_names(
    robot: _Section, urdf: RobotDescription | None, key: str, taken: dict[str, list[str]]
) -> list:
    """``robot.passive_joints`` (movable URDF joints sensed but not driven) or
    ``robot.held_joints`` (movable URDF joints held still): names not already in ``taken``'s
    lists."""
    names = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    listed = robot.raw(key, [], schema=names)
    if not isinstance(listed, list) or not all(isinstance(j, str) for j in listed):
        robot.fail(f"must be a list of joint names, got {listed!r}", key)
    if len(set(listed)) != len(listed):
        robot.fail(f"lists a joint twice: {listed}", key)
    for other, joints in taken.items():
        both = [j for j in listed if j in joints]
        if both:
            robot.fail(f"{both} also in {other}: a joint is in one list only", key)
    for joint in listed if urdf is not None else ():
        info = urdf.joints.get(joint)
        if info is None or info.type not in MOVABLE_TYPES:
            movable = [j.name for j in urdf.movable_joints]
            what = "not in" if info is None else f"{info.type} in"
            robot.fail(
                f"joint {joint!r} is {what} {urdf.source}: robot.{key} must name its movable "
                f"joints {movable}",
                key,
            )
    return listed


def _load_warnings(urdf: RobotDescription | None, listed: list[str], source: str) -> list[str]:
    """What a user should know although the spec is valid: movable joints the spec does not name
    (held still, perhaps by mistake), and links whose inertia PyBullet will zero."""
    if urdf is None:
        return []
    warnings = [
        f"{source}: robot: joint {j.name!r} ({j.type}) of {urdf.source} is in none of "
        "robot.joints, robot.passive_joints, robot.held_joints: the simulators hold it still "
        "(PyBullet's default velocity motor, MuJoCo a joint lock); name it in "
        "robot.passive_joints to let it move freely, or in robot.held_joints to say so"
        for j in urdf.movable_joints
        if j.name not in listed
    ]
    warnings += [
        f'{urdf.source}: <link name="{link}"> <inertia>: principal moments '
        f"{[round(m, 6) for m in moments]} violate the triangle inequality (or are negative): "
        'PyBullet sets this link\'s inertia to zero ("Bad inertia tensor properties")'
        for link, moments in urdf.bad_inertia.items()
    ]
    return warnings


def _limits(
    robot: _Section,
    urdf: RobotDescription | None,
    joints: list[str],
    interface: str,
    origin_of: dict[str, tuple[str, ...]],
) -> dict[str, np.ndarray]:
    """URDF ``<limit>`` per joint, overridden by ``robot.limits``; checked for the interface.
    ``origin_of`` receives where each value came from (per limit key, per joint)."""
    n = JointCount(len(joints))
    overrides = robot.section("limits", LIMIT_KEYS)
    given = {key: overrides.vector(key, n, finite=False) for key in LIMIT_KEYS}
    overrides.done()
    if urdf is not None:
        for joint in joints:
            if joint not in urdf.joints:
                movable = [j.name for j in urdf.joints.values() if j.type != "fixed"]
                robot.fail(f"joint {joint!r} is not in {urdf.source} (it has {movable})", "joints")
            if urdf.joints[joint].type in ("fixed", "floating", "planar"):
                robot.fail(
                    f"joint {joint!r} is {urdf.joints[joint].type} in {urdf.source}: "
                    "a controlled joint must be revolute, continuous or prismatic",
                    "joints",
                )
    defaults = {"lower": -math.inf, "upper": math.inf, "velocity": math.inf, "effort": math.inf}
    limits: dict[str, np.ndarray] = {}
    for key in LIMIT_KEYS:
        values = np.empty(n)
        origins = []
        for i, joint in enumerate(joints):
            info = urdf.joints[joint] if urdf is not None else None
            urdf_value = getattr(info, key) if info is not None else None
            if info is not None and info.type == "continuous" and key in ("lower", "upper"):
                urdf_value = None  # continuous joints have no position limits
            if given[key] is not None:
                values[i] = given[key][i]
                origins.append(f"spec robot.limits.{key}")
            elif urdf_value is not None:
                values[i] = urdf_value
                origins.append("URDF <limit>")
            elif urdf is None and key in ("velocity", "effort"):
                robot.fail(f"has no {key} limit for {joint!r} (no URDF: give every limit)", "")
            else:
                values[i] = defaults[key]
                continuous = info is not None and info.type == "continuous"
                origins.append("none (continuous joint)" if continuous else "none in the URDF")
        limits[key] = values
        origin_of[key] = tuple(origins)
    where = urdf.source if urdf is not None else robot.where("limits")
    for i, joint in enumerate(joints):
        for key in ("velocity", "effort"):
            if limits[key][i] <= 0.0:
                raise TaskSpecError(
                    f'{where}: <joint name="{joint}"> <limit {key}="{limits[key][i]:g}">: a zero '
                    f"{key} limit (set a real one in robot.limits.{key} of {robot.source})"
                )
        bounded = math.isfinite(limits["lower"][i]) and math.isfinite(limits["upper"][i])
        continuous = urdf is not None and urdf.joints[joint].type == "continuous"
        if not bounded and (
            interface == "position" or (interface == "velocity" and not continuous)
        ):
            raise TaskSpecError(
                f'{where}: <joint name="{joint}"> has no position <limit lower upper>: the '
                f"{interface} interface needs them (or robot.limits.lower/upper in "
                f"{robot.source})"
            )
        if interface in ("position", "velocity") and not math.isfinite(limits["velocity"][i]):
            raise TaskSpecError(
                f'{where}: <joint name="{joint}"> has no velocity <limit>: the {interface} '
                f"interface needs one (or robot.limits.velocity in {robot.source})"
            )
        if interface == "effort" and not math.isfinite(limits["effort"][i]):
            raise TaskSpecError(
                f'{where}: <joint name="{joint}"> has no effort <limit>: the effort interface '
                f"needs one (or robot.limits.effort in {robot.source})"
            )
        if bounded and limits["lower"][i] >= limits["upper"][i]:
            robot.fail(f"joint {joint!r}: lower limit must be below upper", "limits")
    return limits


def _link(robot: _Section, key: str, links: set[str] | None) -> str | None:
    link = robot.text(key)
    if link is not None and links is not None and link not in links:
        robot.fail(f"link {link!r} is not in the URDF (links: {sorted(links)})", key)
    return link


def _goal(
    top: _Section, ee_link: str | None, urdf: RobotDescription | None, period: float
) -> GoalSampler | None:
    if not top.has("goal"):
        return None
    goal = top.section("goal", ("frame", "resample_every_s", "box", "annulus"))
    if ee_link is None:
        goal.fail("a goal needs robot.end_effector_link")
    frame = goal.text("frame", "world")
    if urdf is not None and frame != "world" and frame not in urdf.links:
        goal.fail(f"frame {frame!r} is neither 'world' nor a link of the URDF", "frame")
    every = goal.number("resample_every_s", 0.0, minimum=0.0)
    box, annulus = goal.section("box", ("low", "high")), goal.section("annulus", ("radius", "z"))
    low, high = box.vector("low", 3), box.vector("high", 3)
    box.done()
    radius = annulus.vector("radius", 2)
    z = annulus.number("z", 0.0)
    annulus.done()
    goal.done()
    if (low is None) == (radius is None):
        goal.fail("give either box (low, high) or annulus (radius)")
    if low is not None and (high is None or np.any(low > high)):
        goal.fail("box needs low <= high", "box")
    if radius is not None and not 0.0 <= radius[0] <= radius[1]:
        goal.fail("annulus radius must be [inner, outer] with 0 <= inner <= outer", "annulus")
    sampler = GoalSampler(
        frame=frame,
        low=low,
        high=high,
        radius=None if radius is None else (float(radius[0]), float(radius[1])),
        z=z,
        resample_every_steps=round(every / period),
    )
    if urdf is not None and frame == "world":
        reach = urdf.reach(ee_link)
        for corner in sampler.corners():
            if float(np.linalg.norm(corner)) > reach:
                goal.fail(
                    f"goal region reaches {corner.tolist()}, {np.linalg.norm(corner):.3f} m from "
                    f"the base, beyond the arm's reach ({reach:.3f} m: the joint offsets from the "
                    f"base to {ee_link!r} in {urdf.source})"
                )
    return sampler


def _terms(
    top: _Section, key: str, sensed: list[str], has_goal: bool, upright: str | None
) -> tuple[Any, ...]:
    items = top.raw(key, required=True, schema={"type": "array", "minItems": 1})
    if not isinstance(items, list) or not items:
        top.fail("must be a non-empty list of terms", key)
    catalogue = OBSERVATION_TERMS if key == "observation" else REWARD_TERMS
    terms = []
    for index, item in enumerate(items):
        entry = _Section(
            {"term": item} if isinstance(item, str) else item, top.source, f"{key}[{index}]"
        )
        if key == "observation":
            entry.only("term", "axes", "noise_std", "joints")
        else:
            entry.only("term", "weight", "at", "axes", "wrap", "normalized", "std", "joints")
        name = entry.text("term", required=True, choices=tuple(catalogue))
        needs = catalogue[name][0]
        if ("goal" in needs or "end_effector" in needs) and not has_goal:
            entry.fail(f"{name!r} needs a goal section and robot.end_effector_link", "term")
        if "upright_axis" in needs and upright is None:
            entry.fail(f"{name!r} needs robot.upright_link", "term")
        axes = entry.raw(
            "axes", "xyz", schema={"type": "string", "pattern": f"^[{''.join(AXES)}]+$"}
        )
        if not isinstance(axes, str) or not axes or any(a not in AXES for a in axes):
            entry.fail(f"must be a string of x, y, z, got {axes!r}", "axes")
        axes_index = tuple(AXES[a] for a in axes)
        selected = _term_joints(entry, name, sensed)
        if key == "observation":
            noise = entry.number("noise_std", 0.0, minimum=0.0)
            entry.done()
            terms.append(ObservationTerm(name, axes_index, noise, selected))
            continue
        weight = entry.number("weight", required=True)
        term = RewardTerm(
            term=name,
            weight=weight,
            at=entry.text("at", "next", choices=("previous", "next")),
            axes=axes_index,
            wrap=entry.flag("wrap", False),
            normalized=entry.flag("normalized", True),
            std=entry.number("std", 0.1, positive=True),
            joints=selected,
        )
        entry.done()
        terms.append(term)
    return tuple(terms)


def _term_joints(entry: _Section, name: str, sensed: list[str]) -> tuple[int, ...] | None:
    """A joint term's ``joints``: names of sensed joints (driven or passive), as indices."""
    joints = entry.raw("joints", schema={"type": "array", "items": {"type": "string"}})
    if joints is None:
        return None
    if not name.startswith("joint_"):
        entry.fail(f"{name!r} has no joints to select (joint_* terms do)", "joints")
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        entry.fail(f"must be a non-empty list of joint names, got {joints!r}", "joints")
    unknown = [j for j in joints if j not in sensed]
    if unknown:
        entry.fail(f"{unknown} not among robot.joints and robot.passive_joints {sensed}", "joints")
    return tuple(sensed.index(j) for j in joints)


def _randomization(top: _Section) -> RandomizationConfig:
    section = top.section("randomization", [f.name for f in fields(RandomizationConfig)])
    values = {}
    for f in fields(RandomizationConfig):
        if f.name in ("observation_noise_std",):
            values[f.name] = section.number(f.name, f.default, minimum=0.0)
        elif f.name == "action_delay_steps":
            values[f.name] = section.integer(f.name, f.default)
        else:
            pair = section.vector(f.name, None, default=list(f.default))
            if pair.size != 2 or pair[0] > pair[1]:
                section.fail(f"must be [low, high] with low <= high, got {pair.tolist()}", f.name)
            values[f.name] = (float(pair[0]), float(pair[1]))
    section.done()
    try:
        return RandomizationConfig(**values)
    except ValueError as exc:
        raise TaskSpecError(f"{section.where()}: {exc}") from None
