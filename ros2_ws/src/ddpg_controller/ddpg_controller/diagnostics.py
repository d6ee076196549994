"""Each node's health on ``/diagnostics`` (diagnostic_msgs/DiagnosticArray), where
``rqt_robot_monitor``, Foxglove and ``diagnostic_aggregator`` look for it.

One home for every node's status: :class:`DiagnosticsPublisher` publishes a node's
DiagnosticStatus every second (on the steady clock, so it goes on while simulated time stands
still) and at once when its level or message changes, so an e-stop is ERROR in the very next
message. A status is two functions: ``state()``, cheap (the node may call :meth:`update` on
every command), gives the level and one-line message; ``values()`` gives the figures and is
computed only for a published message. The reports of the deploy node's safety layer, of the
learner (controller and fleet learner alike) and of the simulator are below, so each node adds
only a publisher. Levels are the standard ones: OK, WARN, ERROR, and STALE for "nothing to
report" (a deploy node that is not active does not command the robot).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

if TYPE_CHECKING:
    from ddpg_controller.deploy_node import DeployNode
    from ddpg_controller.sim_node import SimNode
    from ddpg_controller.training_end import TrainingEnd

OK, WARN, ERROR, STALE = (
    DiagnosticStatus.OK,
    DiagnosticStatus.WARN,
    DiagnosticStatus.ERROR,
    DiagnosticStatus.STALE,
)
TOPIC = "/diagnostics"  # absolute: one topic for the whole system, as diagnostic_updater's
PERIOD_S = 1.0
State = tuple[bytes, str]  # (level, message)


class RatePerSecond:
    """How fast a counter grew since the previous call (steady time): commands/s, periods/s;
    NaN on the first call, when there is no interval yet."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def __call__(self, count: float) -> float:
        now = time.monotonic()
        last, self._last = self._last, (now, count)
        if last is None or now <= last[0]:
            return float("nan")
        return (count - last[1]) / (now - last[0])


