"""The deploy node's safety layer: pure Python and numpy, no ROS, unit-tested on its own.

Between a policy and a robot it guarantees that every command is finite and within per-joint
limits, and decides when the safe command replaces the policy:

- **limits**: the policy's action is clipped to ``[low, high]`` per joint (by default the action
  bounds the policy was trained with);
- **rate limit**: the command changes by at most ``max_delta`` per joint per control period; a
  state that arrives sooner than one control period after the last one (by its stamps) is allowed
  only that fraction of ``max_delta``, so a burst of states cannot speed up the slew rate.
  ``inf`` (or a value <= 0 in the configuration) switches it off for that joint;
- **stale input**: a state whose stamp is not newer than the last accepted one (a duplicate or an
  out-of-order message) is ignored: the controller never acts twice on one state;
- **bad input/output**: NaN or inf in any input (positions, velocities, signals, observation) or in
  the policy's output gives the safe command;
- **watchdog**: no accepted state within ``state_timeout`` seconds -> the safe command, once, until
  states return (the caller checks it on a steady clock);
- **emergency stop**: once latched, every command is the safe command until ``clear_e_stop()``.

The safe command is published as is (never rate-limited: stopping takes priority); the rate limiter
ramps the next policy command from it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _per_joint(name: str, values: Sequence[float] | None, count: int) -> np.ndarray | None:
    """``values`` as ``count`` float64s: one value for all joints or one per joint."""
    if values is None:
        return None
    array = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if array.size == 1:
        return np.full(count, float(array[0]))
    if array.size != count:
        raise ValueError(f"{name} has {array.size} values; expected 1 or {count} (one per joint)")
    return array


@dataclass(frozen=True)
class SafetyConfig:
    """Per-joint limits in joint units; build it with :meth:`build`, which validates."""

    low: np.ndarray
    high: np.ndarray
    max_delta: np.ndarray  # per control period; inf = no rate limit
    safe_command: np.ndarray
    control_period: float  # seconds
    state_timeout: float  # seconds

    @classmethod
    def build(
        cls,
        joint_count: int,
        policy_low: Sequence[float],
        policy_high: Sequence[float],
        control_period: float,
        command_interface: str,
        command_low: Sequence[float] | None = None,
        command_high: Sequence[float] | None = None,
        max_delta: Sequence[float] | None = None,
        safe_command: Sequence[float] | None = None,
        state_timeout: float = 0.0,
    ) -> SafetyConfig:
        """Limits default to the policy's bounds, the safe command to zeros (effort or velocity
        interfaces; a position interface needs an explicit one), ``state_timeout`` <= 0 to three
        control periods, ``max_delta`` None or <= 0 to no rate limit. ValueError says what is
        wrong."""
        if not control_period > 0.0 or not np.isfinite(control_period):
            raise ValueError(f"control period must be positive, got {control_period}")
        low = _per_joint("command_low", command_low, joint_count)
        high = _per_joint("command_high", command_high, joint_count)
        low = _per_joint("policy action_low", policy_low, joint_count) if low is None else low
        high = _per_joint("policy action_high", policy_high, joint_count) if high is None else high
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(
                f"command limits must be finite with high > low, got low={low.tolist()} "
                f"high={high.tolist()}"
            )
        delta = _per_joint("max_delta", max_delta, joint_count)
        if delta is None:
            delta = np.full(joint_count, np.inf)
        delta = np.where(np.isfinite(delta) & (delta > 0.0), delta, np.inf)
        safe = _per_joint("safe_command", safe_command, joint_count)
        if safe is None:
            if command_interface not in ("effort", "velocity"):
                raise ValueError(
                    f"a {command_interface!r} command interface has no default safe command: "
                    "set safe_command"
                )
            safe = np.zeros(joint_count)
        if not np.all(np.isfinite(safe)) or np.any(safe < low) or np.any(safe > high):
            raise ValueError(
                f"safe_command {safe.tolist()} must be finite and within the command limits "
                f"[{low.tolist()}, {high.tolist()}]"
            )
        timeout = float(state_timeout)
        if not timeout > 0.0 or not np.isfinite(timeout):
            timeout = 3.0 * control_period
        return cls(low, high, delta, safe, float(control_period), timeout)


class Verdict(enum.Enum):
    ACT = "act"  # run the policy on this state
    IGNORE = "ignore"  # duplicate or out-of-order stamp: do nothing
    SAFE = "safe"  # publish the safe command instead of acting


class SafetyLayer:
    """Stateful filter between states, the policy and the command publisher."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.e_stopped = False
        self.timed_out = False
        self.last_command = config.safe_command.copy()
        self._last_state_stamp_ns: int | None = None  # last accepted state
        self._last_command_stamp_ns: int | None = None  # state the last policy command answered
        self._last_state_time: float | None = None  # steady-clock seconds of the last state

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """On activation: the robot holds the safe command; the watchdog starts counting now.

        Stamp order restarts too, so a robot whose clock restarted can be resumed by a
        deactivate/activate cycle."""
        self.last_command = self.config.safe_command.copy()
        self._last_command_stamp_ns = None
        self._last_state_stamp_ns = None
        self._last_state_time = now
        self.timed_out = False

    # ---- states --------------------------------------------------------------------------------
    def check_state(self, stamp_ns: int, *inputs: np.ndarray, now: float) -> tuple[Verdict, str]:
        """Accept a state (stamp first, then contents); feeds the watchdog unless ignored."""
        last = self._last_state_stamp_ns
        if last is not None and stamp_ns <= last:
            kind = "duplicate" if stamp_ns == last else "out-of-order"
            return Verdict.IGNORE, f"{kind} state stamp {stamp_ns} (last {last}) ignored"
        self._last_state_stamp_ns = stamp_ns
        self._last_state_time = now
        self.timed_out = False
        if not all(np.all(np.isfinite(np.asarray(x, dtype=np.float64))) for x in inputs):
            return Verdict.SAFE, "non-finite value in the robot state: safe command"
        if self.e_stopped:
            return Verdict.SAFE, "emergency stop latched: safe command"
        return Verdict.ACT, ""

    def command(self, action: np.ndarray, stamp_ns: int) -> tuple[np.ndarray, str]:
        """The command to publish for the policy's ``action`` on the state stamped ``stamp_ns``;
        the second item says why the safe command was used ("" when it was not)."""
        config = self.config
        values = np.asarray(action, dtype=np.float64).reshape(-1)
        if values.shape != config.low.shape:
            return self.safe(), (
                f"policy output has {values.size} values, expected {config.low.size}: safe command"
            )
        if not np.all(np.isfinite(values)):
            return self.safe(), "non-finite policy output: safe command"
        if self.e_stopped:
            return self.safe(), "emergency stop latched: safe command"
        target = np.clip(values, config.low, config.high)
        fraction = 1.0
        if self._last_command_stamp_ns is not None:
            elapsed = (stamp_ns - self._last_command_stamp_ns) * 1e-9
            fraction = min(1.0, max(0.0, elapsed / config.control_period))
        step = config.max_delta * fraction  # inf * 0.0 would be nan: inf stays inf below
        step = np.where(np.isinf(config.max_delta), np.inf, step)
        command = np.clip(target, self.last_command - step, self.last_command + step)
        command = np.clip(command, config.low, config.high)
        self.last_command = command
        self._last_command_stamp_ns = stamp_ns
        return command.copy(), ""

    def safe(self) -> np.ndarray:
        """The safe command; the rate limiter ramps the next policy command from it."""
        self.last_command = self.config.safe_command.copy()
        self._last_command_stamp_ns = None
        return self.last_command.copy()

    # ---- watchdog and e-stop -------------------------------------------------------------------
    def watchdog_expired(self, now: float) -> bool:
        """True once when no state was accepted for ``state_timeout`` seconds (then the caller
        publishes :meth:`safe`); False again until states return and stop again."""
        if self.timed_out or self._last_state_time is None:
            return False
        if now - self._last_state_time > self.config.state_timeout:
            self.timed_out = True
            return True
        return False

    def seconds_since_state(self, now: float) -> float:
        return float("inf") if self._last_state_time is None else now - self._last_state_time

    def e_stop(self) -> None:
        self.e_stopped = True

    def clear_e_stop(self) -> bool:
        """Clear the latch; True if it was set."""
        was = self.e_stopped
        self.e_stopped = False
        return was
