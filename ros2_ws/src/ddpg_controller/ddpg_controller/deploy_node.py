"""Lifecycle node ``deploy``: runs an exported DDPG policy on a ros2_control robot, safely.

No learning, no noise, no optimiser: μ(s) from the TorchScript file ``export_policy`` wrote, on
torch CPU with one thread, behind the safety layer of :mod:`ddpg_controller.safety`.

Lifecycle (``rclpy.lifecycle``; drive it with ``<ns>/deploy/change_state``):

- **configure** loads the policy file and the task: ``task_file`` or ``task`` when set, else the
  task spec the policy carries (so the robot computer needs no URDF and no simulator). It checks
  the policy against the task (``Task.policy_mismatches``): task, joint names (same names, same
  order), command interface, action mode, limits, signal topics, observation layout, action
  count == controller joints, control rate, and the safety parameters. Any mismatch, or a
  missing/corrupt file, fails the transition with a log line saying exactly what differs. Then it
  subscribes to the robot state and e-stop topics and creates the command publisher.
- **activate** checks the last ``joint_states`` received (if any) for every trained joint name
  (a missing or renamed joint fails the transition, and so do NaN velocities where the task
  observes joint velocity: only a state can tell), then publishes a command for every new state
  received from then on (states received while inactive are never acted on).
- **deactivate** publishes the safe command once and stops; **cleanup** drops the policy.
- While active, ``joint_states`` lacking a trained joint gives the safe command (and an error).

Topics (relative to the namespace): subscribes ``joint_states`` (sensor_msgs/JointState, matched
by name), one geometry_msgs/PointStamped topic per task signal, ``e_stop`` (std_msgs/Bool; True
latches the safe command); publishes ``<controller_name>/commands`` (std_msgs/Float64MultiArray,
reliable) and ``~/command_state`` (sensor_msgs/JointState: header.stamp = the stamp of the state
the command answers, 0 for watchdog/deactivation/e-stop commands; the command in the field of the
command interface). Service ``~/clear_e_stop`` (std_srvs/Trigger) clears the e-stop and over-speed
latches.

``joint_states`` is read with a queue of one: the node acts on the newest state, a newer one
replaces an unread one (counted as skipped), and an ``e_stop`` is served before the next state.
Latency (state received -> command published, ``LatencyMeter``) is logged as p50/p99 every
``latency_log_period`` seconds, at deactivation and at shutdown, with the counts (commands, safe,
ignored, timeouts, skipped, clock resets, position glitches).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from functools import partial

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.diagnostics import deploy_diagnostics
from ddpg_controller.latency import LatencyMeter, SkippedStates
from ddpg_controller.ros_common import (
    COMMAND_QOS,
    NEWEST_STATE_QOS,
    RECORD_QOS,
    STATE_QOS,
    joint_state_by_name,
    ns_to_stamp,
    spin_until_shutdown,
    stamp_to_ns,
)
from ddpg_controller.ros_params import declare_all
from ddpg_controller.safety import (
    DEFAULT_POSITION_MARGIN,
    DEFAULT_VELOCITY_TOLERANCE,
    SafetyLayer,
    Verdict,
    task_safety_config,
)
from ddpg_controller.state_assembly import StateAssembler
from ddpg_controller.tasks import RobotState, TaskSpecError, load_task, task_from_dict

PARAMETERS = {
    "policy": ("", "Exported policy file (export_policy / <run_dir>/policy.pt)."),
    "task": ("", "Built-in task the robot runs; empty: the task spec the policy carries."),
    "task_file": ("", "Task spec file (YAML) of the robot; when set it replaces task."),
    "controller_name": ("", "ros2_control controller to command; empty = the task's default."),
    "exact_signal_stamps": (
        False,
        "Pair signal topics with joint_states by identical stamp (lockstep simulator) instead of "
        "taking each signal's latest value (real robot).",
    ),
    "state_timeout": (
        0.0,
        "Watchdog: seconds without a new state before the safe command; <= 0: three control "
        "periods of the policy's control rate.",
    ),
    "latency_log_period": (10.0, "Seconds between latency p50/p99 log lines; <= 0: none."),
    "position_margin": (
        DEFAULT_POSITION_MARGIN,
        "Position control: command limits this far inside the URDF position limits (rad or m).",
    ),
    "velocity_tolerance": (
        DEFAULT_VELOCITY_TOLERANCE,
        "Over-speed trip: a measured joint velocity beyond (1 + this) x its URDF limit latches "
        "the safe command until ~/clear_e_stop.",
    ),
    "filter_alpha": (
        1.0,
        "Low-pass (EMA) filter on commands: command = a*target + (1-a)*previous; 1: no filter.",
    ),
}
# Optional per-joint double arrays (one value for all joints, or one per joint; write floats:
# [1.0], not [1]); unset = the default.
OPTIONAL_ARRAYS = {
    "command_low": (
        "Lower command limits, joint units; unset: the policy's action_low (position control: "
        "the URDF lower limits + position_margin)."
    ),
    "command_high": "Upper command limits, joint units; unset: as command_low, mirrored.",
    "max_delta": (
        "Largest command change per joint per control period (joint units: a velocity bound "
        "for position commands, an acceleration bound for velocity commands); <= 0: no rate "
        "limit; unset: the URDF velocity limit x period (position), else a quarter of the range."
    ),
    "safe_command": (
        "Command on faults, e-stop, timeout and deactivation; unset: zeros (effort, velocity) "
        "or hold the last measured position (position)."
    ),
}


class DeployNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("deploy", **kwargs)
        self.settings = declare_all(self, PARAMETERS)
        for name, description in OPTIONAL_ARRAYS.items():
            self.declare_parameter(
                name,
                Parameter.Type.DOUBLE_ARRAY,
                ParameterDescriptor(description=description),
            )
        self.latency = LatencyMeter()
        self.policy = None
        self.task = None
        self.safety: SafetyLayer | None = None
        self.assembler: StateAssembler | None = None
        self.active = False
        self.joint_error: str | None = None  # what the last joint_states lacked
        self.counts = {"commands": 0, "safe": 0, "clipped": 0, "ignored": 0, "timeouts": 0}
        self.skipped = SkippedStates(0.0)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._subscriptions: list = []
        self._publishers: list = []
        self._timers: list = []
        self.command_publisher = None
        self.command_state_publisher = None
        self.create_service(Trigger, "~/clear_e_stop", self._on_clear_e_stop)
        self.diagnostics = deploy_diagnostics(self)  # /diagnostics: 1 Hz and on every change
        self.get_logger().info("deploy node up (unconfigured); configure it to load the policy")

    # ---- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            problem = self._configure()
        except Exception as exc:  # never let rclpy swallow it as a silent ERROR
            problem = f"configure failed: {type(exc).__name__}: {exc}"
        if problem:
            self.get_logger().error(problem)
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.diagnostics.update()
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.joint_error is not None:
            self.get_logger().error(f"activate refused: {self.joint_error}")
            return TransitionCallbackReturn.FAILURE
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        now = self._now()
        self.safety.start(now)
        self.skipped.restart()
        self.active = True
        self._timers.append(
            self.create_timer(
                self.safety.config.state_timeout / 5.0, self._check_watchdog, clock=self._steady
            )
        )
        self.get_logger().info(
            f"active: commanding {self.command_topic} "
            f"(state timeout {self.safety.config.state_timeout * 1e3:.0f} ms)"
        )
        self.diagnostics.update()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_acting("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.active:
            self._stop_acting("shutting down")
        self._release()
        return super().on_shutdown(state)

    def _stop_acting(self, why: str) -> None:
        """Publish the safe command once (publisher still enabled), then stop acting."""
        if self.active:
            self._publish(self.safety.safe(), 0, None)
        self.active = False
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers.clear()
        self.diagnostics.update()
        self.get_logger().info(f"{why}: safe command published; {self.latency_line()}")

    # ---- configuration checks ------------------------------------------------------------------
    def _configure(self) -> str | None:
        """Load and check; returns what is wrong, or None."""
        import torch

        from ddpg_controller.learning.export import PolicyFileError, load_policy

        torch.set_num_threads(1)
        path = self.settings["policy"]
        if not path:
            return "parameter policy is empty: set it to an exported policy file"
        try:
            policy = load_policy(path)
        except PolicyFileError as exc:
            return f"cannot load the policy: {exc}"
        meta = policy.metadata
        chosen = self.settings["task_file"] or self.settings["task"]
        try:
            if chosen:
                task = load_task(chosen)
            elif "task_spec" in meta:
                task = task_from_dict(meta["task_spec"], f"policy {path}")
            else:
                return f"policy {path} carries no task spec: set parameter task or task_file"
        except TaskSpecError as exc:
            return f"task: {exc}"
        problems = task.policy_mismatches(meta)
        if problems:
            return f"policy {path} does not fit task {task.name!r}: " + "; ".join(problems)
        values = {name: self._optional(name) for name in OPTIONAL_ARRAYS}
        try:
            config = task_safety_config(
                task,
                **values,
                state_timeout=float(self.settings["state_timeout"]),
                position_margin=float(self.settings["position_margin"]),
                filter_alpha=float(self.settings["filter_alpha"]),
                velocity_tolerance=float(self.settings["velocity_tolerance"]),
            )
        except ValueError as exc:
            return f"safety parameters: {exc}"
        period = task.control_period
        # Warm up TorchScript (its first calls optimise the graph) before the robot waits on it.
        for _ in range(3):
            policy(np.zeros(task.observation_dim, dtype=np.float32))

        self.task, self.policy = task, policy
        self.previous_action = np.zeros(task.action_dim)
        self.safety = SafetyLayer(config)
        self.skipped = SkippedStates(config.state_timeout)
        self.assembler = StateAssembler(
            task.signal_names, self.settings["exact_signal_stamps"], driven_joints=task.action_dim
        )
        controller = self.settings["controller_name"] or task.controller_name
        self.command_topic = f"{controller}/commands"
        self.command_publisher = self.create_lifecycle_publisher(
            Float64MultiArray, self.command_topic, COMMAND_QOS
        )
        self.command_state_publisher = self.create_lifecycle_publisher(
            JointState, "~/command_state", RECORD_QOS
        )
        self._publishers = [self.command_publisher, self.command_state_publisher]
        for name in task.signal_names:
            self._subscriptions.append(
                self.create_subscription(
                    PointStamped, name, partial(self._on_signal, name), STATE_QOS
                )
            )
        self._subscriptions.append(
            self.create_subscription(
                JointState, "joint_states", self._on_joint_states, NEWEST_STATE_QOS
            )
        )
        self._subscriptions.append(self.create_subscription(Bool, "e_stop", self._on_e_stop, 10))
        log_period = float(self.settings["latency_log_period"])
        if log_period > 0.0:
            self._log_timer = self.create_timer(log_period, self._log_latency, clock=self._steady)
        else:
            self._log_timer = None
        self.get_logger().info(
            f"configured: policy {path} (task {meta.get('task')}, {meta.get('env_steps')} training "
            f"steps), joints {list(task.joint_names)}, signals {list(task.signal_names)}, "
            f"commands on {self.command_topic}; limits {config.low.tolist()}.."
            f"{config.high.tolist()}, max_delta {config.max_delta.tolist()} per "
            f"{period * 1e3:.0f} ms, safe command "
            f"{'hold position' if config.safe_command is None else config.safe_command.tolist()}"
        )
        return None

    def _optional(self, name: str) -> list[float] | None:
        try:
            value = self.get_parameter(name).value
        except ParameterUninitializedException:
            return None
        return None if value is None else list(value)

    def _release(self) -> None:
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        for publisher in self._publishers:
            self.destroy_lifecycle_publisher(publisher)
        self._subscriptions, self._publishers = [], []
        if getattr(self, "_log_timer", None) is not None:
            self.destroy_timer(self._log_timer)
            self._log_timer = None
        self.policy = self.task = self.safety = self.assembler = None
        self.command_publisher = self.command_state_publisher = None
        self.joint_error = None
        self.diagnostics.update()

    # ---- state input ---------------------------------------------------------------------------
    def _on_signal(self, name: str, msg: PointStamped) -> None:
        received = time.perf_counter()
        value = np.array([msg.point.x, msg.point.y, msg.point.z])
        complete = self.assembler.add_signal(name, stamp_to_ns(msg.header.stamp), value)
        if complete is not None:
            self._on_state(*complete, received)

    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self.skipped.add(stamp_ns, self._now())
        try:
            position, velocity = joint_state_by_name(msg, self.task.sensed_joint_names)
            self.joint_error = velocity_needed(self.task, velocity)
        except (KeyError, ValueError) as error:
            text = error.args[0] if error.args else str(error)
            self.joint_error = f"joint_states does not fit the policy: {text}"
            if self.active:
                self.counts["safe"] += 1
                self._publish(self.safety.safe(stamp_ns), stamp_ns, received)
                self.get_logger().error(
                    f"{self.joint_error}: safe command", throttle_duration_sec=1.0
                )
            return
        complete = self.assembler.add_joints(stamp_ns, position, velocity)
        if complete is not None:
            self._on_state(*complete, received)

    def _on_state(self, stamp_ns: int, state: RobotState, received: float) -> None:
        if self.active:  # inactive: states only serve the joint-name check
            self._act(stamp_ns, state, received)

    def _act(self, stamp_ns: int, state: RobotState, received: float) -> None:
        safety = self.safety
        was_timed_out = safety.timed_out
        resets = safety.counts["clock_resets"]
        verdict, reason = safety.check_state(
            stamp_ns,
            *state.signals.values(),
            state.passive_position,
            state.passive_velocity,
            now=self._now(),
            position=state.position,
            velocity=state.velocity,
        )
        if verdict is Verdict.IGNORE:
            self.counts["ignored"] += 1
            self.get_logger().warning(reason, throttle_duration_sec=1.0)
            return
        if was_timed_out:
            self.get_logger().info("states are back: acting again")
        if safety.counts["clock_resets"] > resets:  # whatever this state's verdict
            self.get_logger().warning(safety.clock_reset)
        if verdict is Verdict.ACT:
            observation = self.task.observation(state, self.previous_action)
            if not np.all(np.isfinite(observation)):
                verdict, reason = Verdict.SAFE, "non-finite observation: safe command"
        if verdict is Verdict.SAFE:
            self.counts["safe"] += 1
            self.previous_action = np.zeros(self.task.action_dim)
            self._publish(safety.safe(stamp_ns), stamp_ns, received)
            self.get_logger().error(reason, throttle_duration_sec=1.0)
            return
        try:
            action = self.policy(observation)
        except Exception as exc:  # a broken policy must not take the node down
            action = np.full(self.task.action_dim, np.nan)
            self.get_logger().error(f"policy failed: {exc}", throttle_duration_sec=1.0)
        if np.all(np.isfinite(action)):
            self.previous_action = np.clip(action, self.task.action_low, self.task.action_high)
            action = self.task.command(action, state)  # joint units (delta mode: q + action)
        command, reason = safety.command(action, stamp_ns)
        if reason:
            self.counts["safe"] += 1
            self.get_logger().error(reason, throttle_duration_sec=1.0)
        elif command is not None and not np.array_equal(command, action):
            self.counts["clipped"] += 1  # limited, rate-limited or filtered by the safety layer
        self._publish(command, stamp_ns, received)

    def _publish(self, command: np.ndarray | None, stamp_ns: int, received: float | None) -> None:
        """Publish ``command`` and its echo; None (position control before any measured
        position: nothing to hold) publishes nothing and the robot keeps its last command."""
        if command is not None and not np.all(np.isfinite(command)):
            command = self.safety.safe()  # cannot happen: SafetyLayer guarantees it
        if command is None:
            return
        self.command_publisher.publish(Float64MultiArray(data=command.tolist()))
        if received is not None:
            self.latency.record(time.perf_counter() - received)
        self.counts["commands"] += 1
        echo = JointState()
        echo.header.stamp = ns_to_stamp(stamp_ns)
        echo.name = list(self.task.joint_names)
        setattr(echo, _ECHO_FIELD.get(self.task.command_interface, "position"), command.tolist())
        self.command_state_publisher.publish(echo)
        self.diagnostics.update()

    # ---- watchdog, e-stop, latency -------------------------------------------------------------
    def _check_watchdog(self) -> None:
        if self.active and self.safety.watchdog_expired(self._now()):
            self.counts["timeouts"] += 1
            self._publish(self.safety.safe(), 0, None)
            self.get_logger().warning(
                f"no state for {self.safety.config.state_timeout * 1e3:.0f} ms: safe command "
                "until states return"
            )

    def _on_e_stop(self, msg: Bool) -> None:
        if not msg.data:
            if self.safety is not None and self.safety.e_stopped:
                self.get_logger().warning(
                    "e_stop False received: the latch stays set; call ~/clear_e_stop",
                    throttle_duration_sec=1.0,
                )
            return
        if self.safety is None:
            return
        if not self.safety.e_stopped:
            self.get_logger().error("EMERGENCY STOP: safe command latched until ~/clear_e_stop")
        self.safety.e_stop()
        if self.active:
            self._publish(self.safety.safe(), 0, None)
        self.diagnostics.update()

    def _on_clear_e_stop(self, request: Trigger.Request, response: Trigger.Response):
        if self.safety is None:
            response.success = False
            response.message = "not configured: there is no e-stop latch to clear"
            return response
        was = self.safety.clear_e_stop()
        response.success = True
        response.message = "e-stop cleared" if was else "e-stop was not latched"
        self.diagnostics.update()
        self.get_logger().warning(response.message)
        return response

    def _now(self) -> float:
        return self._steady.now().nanoseconds * 1e-9

    def latency_line(self) -> str:
        s = self.latency.summary_ms()
        return (
            f"latency state->command p50 {s['p50']:.3f} ms p99 {s['p99']:.3f} ms max "
            f"{s['max']:.3f} ms over {len(self.latency)} commands; counts "
            f"{self.counts | self.safety_counts()}"
        )

    def safety_counts(self) -> dict[str, int]:
        """States skipped for a newer one (and unseen in outages), clock resets and position
        glitches so far."""
        counts = {"skipped": self.skipped.count, "skipped_in_outages": self.skipped.in_outages}
        return counts if self.safety is None else counts | self.safety.counts

    def _log_latency(self) -> None:
        if len(self.latency):
            self.get_logger().info(self.latency_line())

    def shutdown(self) -> None:
        """On Ctrl-C: the lifecycle shutdown transition (safe command if active), then the final
        latency line."""
        try:
            self.trigger_shutdown()
        except Exception as exc:  # e.g. already finalized
            self.get_logger().warning(f"shutdown transition: {exc}")
        self.get_logger().info(f"shutdown: {self.latency_line()}")


_ECHO_FIELD = {"effort": "effort", "velocity": "velocity", "position": "position"}


def velocity_needed(task, velocity: np.ndarray) -> str | None:
    """Why ``joint_states`` cannot drive a policy that observes joint velocity: NaN velocities
    (``joint_state_broadcaster`` for joints without a velocity state interface), or None. Only a
    state can tell, so activation is refused on it; a task that does not observe velocity is
    fine without (the over-speed trip then takes the speed from successive positions)."""
    missing = np.isnan(velocity)
    if not task.observes_velocity or not missing.any():
        return None
    joints = [name for name, gone in zip(task.sensed_joint_names, missing, strict=True) if gone]
    return (
        f"joint_states has no velocity (NaN) for joints {joints}, but task {task.name!r} "
        "observes joint_velocity: give those joints a velocity state interface"
    )


def main(args: list[str] | None = None) -> int:
    # Our own SIGINT handling: rclpy's would shut the context down before the safe command.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    node = None
    try:
        node = DeployNode()
        # While spinning, Ctrl-C only sets a flag: a KeyboardInterrupt raised inside a callback
        # that the executor's C++ called aborts the process (pybind11 error_already_set ->
        # terminate; seen once in ~30 deploys), and the safe command is never published.
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
        spin_until_shutdown(node, stop=stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            try:
                node.shutdown()
            except Exception as exc:  # the context may be gone already
                print(f"deploy_node: shutdown: {exc}", file=sys.stderr)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