class DiagnosticsPublisher:
    """Publishes ``node``'s status named ``"<node>: <component>"`` on :data:`TOPIC`."""

    def __init__(
        self,
        node: Node,
        component: str,
        hardware_id: str,
        state: Callable[[], State],
        values: Callable[[], Mapping[str, Any]],
    ) -> None:
        self._node = node
        self.name = f"{node.get_fully_qualified_name().lstrip('/')}: {component}"
        self._hardware_id = hardware_id
        self._state = state
        self._values = values
        self._published: State | None = None
        self._publisher = node.create_publisher(DiagnosticArray, TOPIC, 10)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        node.create_timer(PERIOD_S, self.publish, clock=steady)

    def update(self) -> None:
        """Publish now if the level or message changed since the last message."""
        if self._state() != self._published:
            self.publish()

    def publish(self) -> None:
        values = self._values()  # first: a state may read the figures they measure
        level, message = self._state()
        status = DiagnosticStatus(
            level=level, name=self.name, message=message, hardware_id=self._hardware_id
        )
        status.values = [KeyValue(key=k, value=_text(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
        self._published = (level, message)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---- the deploy node: its safety layer ----------------------------------------------------------
def deploy_state(node: DeployNode) -> State:
    safety = node.safety
    if safety is None:
        return STALE, "unconfigured: no policy loaded, nothing commanded"
    if safety.e_stopped:
        return ERROR, "e-stop latched: safe command until ~/clear_e_stop"
    if safety.trip is not None:
        return ERROR, f"over-speed trip: {safety.trip}"
    if not node.active:
        return STALE, "inactive: nothing commanded"
    if node.joint_error is not None:
        return ERROR, f"{node.joint_error}: safe command"
    if safety.timed_out:
        return WARN, "watchdog: no state within state_timeout, safe command until states return"
    return OK, f"active: commanding {node.command_topic}"


def deploy_values(node: DeployNode, rate: RatePerSecond) -> dict[str, Any]:
    safety = node.safety
    latency = node.latency.summary_ms()
    return {
        "active": node.active,
        "e_stop": bool(safety and safety.e_stopped),
        "tripped": bool(safety and safety.trip is not None),
        "watchdog_expired": bool(safety and safety.timed_out),
        "commands": node.counts["commands"],
        "safe_commands": node.counts["safe"],
        "clipped_commands": node.counts["clipped"],
        "ignored_states": node.counts["ignored"],
        "watchdog_timeouts": node.counts["timeouts"],
        "command_rate_hz": rate(node.counts["commands"]),
        "latency_p50_ms": latency["p50"],
        "latency_p99_ms": latency["p99"],
    }


def deploy_diagnostics(node: DeployNode) -> DiagnosticsPublisher:
    rate = RatePerSecond()
    return DiagnosticsPublisher(
        node,
        "safety",
        node.get_namespace(),
        lambda: deploy_state(node),
        lambda: deploy_values(node, rate),
    )


# ---- a training node: the learner (controller and fleet learner) --------------------------------
class _LearnerReport:
    """The learner's health; WARN for a second in which real time dropped owed updates."""

    def __init__(self, node: TrainingEnd) -> None:
        self.node = node
        self._dropped_seen = 0
        self._dropped_recently = 0

    def state(self) -> State:
        node, learner = self.node, self.node.learner
        if learner.failure is not None:
            return ERROR, "the learner thread died: no more updates (see the node's log)"
        if node.done:
            return OK, "training done"
        if self._dropped_recently:
            return WARN, (
                f"learner behind real time: dropped {self._dropped_recently} owed updates "
                "(max_update_backlog)"
            )
        if node.agent.num_updates == 0:
            return OK, f"filling the replay buffer ({len(node.agent.replay)} transitions)"
        return OK, f"learning: {learner.updates_per_second():.0f} updates/s"

    def values(self) -> dict[str, Any]:
        node, learner, agent = self.node, self.node.learner, self.node.agent
        dropped = learner.updates_dropped
        self._dropped_recently, self._dropped_seen = dropped - self._dropped_seen, dropped
        losses = learner.last_losses
        return {
            "env_steps": node.env_steps,
            "updates": agent.num_updates,
            "updates_per_s": learner.updates_per_second(),
            "updates_per_env_step": agent.num_updates / max(1, node.env_steps),
            "updates_per_step_target": agent.config.updates_per_step,
            "updates_dropped": dropped,
            "replay_size": len(agent.replay),
            "critic_loss": losses.get("critic_loss", float("nan")),
            "actor_loss": losses.get("actor_loss", float("nan")),
        }


def learner_diagnostics(node: TrainingEnd) -> DiagnosticsPublisher:
    report = _LearnerReport(node)
    return DiagnosticsPublisher(node, "learner", node.task.name, report.state, report.values)


# ---- the simulator -------------------------------------------------------------------------------
def sim_diagnostics(node: SimNode) -> DiagnosticsPublisher:
    """Real-time factor: simulated seconds per wall second over the last second. Real time holds
    1.0 while the node keeps up (WARN below 0.9); lockstep runs as fast as the commands come."""
    rate = RatePerSecond()
    figures = {"real_time_factor": float("nan")}

    def values() -> dict[str, Any]:
        figures["real_time_factor"] = rate(node.periods_simulated) * node.task.control_period
        return {
            "mode": node.mode,
            "real_time_factor": figures["real_time_factor"],
            "control_periods": node.periods_simulated,
        }

    def state() -> State:
        factor = figures["real_time_factor"]
        if factor != factor:  # NaN: the first second
            return OK, f"{node.mode}: starting"
        if node.mode == "realtime" and factor < 0.9:
            return WARN, f"behind real time: real-time factor {factor:.2f}"
        return OK, f"{node.mode}: real-time factor {factor:.2f}"

    return DiagnosticsPublisher(node, "simulation", node.task.name, state, values)
