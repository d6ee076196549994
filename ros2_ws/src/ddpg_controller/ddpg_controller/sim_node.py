"""ROS 2 node ``sim``: the simulated robot (``ddpg_controller.sim.make_robot``: PyBullet, or MuJoCo
with ``engine:=mujoco``) on ROS topics; the topics and their semantics are the same for both.

Interfaces (names relative to the node's namespace):

- publishes ``joint_states`` (sensor_msgs/JointState: name, position, velocity, effort = applied
  effort) with ``ros_common.STATE_QOS``;
- publishes every task signal (``Task.signal_names``, e.g. ``goal``, ``end_effector``) as
  geometry_msgs/PointStamped on the topic of that name, with the same ``header.stamp`` as that
  step's ``joint_states`` and *before* it (``joint_states`` is the trigger);
- subscribes ``<controller_name>/commands`` (std_msgs/Float64MultiArray, one value per joint in task
  joint order, joint units) with ``ros_common.COMMAND_QOS``; a malformed command (wrong length, NaN,
  inf) logs a throttled warning and the safe command is used instead (zeros, or the current
  position for a position interface);
- service ``~/reset`` (std_srvs/Trigger): new episode; the first reset uses parameter ``seed``,
  later ones continue the RNG, and setting ``seed`` makes the next reset reseed with it. The new
  initial state is published (signals, then joint_states) and the response message is
  ``"stamp_ns=<stamp of that state> episode=<k>"`` (k = 0 for the start-up reset, then 1, 2, ...);
- lockstep mode only: publishes ``/clock`` (rosgraph_msgs/Clock).

Modes: ``lockstep`` advances one control period per command received, stamps are simulated time
(steps × control_period, strictly increasing: a reset also advances it by one period); until the
first command or reset it re-publishes the initial state every ``republish_period`` wall seconds.
``realtime`` steps on a wall-clock timer at the control rate, holding the last command, stamps
from the node clock.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.diagnostics import sim_diagnostics
from ddpg_controller.ros_common import (
    COMMAND_QOS,
    STATE_QOS,
    ns_to_stamp,
    publish_unless_shut_down,
    reset_reply,
    spin_until_shutdown,
)
from ddpg_controller.ros_params import declare
from ddpg_controller.sim.engine import ENGINES, make_robot
from ddpg_controller.sim.video import Recorder
from ddpg_controller.tasks import RandomizationConfig, builtin_task_names, load_task

MODES = ("lockstep", "realtime")

# name -> description; defaults are the task spec's randomization block; read-only after start.
RANDOMIZATION_PARAMS: dict[str, str] = {
    "mass_scale": "[low, high] factor on each link's mass and inertia",
    "joint_damping": "[low, high] damping (N·m·s/rad) added to the nominal, per joint",
    "joint_friction": "[low, high] Coulomb friction (N·m) added, per joint",
    "actuator_gain": "[low, high] factor between command and actuator, per joint",
    "observation_noise_std": "std of Gaussian noise on reported joint positions/velocities",
    "action_delay_steps": "a command takes effect this many steps later",
}


class SimNode(Node):
    """The simulated robot behind ros2_control-style topics; see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim", **kwargs)
        task_name = declare(
            self,
            "task",
            "pendulum",
            f"built-in task to simulate, one of {', '.join(builtin_task_names())}",
            read_only=True,
        )
        task_file = declare(
            self,
            "task_file",
            "",
            "task spec file (YAML); when set it replaces the built-in task",
            read_only=True,
        )
        self.task = load_task(task_file or task_name)
        self.engine = declare(
            self,
            "engine",
            "pybullet",
            f"physics engine of the simulated robot: {' | '.join(ENGINES)}",
            read_only=True,
        )
        self.mode = declare(self, "mode", "lockstep", "lockstep | realtime", read_only=True)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        seed = declare(
            self,
            "seed",
            0,
            "RNG seed of the first reset; setting it reseeds the next reset (<0: random)",
        )
        self.controller_name = declare(
            self,
            "controller_name",
            self.task.controller_name,
            "ros2_control controller whose <name>/commands topic is subscribed",
            read_only=True,
        )
        self.republish_period = float(
            declare(
                self,
                "republish_period",
                0.5,
                "lockstep: wall seconds between re-publications of the initial state until the "
                "first command or reset",
                read_only=True,
            )
        )
        self.command_timeout = float(
            declare(
                self,
                "command_timeout",
                0.0,
                "realtime: hold zeros if no command arrived for this many seconds (0: hold the "
                "last command forever, like forward_command_controller)",
                read_only=True,
            )
        )
        spec_randomization = self.task.randomization.to_dict()
        rand = {
            name: declare(
                self, f"randomization.{name}", spec_randomization[name], desc, read_only=True
            )
            for name, desc in RANDOMIZATION_PARAMS.items()
        }
        self.randomization = RandomizationConfig(
            mass_scale=tuple(rand["mass_scale"]),
            joint_damping=tuple(rand["joint_damping"]),
            joint_friction=tuple(rand["joint_friction"]),
            actuator_gain=tuple(rand["actuator_gain"]),
            observation_noise_std=float(rand["observation_noise_std"]),
            action_delay_steps=int(rand["action_delay_steps"]),
        )

        self.robot = make_robot(self.task, self.randomization, self.engine)
        self.record = declare(
            self,
            "record",
            "",
            "Video file of the simulation (MP4; a GIF without ffmpeg), 160x120 at most 30 fps, "
            "written when the node stops; empty: none. PyBullet engine only.",
            read_only=True,
        )
        if self.record and self.engine != "pybullet":
            raise ValueError(f"record: videos are rendered by PyBullet, not {self.engine!r}")
        self.recorder = Recorder(self.robot) if self.record else None
        self._period_ns = round(self.task.control_period * 1e9)
        self._sim_steps = 0
        self.periods_simulated = 0  # control periods stepped: the real-time factor's count
        self._episode = -1
        self._reseed: tuple[bool, int | None] = (True, None if seed < 0 else int(seed))
        self._command = np.zeros(self.task.action_dim)  # set by the reset below
        self._command_time_ns: int | None = None
        self._joint_names = list(self.task.sensed_joint_names)  # passive joints too
        self._passive_effort = [0.0] * len(self.task.passive_joint_names)
        for warning in self.task.warnings:
            self.get_logger().warning(warning)

        self._joint_pub = self.create_publisher(JointState, "joint_states", STATE_QOS)
        self._signal_pubs = {
            name: self.create_publisher(PointStamped, name, STATE_QOS)
            for name in self.task.signal_names
        }
        self._clock_pub = (
            self.create_publisher(Clock, "/clock", STATE_QOS) if self.mode == "lockstep" else None
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_subscription(
            Float64MultiArray, f"{self.controller_name}/commands", self._on_command, COMMAND_QOS
        )
        self.create_service(Trigger, "~/reset", self._on_reset)

        self._stamp_ns = self._reset_episode()
        self._republish_timer = None
        if self.mode == "lockstep":
            self._republish_timer = self.create_timer(self.republish_period, self._republish)
        else:
            self.create_timer(self.task.control_period, self._tick)
        self.diagnostics = sim_diagnostics(self)  # /diagnostics: the real-time factor, 1 Hz
        self.get_logger().info(
            f"task={self.task.name} engine={self.engine} mode={self.mode} "
            f"commands={self.controller_name}/commands "
            f"joints={self._joint_names} signals={list(self.task.signal_names)} "
            f"randomization={'on' if self.randomization.enabled else 'off'}"
        )

    # ---- parameters ----------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name == "seed":
                if p.type_ != Parameter.Type.INTEGER:
                    return SetParametersResult(successful=False, reason="seed must be an integer")
                self._reseed = (True, None if p.value < 0 else int(p.value))
        return SetParametersResult(successful=True)

    # ---- episodes and steps ----------------------------------------------------------------------
    def _reset_episode(self) -> int:
        reseed, seed = self._reseed
        self._reseed = (False, None)
        state = self.robot.reset(seed) if reseed else self.robot.reset(None)
        self._episode += 1
        self._command = self._safe()
        self._command_time_ns = None
        stamp_ns = self._publish(state)
        if self.recorder is not None:
            self.recorder.capture(force=True)
        return stamp_ns

    def _next_stamp_ns(self) -> int:
        if self.mode == "lockstep":
            self._sim_steps += 1
            return self._sim_steps * self._period_ns
        return self.get_clock().now().nanoseconds

    def _publish(self, state, stamp_ns: int | None = None) -> int:
        if stamp_ns is None:
            stamp_ns = self._next_stamp_ns()
        stamp = ns_to_stamp(stamp_ns)
        if self._clock_pub is not None:
            publish_unless_shut_down(self._clock_pub, Clock(clock=stamp), self.context)
        for name, pub in self._signal_pubs.items():
            msg = PointStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = "world"
            x, y, z = (float(v) for v in state.signals[name])
            msg.point.x, msg.point.y, msg.point.z = x, y, z
            publish_unless_shut_down(pub, msg, self.context)
        js = JointState()
        js.header.stamp = stamp
        js.name = self._joint_names
        js.position = state.sensed_position.tolist()
        js.velocity = state.sensed_velocity.tolist()
        js.effort = [float(e) for e in self.robot.applied_effort] + self._passive_effort
        publish_unless_shut_down(self._joint_pub, js, self.context)
        self._stamp_ns = stamp_ns
        return stamp_ns

    def _stop_republishing(self) -> None:
        if self._republish_timer is not None:
            self._republish_timer.cancel()
            self.destroy_timer(self._republish_timer)
            self._republish_timer = None

    def _republish(self) -> None:
        self._publish(self.robot.state, self._stamp_ns)

    def _safe(self) -> np.ndarray:
        """Zero effort/velocity, or hold the current position (position control)."""
        return self.task.hold_command(self.robot.state)

    def _validate(self, data) -> np.ndarray:
        values = np.asarray(data, dtype=np.float64).reshape(-1)
        if values.shape != (self.task.action_dim,):
            self.get_logger().warning(
                f"command has {values.size} values, expected {self.task.action_dim} "
                f"({self._joint_names}); holding the safe command",
                throttle_duration_sec=1.0,
            )
            return self._safe()
        if not np.all(np.isfinite(values)):
            self.get_logger().warning(
                f"command {values.tolist()} is not finite; holding the safe command",
                throttle_duration_sec=1.0,
            )
            return self._safe()
        return values

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            action = self._validate(msg.data)
        except (TypeError, ValueError):
            action = self._safe()
        if self.mode == "lockstep":
            self._stop_republishing()
            self._step(action)
        else:
            self._command = action
            self._command_time_ns = self.get_clock().now().nanoseconds

    def _tick(self) -> None:
        action = self._command
        if self.command_timeout > 0.0 and self._command_time_ns is not None:
            age = (self.get_clock().now().nanoseconds - self._command_time_ns) * 1e-9
            if age > self.command_timeout:
                safe = self._safe()
                if not np.array_equal(action, safe):
                    self.get_logger().warning(
                        f"no command for {age:.2f} s; holding the safe command",
                        throttle_duration_sec=1.0,
                    )
                action = safe
        self._step(action)

    def _step(self, action: np.ndarray) -> None:
        self._publish(self.robot.step(action))
        self.periods_simulated += 1
        if self.recorder is not None:  # after publishing: the frame costs the robot no latency
            self.recorder.capture()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._stop_republishing()
        stamp_ns = self._reset_episode()
        response.success = True
        response.message = reset_reply(stamp_ns, self._episode)
        return response

    def destroy_node(self) -> None:
        if self.recorder is not None:
            path = self.recorder.write(Path(self.record))
            self.get_logger().info(f"recording: {path or 'no frame captured'}")
        self.robot.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = SimNode()
        spin_until_shutdown(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:  # bad parameters: say so, no traceback
        print(f"sim_node: {exc}", file=sys.stderr)
        code = 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
