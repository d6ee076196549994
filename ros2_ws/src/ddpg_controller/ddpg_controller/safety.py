"""The safety layer between a policy and a robot: pure Python and numpy, no ROS, unit-tested.

The deploy node always runs it; the controller node runs it whenever it drives a robot in real
time (training included). It guarantees that every command is finite and within per-joint limits,
and decides when the safe command replaces the policy:

- **limits**: the command is clipped to ``[low, high]`` per joint (by default the task's command
  bounds: ± the URDF effort/velocity limit, or for position control the URDF position limits
  moved inwards by ``position_margin``);
- **rate limit**: the command changes by at most ``max_delta`` per joint per control period — for
  position commands a velocity bound (rad per period), for velocity commands an acceleration
  bound; a state that arrives sooner than one control period after the last one (by its stamps)
  is allowed only that fraction of ``max_delta``, so a burst of states cannot speed up the slew
  rate. ``inf`` (or a value <= 0 in the configuration) switches it off for that joint;
- **low-pass filter** (optional): ``command = α·target + (1 − α)·previous command`` (α = 1: off);
- **stale input**: a state whose stamp is not newer than the last accepted one (a duplicate or an
  out-of-order message) is ignored: the controller never acts twice on one state;
- **clock reset**: stamps that run ahead of the steady clock, or go back, by more than
  ``state_timeout`` (a robot whose clock restarted or was re-synchronised) are accepted, counted
  and logged; the rate limit then counts the steady-clock time since the last state;
- **bad input/output**: NaN or inf in any input (positions, signals, observation) or in the
  policy's output gives the safe command; NaN joint velocities (what ``joint_state_broadcaster``
  publishes for a joint without a velocity interface) are only a fault where the task observes
  velocity (the deploy node refuses to activate then);
- **position glitch** (position control): a measured position farther from the last plausible
  one than the velocity limit allows in the time between their stamps is a bad reading, not the
  robot: that state gets the hold and is not remembered;
- **over-speed trip**: a finite measured joint velocity beyond its limit (the URDF's, with a
  tolerance), or implausible positions for a whole control period (a runaway joint, also where
  the velocity is NaN), latches the safe command until ``clear_e_stop()``;
- **watchdog**: no accepted state within ``state_timeout`` seconds -> the safe command, once, until
  states return (the caller checks it on a steady clock);
- **emergency stop**: once latched, every command is the safe command until ``clear_e_stop()``.

The safe command is zeros for effort and velocity control (published at once: stopping takes
priority). For position control it is a hold that stays still: the last published command, or
before any command the last plausible measured position (a zero position command would drive the
arm to its zero pose; a measured position can be a glitch or a runaway joint). Every command the
policy gives after any safe command or e-stop clear ramps from the last published command at the
rate limit, so consecutive published position commands never differ by more than ``max_delta`` x
the time between the states they answer / control period; after ``start()`` (activation, a new
training episode: the robot may have been moved) the first one ramps from the measured position.

A robot that reaches each command at once (no speed cap of its own) moves at ``max_delta`` per
control period, the URDF velocity limit by default: it reads back within the trip's tolerance
while each state is answered before the next. When two commands land between two of its states
it moves at up to twice the limit: that state is held as a position glitch, and the next one,
plausible again against the time since the last plausible one, is acted on; only if it kept
moving faster than the limit for a whole control period would the trip latch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ddpg_controller.tasks import RobotState, Task


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
    safe_command: np.ndarray | None  # None: hold the measured position (position interface)
    control_period: float  # seconds
    state_timeout: float  # seconds
    velocity_limit: np.ndarray  # |measured velocity| above it trips; inf = no trip
    filter_alpha: float = 1.0  # EMA weight of the new command; 1 = no filter
    position_control: bool = False  # positions are checked for plausibility

    @classmethod
    def build(
        cls,
        joint_count: int,
        default_low: Sequence[float],
        default_high: Sequence[float],
        control_period: float,
        command_interface: str,
        command_low: Sequence[float] | None = None,
        command_high: Sequence[float] | None = None,
        max_delta: Sequence[float] | None = None,
        safe_command: Sequence[float] | None = None,
        state_timeout: float = 0.0,
        position_margin: float = 0.0,
        velocity_limit: Sequence[float] | None = None,
        filter_alpha: float = 1.0,
    ) -> SafetyConfig:
        """Limits default to ``default_low/high`` (the task's command bounds), moved inwards by
        ``position_margin`` for position control; the safe command to zeros (effort, velocity)
        or holding the measured position (position); ``state_timeout`` <= 0 to three control
        periods; ``max_delta`` None or <= 0 to no rate limit; ``velocity_limit`` None to no trip.
        ValueError says what is wrong."""
        if not control_period > 0.0 or not np.isfinite(control_period):
            raise ValueError(f"control period must be positive, got {control_period}")
        if command_interface not in ("effort", "velocity", "position"):
            raise ValueError(f"unknown command interface {command_interface!r}")
        low = _per_joint("command_low", command_low, joint_count)
        high = _per_joint("command_high", command_high, joint_count)
        low = _per_joint("default low", default_low, joint_count) if low is None else low
        high = _per_joint("default high", default_high, joint_count) if high is None else high
        margin = float(position_margin)
        if not np.isfinite(margin) or margin < 0.0:
            raise ValueError(f"position_margin must be finite and >= 0, got {position_margin}")
        if command_interface == "position":
            low, high = low + margin, high - margin
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
        if safe is not None and (
            not np.all(np.isfinite(safe)) or np.any(safe < low) or np.any(safe > high)
        ):
            raise ValueError(
                f"safe_command {safe.tolist()} must be finite and within the command limits "
                f"[{low.tolist()}, {high.tolist()}]"
            )
        if safe is None and command_interface != "position":
            safe = np.zeros(joint_count)
        speed = _per_joint("velocity_limit", velocity_limit, joint_count)
        speed = np.full(joint_count, np.inf) if speed is None else speed
        if np.any(np.isnan(speed)) or np.any(speed <= 0.0):
            raise ValueError(f"velocity_limit must be > 0, got {speed.tolist()}")
        alpha = float(filter_alpha)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"filter_alpha must be in (0, 1], got {filter_alpha}")
        timeout = float(state_timeout)
        if not timeout > 0.0 or not np.isfinite(timeout):
            timeout = 3.0 * control_period
        return cls(
            low,
            high,
            delta,
            safe,
            float(control_period),
            timeout,
            speed,
            alpha,
            command_interface == "position",
        )


DEFAULT_MAX_DELTA_FRACTION = 0.25  # effort/velocity: a quarter of the command range per period
DEFAULT_POSITION_MARGIN = 0.05  # rad (or m) inside the URDF position limits
# A measured velocity trips the safety layer beyond (1 + tolerance) x the URDF limit: a motor
# driven at its limit overshoots it by a fraction of a percent (0.2 % measured on the Panda in
# PyBullet) and real velocity estimates are noisy.
DEFAULT_VELOCITY_TOLERANCE = 0.1


def task_safety_config(
    task: Task,
    command_low: Sequence[float] | None = None,
    command_high: Sequence[float] | None = None,
    max_delta: Sequence[float] | None = None,
    safe_command: Sequence[float] | None = None,
    state_timeout: float = 0.0,
    position_margin: float = DEFAULT_POSITION_MARGIN,
    filter_alpha: float = 1.0,
    velocity_tolerance: float = DEFAULT_VELOCITY_TOLERANCE,
) -> SafetyConfig:
    """The safety configuration of a task; unset values default to the task's facts: limits to
    the policy's action bounds (effort, velocity) or the URDF position limits less the margin
    (position); ``max_delta`` to the URDF velocity limit times the control period (position) or a
    quarter of the command range; the over-speed trip to the URDF velocity limits times
    ``1 + velocity_tolerance``."""
    if not velocity_tolerance >= 0.0:
        raise ValueError(f"velocity_tolerance must be >= 0, got {velocity_tolerance}")
    position = task.command_interface == "position"
    default_low = task.command_low if position else task.action_low
    default_high = task.command_high if position else task.action_high
    if max_delta is None:
        if position:
            max_delta = (task.velocity_limit * task.control_period).tolist()
        else:
            span = np.asarray(command_high or default_high) - np.asarray(command_low or default_low)
            max_delta = (DEFAULT_MAX_DELTA_FRACTION * span).tolist()
    return SafetyConfig.build(
        task.action_dim,
        default_low,
        default_high,
        task.control_period,
        task.command_interface,
        command_low=command_low,
        command_high=command_high,
        max_delta=max_delta,
        safe_command=safe_command,
        state_timeout=state_timeout,
        position_margin=position_margin,
        velocity_limit=(task.velocity_limit * (1.0 + velocity_tolerance)).tolist(),
        filter_alpha=filter_alpha,
    )


class Verdict(enum.Enum):
    ACT = "act"  # run the policy on this state
    IGNORE = "ignore"  # duplicate or out-of-order stamp: do nothing
    SAFE = "safe"  # publish the safe command instead of acting


class SafetyLayer:
    """Stateful filter between states, the policy and the command publisher."""

    def __init__(self, config: SafetyConfig) -> None:
        self.config = config
        self.e_stopped = False
        self.trip: str | None = None  # why the over-speed trip latched, None when clear
        self.timed_out = False
        self.measured_position: np.ndarray | None = None  # the last plausible finite position
        self.last_command: np.ndarray | None = self._initial_command()  # the last published
        self.counts = {"clock_resets": 0, "position_glitches": 0}
        self.clock_reset = ""  # what the last clock reset was (logged by the caller)
        self._last_state_stamp_ns: int | None = None  # last accepted state
        self._last_state_time: float | None = None  # steady-clock seconds of the last state
        self._command_stamp_ns: int | None = None  # the rate limiter's time base (see command)
        self._position_stamp_ns: int | None = None  # stamp of measured_position
        self._glitch_since_ns: int | None = None  # first of the implausible positions in a row

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """On activation: the robot holds the safe command; the watchdog starts counting now.

        Stamp order restarts too, so a robot whose clock restarted can be resumed by a
        deactivate/activate cycle; the measured position and the last command are forgotten (the
        robot may have been moved meanwhile): the first command ramps from the first state after
        activation."""
        self.measured_position = None
        self.last_command = self._initial_command()
        self._command_stamp_ns = self._last_state_stamp_ns = None
        self._position_stamp_ns = self._glitch_since_ns = None
        self._last_state_time = now
        self.timed_out = False

    # ---- states --------------------------------------------------------------------------------
    def check_state(
        self,
        stamp_ns: int,
        *inputs: np.ndarray,
        now: float,
        position: np.ndarray | None = None,
        velocity: np.ndarray | None = None,
    ) -> tuple[Verdict, str]:
        """Accept a state (stamp first, then contents); feeds the watchdog unless ignored.

        ``position`` (the measured joint positions) is checked for plausibility (position
        control) and is what a hold starts from before any command; ``velocity`` is checked
        against the over-speed limit where it is finite (a joint without a velocity interface
        reports NaN: its speed is taken from successive positions). The reason is not empty for
        SAFE and IGNORE, and for an ACT after a clock reset (a line to log)."""
        notice = ""
        last = self._last_state_stamp_ns
        if last is not None:
            jump_ns = stamp_ns - last - round((now - self._last_state_time) * 1e9)
            timeout_ns = self.config.state_timeout * 1e9
            if jump_ns > timeout_ns or stamp_ns - last < -timeout_ns:
                notice = self._clock_reset(jump_ns, stamp_ns - last)
            elif stamp_ns <= last:
                kind = "duplicate" if stamp_ns == last else "out-of-order"
                return Verdict.IGNORE, f"{kind} state stamp {stamp_ns} (last {last}) ignored"
        self._last_state_stamp_ns = stamp_ns
        self._last_state_time = now
        self.timed_out = False
        for values in (position, *inputs):
            if values is not None and not np.isfinite(values).all():
                return Verdict.SAFE, "non-finite value in the robot state: safe command"
        if velocity is not None and np.isposinf(np.abs(velocity)).any():
            return Verdict.SAFE, "infinite joint velocity in the robot state: safe command"
        if position is not None:
            glitch = self._check_position(np.asarray(position, dtype=np.float64), stamp_ns)
            if glitch:
                return Verdict.SAFE, glitch
        if velocity is not None and self.trip is None:
            speed = np.abs(np.asarray(velocity, dtype=np.float64))
            over = np.isfinite(speed) & (speed > self.config.velocity_limit)
            if over.any():
                i = int(np.argmax(over))
                self.trip = (
                    f"joint {i} moves at {speed[i]:.3g}, beyond its velocity limit "
                    f"{self.config.velocity_limit[i]:.3g}: safe command latched until cleared"
                )
        if self.trip is not None:
            return Verdict.SAFE, self.trip
        if self.e_stopped:
            return Verdict.SAFE, "emergency stop latched: safe command"
        return Verdict.ACT, notice

    def _clock_reset(self, jump_ns: int, shift_ns: int) -> str:
        """The stamps jumped against the steady clock by ``jump_ns``, more than the watchdog
        timeout: a restarted or re-synchronised robot clock. The stamps kept move to the new
        clock: the position check's by the jump (it allows the movement of the steady-clock time
        since the last state), the rate limit's by the whole step to this state (``shift_ns``:
        this state earns no movement, the true time since the last one being unknown)."""
        self._command_stamp_ns = (
            None if self._command_stamp_ns is None else (self._command_stamp_ns + shift_ns)
        )
        for name in ("_position_stamp_ns", "_glitch_since_ns"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) + jump_ns)
        self.counts["clock_resets"] += 1
        self.clock_reset = (
            f"state stamps jumped {jump_ns * 1e-9:+.3f} s against the steady clock: clock reset "
            f"#{self.counts['clock_resets']}, control resumes on the new clock"
        )
        return self.clock_reset

    def _check_position(self, position: np.ndarray, stamp_ns: int) -> str:
        """Position control: a position farther from the last plausible one than the velocity
        limit allows in the time between their stamps is a glitch (a bad reading, not the
        robot): this state gets the hold and is not remembered. Implausible positions for a whole
        control period are a runaway joint: the over-speed trip latches. "" when plausible."""
        reference = self.measured_position
        if not self.config.position_control or reference is None:
            self._accept_position(position, stamp_ns)
            return ""
        elapsed = max(0.0, (stamp_ns - self._position_stamp_ns) * 1e-9)
        speed = np.abs(position - reference) / max(elapsed, 1e-9)
        over = speed > self.config.velocity_limit * (1.0 + 1e-9)
        if not over.any():
            self._accept_position(position, stamp_ns)
            return ""
        i = int(np.argmax(over))
        self.counts["position_glitches"] += 1
        if self._glitch_since_ns is None:
            self._glitch_since_ns = stamp_ns
        lasting = (stamp_ns - self._glitch_since_ns) * 1e-9
        what = (
            f"joint {i} position moved {abs(position[i] - reference[i]):.3g} in "
            f"{elapsed * 1e3:.1f} ms ({speed[i]:.3g}/s, limit {self.config.velocity_limit[i]:.3g})"
        )
        if self.trip is None and lasting >= self.config.control_period:
            self.trip = (
                f"{what} for {lasting * 1e3:.0f} ms: a runaway joint; safe command latched until "
                "cleared"
            )
        return self.trip or f"{what}: a position glitch, holding"

    def _accept_position(self, position: np.ndarray, stamp_ns: int) -> None:
        self.measured_position = position.copy()
        self._position_stamp_ns = stamp_ns
        self._glitch_since_ns = None

    def command(self, target: np.ndarray, stamp_ns: int) -> tuple[np.ndarray | None, str]:
        """The command to publish for the policy's ``target`` (joint units) on the state stamped
        ``stamp_ns``; the second item says why the safe command was used ("" when it was not).
        None only for position control before any position was measured (publish nothing).

        It moves at most ``max_delta`` x (time since the state the last published command
        answered) / control period from the last published command, whatever that was (the
        policy's, a hold, the safe command), so no sequence of states, holds and e-stops makes
        the commands faster than the bound."""
        config = self.config
        values = np.asarray(target, dtype=np.float64).reshape(-1)
        if values.shape != config.low.shape:
            return self.safe(stamp_ns), (
                f"policy output has {values.size} values, expected {config.low.size}: safe command"
            )
        if not np.all(np.isfinite(values)):
            return self.safe(stamp_ns), "non-finite policy output: safe command"
        if self.e_stopped or self.trip is not None:
            return self.safe(stamp_ns), self.trip or "emergency stop latched: safe command"
        since = self._command_stamp_ns
        previous = self.last_command
        if previous is None:  # position control's first command: from the measured position
            previous, since = self._hold_value(), self._position_stamp_ns
        if previous is None:
            return None, "no measured position to start from: nothing published"
        wanted = np.clip(values, config.low, config.high)
        if config.filter_alpha < 1.0:
            wanted = config.filter_alpha * wanted + (1.0 - config.filter_alpha) * previous
        fraction = 1.0
        if since is not None:
            elapsed = (stamp_ns - since) * 1e-9
            fraction = min(1.0, max(0.0, elapsed / config.control_period))
        step = config.max_delta * fraction  # inf * 0.0 would be nan: inf stays inf below
        step = np.where(np.isinf(config.max_delta), np.inf, step)
        command = np.clip(wanted, previous - step, previous + step)
        command = np.clip(command, config.low, config.high)
        self.last_command = command
        self._command_stamp_ns = stamp_ns
        return command.copy(), ""

    def through(
        self, command: np.ndarray | None, stamp_ns: int, state: RobotState, now: float
    ) -> tuple[np.ndarray | None, str]:
        """A learning node's command for ``state`` after the whole layer: the state checked, then
        the command limited (the safe command for a bad state or a None command; None: publish
        nothing); the second item says why the safe command was used, or a clock reset ("" when
        neither)."""
        verdict, reason = self.check_state(
            stamp_ns,
            *state.signals.values(),
            state.passive_position,
            state.passive_velocity,
            now=now,
            position=state.position,
            velocity=state.velocity,
        )
        if verdict is Verdict.SAFE or command is None:
            return self.safe(stamp_ns), reason
        if verdict is Verdict.IGNORE:
            return None, ""
        command, why = self.command(command, stamp_ns)
        return command, why or reason

    def safe(self, stamp_ns: int | None = None) -> np.ndarray | None:
        """The safe command, for the state stamped ``stamp_ns`` (None: for no state, e.g. the
        watchdog or an e-stop). Effort and velocity control: ``safe_command`` (zeros), at once.
        Position control: hold still at the last published command (so entering a hold never
        moves the robot), or before any command the last plausible measured position; None when
        there is neither (publish nothing, the robot keeps its last command). The rate limiter
        ramps the next policy command from it."""
        value = self.config.safe_command
        if value is None:
            value = self.last_command if self.last_command is not None else self._hold_value()
        if value is None:
            return None
        self.last_command = np.array(value, dtype=np.float64)
        if stamp_ns is not None:
            self._command_stamp_ns = stamp_ns
        elif self._command_stamp_ns is None:
            self._command_stamp_ns = self._last_state_stamp_ns
        return self.last_command.copy()

    def _initial_command(self) -> np.ndarray | None:
        """The command in force before any was published: ``safe_command``, or none."""
        safe = self.config.safe_command
        return None if safe is None else safe.copy()

    def _hold_value(self) -> np.ndarray | None:
        if self.measured_position is None:
            return None
        return np.clip(self.measured_position, self.config.low, self.config.high)

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
        """Clear the e-stop and over-speed latches; True if one was set. The next command ramps
        from the hold at the rate limit; the next measured position is taken as it is (whoever
        clears vouches for the robot: after a runaway it is far from the last plausible one)."""
        was = self.e_stopped or self.trip is not None
        self.e_stopped = False
        self.trip = None
        self.measured_position = self._position_stamp_ns = self._glitch_since_ns = None
        return was
