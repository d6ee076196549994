"""The fleet's actor node: one per robot, beside it; acts with the newest policy it has received.

State in: ``joint_states`` and the task's signal topics (in the robot's namespace), as the
controller node. Command out: ``<controller_name>/commands`` through the safety layer of deploy
in real time (in lockstep the simulator is the robot and commands stay the gym env's). Actions:
uniformly random while the learner says it is warming up, then μ(s) + the learner's exploration
noise, μ(s) alone in evaluation episodes (which the learner asks for on ``/fleet/evaluate``, and
which run one policy: a newer one waits for their end); the safe command (hold, for position
control) until a first policy has arrived, once the learner says training has ended (its last
policy), and in real time while the learner has not been heard from (a policy or an
acknowledgement) for ``learner_timeout`` s: no robot explores with no one learning.
Each transition (s, a, r, s′, terminated, truncated, the policy version that
acted, episode, step) joins a batch that goes to the learner on ``/fleet/transitions`` every
``send_period`` s. The control path never waits for the learner or the network: batches are kept
until the learner acknowledges them (at most ``max_queued_batches``, the oldest dropped and
counted), and the unacknowledged ones go again when a learner (re)appears. Policies of another
network layout, or older than the one in use, are refused and counted. Counters go to the learner
with every episode report (``/fleet/episodes``). Message layouts:
:mod:`ddpg_controller.fleet_protocol`.
"""

from __future__ import annotations

import random
import sys
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray, String

from ddpg_controller.controller_node import PARAMETERS as CONTROLLER_PARAMETERS
from ddpg_controller.fleet_protocol import (
    EPISODES_TOPIC,
    EVALUATE_TOPIC,
    POLICY_TOPIC,
    STORED_TOPIC,
    TRANSITIONS_TOPIC,
    FleetMessageError,
    Outbox,
    PolicyWeights,
    actor_key,
    decode_json,
    decode_policy,
    encode_json,
    encode_transitions,
    transition_row,
)
from ddpg_controller.learner_node import POLICY_QOS, REPORT_QOS, TRANSITION_QOS
from ddpg_controller.learning.config import NoiseConfig
from ddpg_controller.learning.networks import Actor
from ddpg_controller.learning.noise import make_noise
from ddpg_controller.learning.normalizer import FrozenNormalizer
from ddpg_controller.learning.policy import ActingPolicy
from ddpg_controller.robot_link import RobotLink
from ddpg_controller.ros_common import publish_unless_shut_down, run_node
from ddpg_controller.ros_params import declare_all
from ddpg_controller.tasks import RobotState, Task, load_task

_AS_THE_CONTROLLER = ("task_file", "controller_name", "reset_service")
PARAMETERS = {
    "task": ("pendulum", "Built-in task: observation, reward and bounds (as the learner's)."),
    "robot_id": ("", "This robot's name in the fleet; empty = the node's namespace."),
    **{name: CONTROLLER_PARAMETERS[name] for name in _AS_THE_CONTROLLER},
    "lockstep": (
        False,
        "The simulator steps once per command (no safety layer); false: real time.",
    ),
    "seed": (0, "Seed of this robot's exploration noise and warm-up actions."),
    "learner_timeout": (
        5.0,
        "Real time: seconds without a policy or acknowledgement from the learner before the "
        "robot holds (the safe command) until it is heard again; <= 0: never.",
    ),
    "send_period": (0.1, "Seconds between transition batches sent to the learner."),
    "max_queued_batches": (
        3000,
        "Batches kept until the learner acknowledges them (while none listens, say); beyond it "
        "the oldest are dropped and counted.",
    ),
}


def acting_policy_for(weights: PolicyWeights, task: Task) -> ActingPolicy:
    """A CPU policy with the network layout ``weights`` announce (not loaded yet)."""
    actor = Actor(task.observation_dim, task.action_dim, weights.actor_hidden)
    normalizer = FrozenNormalizer.identity(task.observation_dim)
    return ActingPolicy(actor, normalizer, np.array(task.action_low), np.array(task.action_high))


