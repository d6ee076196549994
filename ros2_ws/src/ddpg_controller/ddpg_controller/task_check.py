"""``./run check-task F.yaml`` (``ddpg-train --check-task F.yaml``): check a spec, no training.

It loads the spec and its URDF as training would (every error is the loader's one line, and exit
1), then prints what they resolved to: each movable joint and its interface (driven, passive, or
held by PyBullet's default motor), the limits and where each came from, the observation layout,
the command mapping, the goal region, reward, termination and timing; then the returns of a zero
action and of uniformly random actions in the simulator, and every warning (joints the spec leaves
to PyBullet, inertia PyBullet will zero, a solved threshold an untrained policy already reaches).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ddpg_controller.tasks import Task, TaskSpecError, load_task
from ddpg_controller.tasks.terms import per_joint

BASELINE_EPISODES = 5


def threshold_warning(task: Task, returns: dict[str, float]) -> str | None:
    """A warning when an untrained policy (zero or random actions) reaches the solved threshold:
    ``solved: true`` would then mean nothing."""
    reached = {name: value for name, value in returns.items() if value >= task.solved_threshold}
    if not reached:
        return None
    text = ", ".join(f"{name} actions {value:.1f}" for name, value in reached.items())
    return (
        f"{task.source}: solved_threshold {task.solved_threshold:g} is reached without learning "
        f"({text}, mean of {BASELINE_EPISODES} episodes): raise it above what an untrained "
        "policy scores"
    )


def describe(task: Task) -> list[str]:
    """What the spec resolved to, one fact per line (no simulator needed)."""
    lines = [f"task {task.name!r} from {task.source}"]
    if task.urdf is not None:
        lines.append(f"robot: {task.urdf.source} ({'fixed' if task.fixed_base else 'floating'})")
    lines.append("joints (interface):")
    movable = task.urdf.movable_joints if task.urdf is not None else []
    types = {j.name: j.type for j in movable}
    for i, name in enumerate(task.joint_names):
        lines.append(f"  {name:24s} {types.get(name, '?'):10s} driven ({task.command_interface})")
        for key, field in (
            ("lower", task.position_lower),
            ("upper", task.position_upper),
            ("velocity", task.velocity_limit),
            ("effort", task.effort_limit),
        ):
            origin = task.limit_origins.get(key, ("?",) * task.action_dim)[i]
            lines.append(f"      {key:8s} {field[i]:>10.4g}  ({origin})")
    for name in task.passive_joint_names:
        lines.append(
            f"  {name:24s} {types.get(name, '?'):10s} passive (sensed, never commanded; free "
            "in the simulator)"
        )
    for joint in movable:
        if joint.name in task.held_joint_names:
            lines.append(f"  {joint.name:24s} {joint.type:10s} held (robot.held_joints)")
        elif joint.name not in task.sensed_joint_names:
            lines.append(
                f"  {joint.name:24s} {joint.type:10s} held (in no joint list of the spec: "
                "a warning below)"
            )
    lines.append(f"observation ({task.observation_dim} values):")
    names = iter(task.observation_names)
    for term in task.observation_terms:
        count = (
            task.action_dim
            if term.term == "previous_action"
            else (len(task.sensed_joint_names) if term.joints is None else len(term.joints))
            if per_joint(term)
            else len(term.axes)
        )
        block = [next(names) for _ in range(count)]
        noise = f", noise std {term.noise_std:g}" if term.noise_std else ""
        lines.append(f"  {term.term:20s} {count:2d}  {', '.join(block)}{noise}")
    lines.append(
        f"command: {task.controller_name}/commands (std_msgs/Float64MultiArray), "
        f"{task.action_dim} values in the order of robot.joints, {task.command_interface}"
    )
    mapping = "measured position + a" if task.action_mode == "delta" else "a"
    lines.append(
        f"  action a in {_fmt(task.action_low)}..{_fmt(task.action_high)} ({task.action_mode}) "
        f"-> command = {mapping}, clipped to {_fmt(task.command_low)}..{_fmt(task.command_high)}"
    )
    goal = task.goal
    if goal is None:
        lines.append("goal: none")
    elif goal.radius is not None:
        lines.append(
            f"goal: annulus radius {list(goal.radius)} at z {goal.z:g} in frame {goal.frame!r}"
            f", {_every(goal.resample_every_steps, task)}"
        )
    else:
        lines.append(
            f"goal: box low {_fmt(goal.low)} high {_fmt(goal.high)} in frame {goal.frame!r}, "
            f"{_every(goal.resample_every_steps, task)}; end effector {task.end_effector_link!r}"
        )
    sensed = task.sensed_joint_names
    terms = [
        f"{t.weight:g}·{t.term}" + ("" if t.joints is None else str([sensed[i] for i in t.joints]))
        for t in task.reward_terms
    ]
    lines.append("reward: " + " + ".join(terms))
    ends = [f"{task.max_episode_steps} steps"]
    if task.terminate_on_joint_limits:
        ends.append("a driven joint beyond its position limits")
    if task.workspace_low is not None:
        ends.append(f"end effector outside {_fmt(task.workspace_low)}..{_fmt(task.workspace_high)}")
    if task.max_upright_angle is not None:
        ends.append(f"{task.upright_link!r} tilted beyond {task.max_upright_angle:g} rad")
    lines.append("episode ends: " + "; ".join(ends))
    lines.append(
        f"timing: {task.control_period:g} s per step ({1.0 / task.control_period:g} Hz), "
        f"{task.sim_substeps} physics substeps, {task.max_episode_steps * task.control_period:g} "
        "s per episode"
    )
    return lines


def _fmt(values) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def _every(steps: int, task: Task) -> str:
    if not steps:
        return "sampled once per episode"
    return f"resampled every {steps * task.control_period:g} s"


@contextlib.contextmanager
def c_output_silenced() -> Iterator[None]:
    """File descriptors 1 and 2 to /dev/null: what C code prints, Python's print does not reach."""
    sys.stdout.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def check_task(spec: str | Path) -> int:
    """Print the resolved task, its untrained returns and warnings; 0 when it loads, 1 when not."""
    try:
        task = load_task(spec)
    except TaskSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(describe(task)))
    with c_output_silenced():  # PyBullet's own lines (its inertia warning, once per reset)
        from ddpg_controller.sim.envs import untrained_returns  # the simulator: training only

        returns = untrained_returns(task, BASELINE_EPISODES)
    print(
        f"solved_threshold: {task.solved_threshold:g}; untrained returns (mean of "
        f"{BASELINE_EPISODES} episodes): zero action {returns['zero']:.1f}, uniform random "
        f"{returns['random']:.1f}"
    )
    warnings = list(task.warnings)
    reached = threshold_warning(task, returns)
    if reached is not None:
        warnings.append(reached)
    print(f"warnings: {len(warnings)}")
    for warning in warnings:
        print(f"  warning: {warning}")
    return 0
