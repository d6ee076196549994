"""One robot as a learning node sees it: states in, commands out, episodes started by a reset.

The controller node and the fleet's actor node both assemble the robot's state topics
(``joint_states`` matched by joint name, and the task's signals) into ``RobotState``s, start each
episode by calling the robot's reset service, hold a state that arrives before the reset has
answered and drop the states of the episode before it, and publish commands on
``<controller_name>/commands``, through the safety layer when they drive a robot in real time
(reading back the action the robot was given, which their transitions record). This class is
that part, once; each node keeps what it does with a state.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Protocol

import numpy as np
from geometry_msgs.msg import PointStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ddpg_controller.ros_common import (
    COMMAND_QOS,
    STATE_QOS,
    joint_state_by_name,
    publish_unless_shut_down,
    reset_stamp_ns,
    stamp_to_ns,
)
from ddpg_controller.safety import SafetyLayer, task_safety_config
from ddpg_controller.state_assembly import StateAssembler
from ddpg_controller.tasks import RobotState, Task


class EpisodeOwner(Protocol):
    """What a node that learns from the robot does at the link's three moments."""

    def begin_episode(self) -> None:
        """The reset service is up, or an episode has ended: start the next (``link.reset()``)."""

    def on_episode_start(self) -> None:
        """A reset has answered; the episode's first state comes next."""

    def on_state(self, stamp_ns: int, state: RobotState, received: float) -> None:
        """A complete state of the current episode, in arrival order (``received``:
        ``time.perf_counter()`` when its last part arrived)."""


class RobotLink:
    """The robot's topics and reset service on ``node``, for the ``owner`` of its episodes."""

    def __init__(
        self,
        node: Node,
        owner: EpisodeOwner,
        task: Task,
        controller_name: str,
        reset_service: str,
        lockstep: bool,
    ) -> None:
        self._node = node
        self._owner = owner
        self._task = task
        self._assembler = StateAssembler(task.signal_names, lockstep, driven_joints=task.action_dim)
        # Driving a robot in real time (training included), every command passes the safety
        # layer with the task's defaults; in lockstep the simulator is the robot and the
        # commands stay exactly what the gymnasium env would apply.
        self.safety: SafetyLayer | None = None
        if not lockstep:
            self.safety = SafetyLayer(task_safety_config(task))
            self.safety.start(time.monotonic())
        self.episode_start_ns: int | None = None  # None while a reset is under way
        self._deferred: tuple[int, RobotState, float] | None = None

        self._commands = node.create_publisher(
            Float64MultiArray, f"{controller_name}/commands", COMMAND_QOS
        )
        # Signal subscriptions first: when both are ready the executor serves them in this order.
        for name in task.signal_names:
            node.create_subscription(PointStamped, name, partial(self._on_signal, name), STATE_QOS)
        node.create_subscription(JointState, "joint_states", self._on_joint_states, STATE_QOS)
        self._reset_client = node.create_client(Trigger, reset_service)
        # On the steady clock: with use_sim_time, /clock stands still until the first command.
        self._start_timer = node.create_timer(
            0.2, self._start, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )

    def reset(self) -> None:
        """Start a new episode: clear the safety latch, forget the last command and position (the
        reset moves the robot: a command ramping from the last episode's would drive it back at
        its velocity limit) and hold states until the reset answers."""
        if self.safety is not None:
            if self.safety.clear_e_stop():
                self._node.get_logger().warning("safety latch cleared for the new episode")
            self.safety.start(time.monotonic())
        self.episode_start_ns = None
        self._deferred = None
        self._reset_client.call_async(Trigger.Request()).add_done_callback(self._on_reset_done)

    def command(self, command: np.ndarray | None, stamp_ns: int, state: RobotState) -> None:
        """Publish ``command`` for the state at ``stamp_ns``, through the safety layer in real
        time (which may replace it, or publish nothing: then the robot holds its last command)."""
        if self.safety is not None:
            command, reason = self.safety.through(command, stamp_ns, state, time.monotonic())
            if reason:
                self._node.get_logger().error(reason, throttle_duration_sec=1.0)
        if command is not None:
            message = Float64MultiArray(data=command.tolist())
            publish_unless_shut_down(self._commands, message, self._node.context)

    def hold(self, stamp_ns: int, state: RobotState, why: str) -> None:
        """The safe command for the state at ``stamp_ns`` (``why`` is logged, at most once a
        second): in real time the safety layer's (position control holds still at the last
        command), in lockstep the task's hold command."""
        self._node.get_logger().warning(why, throttle_duration_sec=1.0)
        self.command(None if self.safety else self._task.hold_command(state), stamp_ns, state)

    def act(self, action: np.ndarray, stamp_ns: int, state: RobotState) -> np.ndarray:
        """Publish the task's command for the policy's ``action`` and return the action the robot
        was given, which is what a transition must record: the critic learns Q(s, a) of the action
        applied. In lockstep that is ``action`` itself; in real time the safety layer may have
        rate-limited, clipped or replaced the command (the default rate limit alone changes most
        uniformly random warm-up actions), so it is the command in force read back as an action."""
        self.command(self._task.command(action, state), stamp_ns, state)
        if self.safety is None or self.safety.last_command is None:
            return action
        applied = self._task.action_of_command(self.safety.last_command, state)
        return np.clip(applied, self._task.action_low, self._task.action_high)

    def _start(self) -> None:
        if self._reset_client.service_is_ready():
            self._start_timer.cancel()
            self._owner.begin_episode()

    def _on_reset_done(self, future) -> None:
        self.episode_start_ns = reset_stamp_ns(future.result().message)
        self._owner.on_episode_start()
        # The simulator publishes the first state before it answers; it may be here already.
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            self._on_complete_state(*deferred)

    def _on_signal(self, name: str, msg: PointStamped) -> None:
        value = np.array([msg.point.x, msg.point.y, msg.point.z])
        complete = self._assembler.add_signal(name, stamp_to_ns(msg.header.stamp), value)
        if complete is not None:
            self._on_complete_state(*complete, time.perf_counter())

    def _on_joint_states(self, msg: JointState) -> None:
        received = time.perf_counter()
        try:
            position, velocity = joint_state_by_name(msg, self._task.sensed_joint_names)
        except (KeyError, ValueError) as error:
            self._node.get_logger().error(str(error), throttle_duration_sec=1.0)
            return
        complete = self._assembler.add_joints(stamp_to_ns(msg.header.stamp), position, velocity)
        if complete is not None:
            self._on_complete_state(*complete, received)

    def _on_complete_state(self, stamp_ns: int, state: RobotState, received: float) -> None:
        if self.episode_start_ns is None:
            self._deferred = (stamp_ns, state, received)  # the reset has not answered yet
            return
        if stamp_ns < self.episode_start_ns:
            return  # a state of the episode before the reset
        self._owner.on_state(stamp_ns, state, received)