def load_weights(policy: ActingPolicy, weights: PolicyWeights) -> str:
    """Load ``weights`` into ``policy``; or leave it and say why not ("" when loaded)."""
    obs_dim = policy.obs_dim
    shapes = {"obs_mean": (obs_dim,), "obs_std": (obs_dim,)} | policy.parameter_shapes
    needed = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    given = {name: block.size for name, block in weights.blocks.items()}
    if given != needed:
        return f"blocks {given}, this policy needs {needed}"
    blocks = weights.blocks
    parameters = [
        torch.from_numpy(blocks[name].astype(np.float32).reshape(shape))
        for name, shape in policy.parameter_shapes.items()
    ]
    normalizer = FrozenNormalizer(blocks["obs_mean"], blocks["obs_std"], weights.obs_clip)
    policy.load(parameters, normalizer)
    return ""


@dataclass
class _Pending:
    """A state to act on."""

    stamp_ns: int
    state: RobotState
    observation: np.ndarray
    previous_action: np.ndarray
    exploring: bool


@dataclass
class _Acted:
    """The last state this actor acted on, and how."""

    stamp_ns: int
    state: RobotState
    observation: np.ndarray
    action: np.ndarray  # env units
    previous_action: np.ndarray  # zeros at an episode start
    policy_version: int


