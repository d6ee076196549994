"""A position-controlled Franka Panda that misbehaves on purpose, played over DDS against the deploy
node, and the audit of every command it receives (used by ``test_deploy_fault_robot.py`` and by
``./run bench faults``).

The robot publishes ``joint_states`` (and the task's signals) at a fixed rate, stamped on its own
clock (a tick it overran is not published), follows the commands at its URDF velocity limit (or
reaches each one at once: the ``instant`` fault) and injects one fault class per run
(``FAULTS``). It subscribes to the node's ``~/command_state`` echo, which names the stamp of the
state each command answers, and audits each command against what the safety layer promises:

- **over-step**: a command farther from the previous one than ``max_delta`` x (true time between
  the states they answer) / control period; a command that answers no state (watchdog, e-stop)
  must equal the previous one;
- **out-of-limit**: non-finite, or outside the URDF position limits less the margin;
- **not-holding**: a command answering a state that must be held (a glitched, NaN or renamed
  state, a runaway joint), or any command after the e-stop's first hold, that is not the
  previous command.

It also counts the states answered and those never answered (skipped: the node acts on the newest
state), the age of each answered state when its command arrives, the e-stop latency (e-stop
published -> first safe command received) and the commands received in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from geometry_msgs.msg import PointStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.ros_common import (
    COMMAND_QOS,
    RECORD_QOS,
    STATE_QOS,
    ns_to_stamp,
    stamp_to_ns,
)
from ddpg_controller.tasks import load_task

TASK = load_task("panda_reach")
MARGIN = 0.05  # the deploy node's default position_margin
HOME = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785])
GLITCH_RAD = 1.0
RUNAWAY_RAD_S = 3.0
STAMP_JUMP_NS = 30_000_000_000
FAULTS = {
    "none": "a well-behaved robot",
    "glitch": f"joint 1 reads {GLITCH_RAD} rad away (velocity to match) for one state every 0.25 s",
    "nan_every_other": "NaN in joint 3's position of every other state",
    "renamed_joint": "panda_joint7 renamed in the middle third of the run",
    "runaway": f"joint 1 runs at {RUNAWAY_RAD_S} rad/s from a third of the run on",
    "no_velocity": "NaN velocities (no velocity state interface)",
    "stamp_forward": "stamps jump +30 s a third of the way through",
    "stamp_backward": "stamps jump -30 s a third of the way through",
    "instant": "the robot reaches each command at once (no speed cap)",
    "e_stop": "e_stop True half-way through",
    "disorder": "every 5th state repeats the last stamp, every 7th is 3 periods old",
}


@dataclass
class SentState:
    true_s: float  # the robot's true time (seconds since the run began)
    sent: float  # perf_counter() when published
    must_hold: bool
    valid: bool = True  # False: a duplicate or out-of-order stamp, never to be answered


@dataclass
class Audit:
    fault: str
    rate_hz: float
    states: int = 0  # valid states published
    commands: int = 0
    answered: int = 0
    over_step: int = 0
    out_of_limit: int = 0
    not_holding: int = 0
    worst_step_ratio: float = 0.0  # largest |step| / allowed step over policy commands
    ages_ms: list[float] = field(default_factory=list)  # state sent -> its command received
    e_stop_ms: float | None = None
    e_stop_late: int = 0  # commands received after the e-stop was sent, before its hold
    records_lost: int = 0  # commands received without their ~/command_state record

    @property
    def skipped(self) -> int:
        return self.states - self.answered

    def row(self) -> dict[str, object]:
        ages = np.array(self.ages_ms) if self.ages_ms else np.array([np.nan])
        return {
            "fault": self.fault,
            "rate_hz": int(self.rate_hz),
            "states": self.states,
            "answered": self.answered,
            "skipped": self.skipped,
            "commands": self.commands,
            "over_step": self.over_step,
            "out_of_limit": self.out_of_limit,
            "not_holding": self.not_holding,
            "worst_step_ratio": round(self.worst_step_ratio, 3),
            "age_p50_ms": round(float(np.percentile(ages, 50)), 3),
            "age_p99_ms": round(float(np.percentile(ages, 99)), 3),
            "age_max_ms": round(float(np.max(ages)), 3),
            "e_stop_ms": None if self.e_stop_ms is None else round(self.e_stop_ms, 3),
            "e_stop_late": self.e_stop_late,
            "records_lost": self.records_lost,
        }


class FaultRobot:
    """The robot side of a deploy node (``node_name``) on the rclpy ``ros`` harness (the tests'
    ``RosHarness``: ``node``, ``executor``, ``spin_until``, ``call``, ``change_state``)."""

    def __init__(self, ros, node_name: str = "deploy") -> None:
        self.ros, self.node_name = ros, node_name
        node = ros.node
        self.joint_pub = node.create_publisher(JointState, "joint_states", STATE_QOS)
        self.signal_pubs = [
            node.create_publisher(PointStamped, n, STATE_QOS) for n in TASK.signal_names
        ]
        self.e_stop_pub = node.create_publisher(Bool, "e_stop", COMMAND_QOS)
        self.low = TASK.position_lower + MARGIN
        self.high = TASK.position_upper - MARGIN
        self.max_delta = TASK.velocity_limit * TASK.control_period  # the default
        self.echoes: list[tuple[float, int, np.ndarray]] = []  # (received, stamp, command)
        self.commands = 0
        self.command = HOME.copy()  # what the robot was last told
        node.create_subscription(
            JointState, f"/{node_name}/command_state", self._on_echo, RECORD_QOS
        )
        node.create_subscription(
            Float64MultiArray, f"{TASK.controller_name}/commands", self._on_command, RECORD_QOS
        )
        self.lifecycle = node.create_client(ChangeState, f"/{node_name}/change_state")
        self.clear = node.create_client(Trigger, f"/{node_name}/clear_e_stop")

    def configure_and_activate(self) -> None:
        """Configure the node, wait until it hears us, publish a state and activate it."""
        assert self.ros.change_state(self.lifecycle, Transition.TRANSITION_CONFIGURE)
        assert self.ros.spin_until(
            lambda: (
                all(p.get_subscription_count() >= 1 for p in self.publishers())
                and self.ros.node.count_publishers(f"{TASK.controller_name}/commands") >= 1
            ),
            20.0,
        )
        self.ros.spin_until(lambda: False, 0.3)
        assert self.ros.change_state(self.lifecycle, Transition.TRANSITION_ACTIVATE)

    def rearm(self) -> None:
        """Between two runs: deactivate, clear the latches, activate (the layer starts afresh)."""
        assert self.ros.change_state(self.lifecycle, Transition.TRANSITION_DEACTIVATE)
        assert self.ros.call(self.clear, Trigger.Request()).success
        assert self.ros.change_state(self.lifecycle, Transition.TRANSITION_ACTIVATE)

    def publishers(self) -> list:
        return [self.joint_pub, *self.signal_pubs, self.e_stop_pub]

    def _on_echo(self, msg: JointState) -> None:
        received = time.perf_counter()
        self.echoes.append((received, stamp_to_ns(msg.header.stamp), np.asarray(msg.position)))

    def _on_command(self, msg: Float64MultiArray) -> None:
        self.commands += 1
        self.command = np.asarray(msg.data, dtype=np.float64)

    def run(self, fault: str, rate_hz: float, seconds: float, start: np.ndarray = HOME) -> Audit:
        """Publish ``seconds`` of states at ``rate_hz`` with ``fault``; wait for the last
        answers; return the audit of the commands received meanwhile."""
        assert fault in FAULTS, fault
        period = 1.0 / rate_hz
        count = int(rate_hz * seconds)
        self.ros.spin_until(lambda: False, 0.2)  # the echoes of an earlier run (deactivation)
        self.echoes.clear()
        self.commands = 0
        self.command = start.copy()
        q = start.copy()
        sent: dict[int, SentState] = {}  # the valid states, by stamp
        true_times: dict[int, float] = {}  # every stamp published -> the robot's true time
        base_ns = time.time_ns()
        last_stamp, last_true_s = 0, 0.0
        e_stop_at: float | None = None
        msg = JointState(name=list(TASK.joint_names))
        begin = time.perf_counter()
        for i in range(count):
            due = begin + i * period
            # Overran (a loaded machine): this tick moves the robot but publishes no state, as a
            # real-time loop does; a burst of overdue states would look like a clock reset.
            overran = time.perf_counter() > due + period
            while (now := time.perf_counter()) < due:
                self.ros.executor.spin_once(timeout_sec=min(due - now, 0.0005))
            if overran:
                self.ros.executor.spin_once(timeout_sec=0.0)
            true_s = i * period
            onset = i >= count // 3
            previous = q.copy()
            if fault == "instant":
                q = self.command.copy()
            else:
                step = TASK.velocity_limit * period
                q = q + np.clip(self.command - q, -step, step)
            if fault == "runaway" and onset:
                q[0] = previous[0] + RUNAWAY_RAD_S * period
            position, velocity = q.copy(), (q - previous) / period
            names = list(TASK.joint_names)
            must_hold = fault == "runaway" and onset
            if fault == "glitch" and i % max(1, round(0.25 * rate_hz)) == round(0.1 * rate_hz):
                position[0] += GLITCH_RAD
                velocity[0] = GLITCH_RAD / period
                must_hold = True
            if fault == "nan_every_other" and i % 2 == 1:
                position[2] = np.nan
                must_hold = True
            if fault == "renamed_joint" and count // 3 <= i < 2 * count // 3:
                names[6] = "panda_joint7_renamed"
                must_hold = True
            if fault == "no_velocity":
                velocity[:] = np.nan
            stamp_ns = base_ns + round(true_s * 1e9)
            if fault in ("stamp_forward", "stamp_backward") and onset:
                stamp_ns += STAMP_JUMP_NS if fault == "stamp_forward" else -STAMP_JUMP_NS
            valid, stamp_true_s = True, true_s
            if fault == "disorder" and i > 0 and i % 5 == 4:
                stamp_ns, valid, stamp_true_s = last_stamp, False, last_true_s
            elif fault == "disorder" and i > 3 and i % 7 == 6:
                stamp_ns, valid = last_stamp - round(3 * period * 1e9), False
                stamp_true_s = last_true_s - 3 * period
            if fault == "e_stop" and i == count // 2:
                e_stop_at = time.perf_counter()
                self.e_stop_pub.publish(Bool(data=True))
            if overran:
                continue
            if i % 10 == 0:
                self._publish_signals(stamp_ns)
            msg.header.stamp = ns_to_stamp(stamp_ns)
            msg.name = names
            msg.position, msg.velocity = position.tolist(), velocity.tolist()
            if valid:
                sent[stamp_ns] = SentState(true_s, time.perf_counter(), must_hold)
                last_stamp, last_true_s = stamp_ns, true_s
            true_times.setdefault(stamp_ns, stamp_true_s)
            self.joint_pub.publish(msg)
        last_answer = time.perf_counter()
        while time.perf_counter() - last_answer < 0.3:  # until the answers stop coming
            seen = len(self.echoes)
            self.ros.executor.spin_once(timeout_sec=0.01)
            if len(self.echoes) > seen:
                last_answer = time.perf_counter()
        return self.audit(fault, rate_hz, sent, true_times, e_stop_at)

    def _publish_signals(self, stamp_ns: int) -> None:
        point = PointStamped()
        point.header.stamp = ns_to_stamp(stamp_ns)
        point.point.x, point.point.y, point.point.z = 0.5, 0.0, 0.4
        for pub in self.signal_pubs:
            pub.publish(point)

    def audit(
        self,
        fault: str,
        rate_hz: float,
        sent: dict[int, SentState],
        true_times: dict[int, float],
        e_stop_at: float | None,
    ) -> Audit:
        """``sent``: the valid states by stamp; ``true_times``: the robot's true time of every
        stamp it published (a duplicate's or an old stamp's too: the node may answer one whose
        original it skipped)."""
        audit = Audit(fault, rate_hz, states=len(sent), commands=len(self.echoes))
        audit.records_lost = max(0, self.commands - len(self.echoes))
        previous: np.ndarray | None = None
        reference: float | None = None  # true time of the state the last state command answered
        answered: set[int] = set()
        period = TASK.control_period
        held_from = next(  # the e-stop's hold: from then on every command holds
            (t for t, stamp, _ in self.echoes if e_stop_at and t > e_stop_at and stamp == 0), None
        )
        if held_from is not None:
            audit.e_stop_ms = (held_from - e_stop_at) * 1e3
        for received, stamp, command in self.echoes:
            state = sent.get(stamp)
            true_s = true_times.get(stamp)
            if e_stop_at is not None and e_stop_at < received < (held_from or np.inf):
                audit.e_stop_late += 1
            if not np.all(np.isfinite(command)) or np.any(
                (command < self.low - 1e-9) | (command > self.high + 1e-9)
            ):
                audit.out_of_limit += 1
            if previous is not None:
                step = np.abs(command - previous)
                if true_s is None:  # no state answered: a hold
                    allowed = np.zeros_like(step)
                elif reference is None:
                    allowed = self.max_delta
                else:
                    allowed = self.max_delta * min(1.0, (true_s - reference) / period)
                if np.any(step > allowed + 1e-9):
                    audit.over_step += 1
                moving = allowed > 0
                if moving.any():
                    ratio = float(np.max(step[moving] / allowed[moving]))
                    audit.worst_step_ratio = max(audit.worst_step_ratio, ratio)
                must_hold = state is not None and state.must_hold
                if (must_hold or (held_from and received > held_from)) and np.any(step > 1e-9):
                    audit.not_holding += 1
            if true_s is not None:
                reference = true_s
            if state is not None and stamp not in answered:
                answered.add(stamp)
                audit.ages_ms.append((received - state.sent) * 1e3)
            previous = command
        audit.answered = len(answered)
        return audit
