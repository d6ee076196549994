"""Builds one robot state from several topics: ``joint_states`` plus the task's signal topics.

A real robot publishes them separately. ``joint_states`` is the trigger; each signal is taken at
the same stamp (lockstep, where the simulator stamps them alike) or as its latest value (real time,
where a goal may be published once and an end-effector pose at its own rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ddpg_controller.tasks import RobotState


@dataclass
class _PendingJoints:
    stamp_ns: int
    position: np.ndarray
    velocity: np.ndarray


class StateAssembler:
    """Pairs joint states with signals; returns a complete ``(stamp_ns, RobotState)`` or None.

    Joint positions and velocities come in the task's sensed order (``Task.sensed_joint_names``):
    the first ``driven_joints`` are driven, the rest passive."""

    def __init__(
        self,
        signal_names: Sequence[str],
        exact_stamps: bool,
        driven_joints: int | None = None,
        keep: int = 64,
    ) -> None:
        self.signal_names = tuple(signal_names)
        self.driven_joints = driven_joints
        self.exact_stamps = exact_stamps
        self.keep = keep
        self._signals: dict[str, dict[int, np.ndarray]] = {name: {} for name in signal_names}
        self._pending: _PendingJoints | None = None

    def add_signal(
        self, name: str, stamp_ns: int, value: np.ndarray
    ) -> tuple[int, RobotState] | None:
        by_stamp = self._signals[name]
        by_stamp[stamp_ns] = np.asarray(value, dtype=np.float64)
        while len(by_stamp) > self.keep:
            del by_stamp[min(by_stamp)]
        return self._complete()

    def add_joints(
        self, stamp_ns: int, position: np.ndarray, velocity: np.ndarray
    ) -> tuple[int, RobotState] | None:
        self._pending = _PendingJoints(stamp_ns, position, velocity)
        return self._complete()

    def _signal_at(self, name: str, stamp_ns: int) -> np.ndarray | None:
        by_stamp = self._signals[name]
        if self.exact_stamps:
            return by_stamp.get(stamp_ns)
        return by_stamp[max(by_stamp)] if by_stamp else None

    def _complete(self) -> tuple[int, RobotState] | None:
        pending = self._pending
        if pending is None:
            return None
        signals = {name: self._signal_at(name, pending.stamp_ns) for name in self.signal_names}
        if any(value is None for value in signals.values()):
            return None
        self._pending = None
        n = self.driven_joints
        state = RobotState(
            position=pending.position[:n],
            velocity=pending.velocity[:n],
            signals=signals,
            passive_position=pending.position[n:] if n is not None else np.zeros(0),
            passive_velocity=pending.velocity[n:] if n is not None else np.zeros(0),
        )
        return pending.stamp_ns, state