class FleetActorNode(Node):
    def __init__(self) -> None:
        super().__init__("actor")
        self.settings = declare_all(self, PARAMETERS)
        self.task = load_task(self.settings["task_file"] or self.settings["task"])
        self.robot = self.settings["robot_id"] or self.get_namespace().strip("/") or self.get_name()
        controller = self.settings["controller_name"] or self.task.controller_name
        torch.set_num_threads(1)
        self.session = random.SystemRandom().randrange(2**31)
        self.rng = np.random.default_rng(self.settings["seed"])
        self.period_ns = round(self.task.control_period * 1e9)

        self.policy: ActingPolicy | None = None
        self.weights: PolicyWeights | None = None  # the header of the policy in use
        self.noise = None
        self.counters = {
            "transitions": 0,
            "policies_loaded": 0,
            "policies_refused_shape": 0,
            "policies_refused_stale": 0,
            "policies_malformed": 0,
            "nonfinite_states": 0,
        }
        self.outbox = Outbox(
            self.robot,
            self.session,
            self.task.observation_dim,
            self.task.action_dim,
            self.settings["max_queued_batches"],
        )
        self.learner_listening = False
        self.training_done = False  # the learner's last policy said so
        self.learner_heard = time.monotonic()  # a policy or an acknowledgement, steady clock
        self.holding: str | None = None  # why this robot holds instead of acting

        self.last: _Acted | None = None
        self.episode = 0
        self.episode_step = 0
        self.episode_return = 0.0
        self.evaluation_requests: deque[dict] = deque()
        self.evaluation: dict | None = None  # the request whose episodes run now
        self.answered: set[str] = set()  # evaluation requests taken
        self.held_policy: Float64MultiArray | None = None
        self.waiting: _Pending | None = None  # lockstep: a state held for the learner
        self.steps_on_policy = 0

        self.transition_publisher = self.create_publisher(
            Float64MultiArray, TRANSITIONS_TOPIC, TRANSITION_QOS
        )
        self.report_publisher = self.create_publisher(String, EPISODES_TOPIC, REPORT_QOS)
        self.create_subscription(Float64MultiArray, POLICY_TOPIC, self._on_policy, POLICY_QOS)
        self.create_subscription(String, EVALUATE_TOPIC, self._on_evaluate, REPORT_QOS)
        self.create_subscription(String, STORED_TOPIC, self._on_stored, REPORT_QOS)
        reset, lockstep = self.settings["reset_service"], self.settings["lockstep"]
        self.link = RobotLink(self, self, self.task, controller, reset, lockstep)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(self.settings["send_period"], self._send, clock=steady)
        self.get_logger().info(
            f"actor {self.robot} (session {self.session}) for {self.task.name} on "
            f"{controller}/commands; waiting for a policy on {POLICY_TOPIC}"
        )

    # ---- from the learner ----------------------------------------------------------------------
    def _on_policy(self, msg: Float64MultiArray) -> None:
        self.learner_heard = time.monotonic()
        if self.evaluation is not None:
            self.held_policy = msg  # an evaluation runs one policy: the newest waits for its end
            return
        self.held_policy = None
        try:
            weights = decode_policy(msg)
        except FleetMessageError as error:
            self.counters["policies_malformed"] += 1
            self.get_logger().error(str(error), throttle_duration_sec=1.0)
            return
        same_run = self.weights is not None and weights.run == self.weights.run
        if same_run and weights.version < self.weights.version:
            self.counters["policies_refused_stale"] += 1
            return
        policy = self.policy or acting_policy_for(weights, self.task)
        mismatch = load_weights(policy, weights)
        if mismatch:
            self.counters["policies_refused_shape"] += 1
            self.get_logger().error(
                f"policy {weights.version} refused: {mismatch}", throttle_duration_sec=1.0
            )
            return
        if self.policy is None:
            self.policy = policy
            self.noise = make_noise(
                NoiseConfig(**weights.noise), self.task.action_dim, self.settings["seed"]
            )
        self.weights = weights
        self.training_done = weights.training_done
        self.steps_on_policy = 0  # actions taken on this policy (lockstep allowance)
        self.counters["policies_loaded"] += 1
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            self._act(waiting)

    def _on_evaluate(self, msg: String) -> None:
        try:
            request = decode_json(msg)
        except FleetMessageError:
            return
        if request.get("robot") == self.robot and request.get("id") not in self.answered:
            self.answered.add(request["id"])
            self.evaluation_requests.append(request)

    def _on_stored(self, msg: String) -> None:
        try:
            stored = decode_json(msg).get(actor_key(self.robot, self.session), -1)
        except FleetMessageError:
            return
        self.learner_heard = time.monotonic()
        self.outbox.acknowledge(stored)

    # ---- episodes ------------------------------------------------------------------------------
    def begin_episode(self) -> None:
        self.last = None
        if self.evaluation is None and self.evaluation_requests:
            self.evaluation = {**self.evaluation_requests.popleft(), "done": 0}
        self.link.reset()

    def on_episode_start(self) -> None:
        self.episode_step = 0
        self.episode_return = 0.0
        if self.noise is not None:
            self.noise.reset()

    def _end_episode(self, version: int) -> None:
        report = {
            "robot": self.robot,
            "session": self.session,
            "episode": self.episode,
            "kind": "eval" if self.evaluation else "train",
            "return": self.episode_return,
            "steps": self.episode_step,
            "policy_version": version,
            "counters": {**self.counters, **self.outbox.counters},
        }
        self.episode += 1
        if self.evaluation is not None:
            report["evaluation"] = self.evaluation["id"]
            self.evaluation["done"] += 1
            if self.evaluation["done"] >= self.evaluation["episodes"]:
                self.evaluation = None
                if self.held_policy is not None:
                    self._on_policy(self.held_policy)
        self._send()
        publish_unless_shut_down(self.report_publisher, encode_json(report), self.context)
        self.begin_episode()

    # ---- control loop --------------------------------------------------------------------------
    def on_state(self, stamp_ns: int, state: RobotState, received: float) -> None:
        if self.last and stamp_ns <= self.last.stamp_ns:
            return  # a duplicate or out of order: never act twice on one state
        previous_action = self.last.action if self.last else np.zeros(self.task.action_dim)
        exploring = self.evaluation is None
        observation = self.task.observation(state, previous_action, self.rng if exploring else None)
        if not all(np.isfinite(v).all() for v in (state.position, state.velocity, observation)):
            self.counters["nonfinite_states"] += 1
            self.last = None  # no transition across the bad state
            self.link.hold(stamp_ns, state, "non-finite robot state: safe command")
            return
        holding = self._why_hold()
        if holding != self.holding:
            self.holding = holding
            self.get_logger().warning(holding or "the learner is back: acting again")
        if holding:
            self.last = None  # no transition while holding
            self.link.hold(stamp_ns, state, holding)
            return
        if self.last is not None:
            if stamp_ns - self.last.stamp_ns > 1.5 * self.period_ns:
                self.last = None  # a gap in the stream: no transition across it
            elif self._close_transition(state, observation, exploring):
                return  # the episode ended; a reset is under way
        if self.policy is None:
            self.link.hold(stamp_ns, state, "no policy yet: safe command")
            return
        self._act(_Pending(stamp_ns, state, observation, previous_action, exploring))

    def _why_hold(self) -> str | None:
        """Why this robot must not act now (None: it may)."""
        if self.training_done:
            return "training has ended: safe command (hold) until a new run's policy comes"
        timeout = self.settings["learner_timeout"]
        silent = time.monotonic() - self.learner_heard
        if not self.settings["lockstep"] and timeout > 0.0 and silent > timeout:
            return (
                f"no policy or acknowledgement from the learner for {silent:.1f} s "
                f"(learner_timeout {timeout} s): safe command (hold) until it is heard again"
            )
        return None

    def _act(self, pending: _Pending) -> None:
        """μ(s) (+ noise while exploring; uniform while the learner warms up) to the robot. In
        lockstep a training step waits once this robot has taken the steps the policy allows, for
        a newer one (the simulator waits too), unless no learner is there to send one."""
        allowed = self.weights.steps_per_robot
        waits = (
            self.settings["lockstep"] and pending.exploring and 0 <= allowed <= self.steps_on_policy
        )
        if waits and self.learner_listening:
            self.waiting = pending
            return
        observation = pending.observation
        if pending.exploring and self.weights.warmup:
            action = self.rng.uniform(self.task.action_low, self.task.action_high)
        else:
            action = self.policy(observation)
            if pending.exploring and self.noise is not None:
                span = self.task.action_high - self.task.action_low
                unit = 2.0 * (action - self.task.action_low) / span - 1.0
                unit = np.clip(unit + self.weights.noise_scale * self.noise(), -1.0, 1.0)
                action = self.task.action_low + (unit + 1.0) * 0.5 * span
        self.steps_on_policy += pending.exploring  # evaluation steps add no transition
        self.last = _Acted(
            pending.stamp_ns,
            pending.state,
            observation,
            self.link.act(action, pending.stamp_ns, pending.state),
            pending.previous_action,
            self.weights.version,
        )

    def _close_transition(
        self, state: RobotState, observation: np.ndarray, exploring: bool
    ) -> bool:
        """Record (s, a, r, s', terminated, truncated); True when the episode ends here."""
        last = self.last
        reward = self.task.reward(last.state, last.action, state, last.previous_action)
        terminated = self.task.terminated(state)
        self.episode_return += reward
        self.episode_step += 1
        truncated = not terminated and self.episode_step >= self.task.max_episode_steps
        if exploring:
            self.outbox.add(
                transition_row(
                    self.episode,
                    self.episode_step - 1,
                    last.policy_version,
                    time.time(),
                    reward,
                    terminated,
                    truncated,
                    last.observation,
                    last.action,
                    observation,
                )
            )
            self.counters["transitions"] += 1
        if terminated or truncated:
            self.last = None
            self._end_episode(last.policy_version)
            return True
        return False

    # ---- to the learner ------------------------------------------------------------------------
    def _send(self) -> None:
        """Batch the new transitions; send them while a learner listens. A learner that
        (re)appears gets every batch it has not acknowledged, so nothing is lost across its
        restart; it stores each batch once."""
        self.outbox.seal()
        listening = self.transition_publisher.get_subscription_count() > 0
        returned = listening and not self.learner_listening
        self.learner_listening = listening
        if not listening:
            if self.waiting is not None:  # it was waiting for a learner that has gone
                waiting, self.waiting = self.waiting, None
                self._act(waiting)
            return  # no learner: the batches wait for one
        for batch in self.outbox.to_send(learner_returned=returned):
            publish_unless_shut_down(
                self.transition_publisher, encode_transitions(batch), self.context
            )

    def close(self) -> None:
        self.get_logger().info(f"actor {self.robot}: {self.counters | self.outbox.counters}")


def main(args: list[str] | None = None) -> int:
    return run_node(FleetActorNode, "actor_node", args)


if __name__ == "__main__":
    sys.exit(main())
