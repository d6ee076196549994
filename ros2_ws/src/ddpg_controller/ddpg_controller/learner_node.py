"""The fleet's learner node: one replay buffer and one DDPG learner fed by any number of robots.

Actor nodes (``actor_node``, one per robot) stream transition batches on ``/fleet/transitions``;
this node stores them (each batch once and in order per actor, never a non-finite row), trains in
the ``BackgroundLearner`` thread at ``ddpg.updates_per_step`` over the whole fleet's transitions,
and publishes the policy every ``policy_publish_every`` updates on ``/fleet/policy`` (transient
local: a robot that joins or restarts gets the newest at once). It runs the evaluation schedule
through its robots (``evaluators``, or the robot heard from last for one that is silent) and
writes the run directory as the single-robot controller does: metrics.csv (one row per episode,
the robot in column ``robot``), checkpoints (with the per-actor sequence numbers, so a restarted
learner stores no batch twice), summary.yaml with the fleet's counters, the exported policy.

Named ``controller`` (in namespace ``fleet`` when launched), so the task's parameter file
configures it through its ``/**/controller`` section exactly as it configures the single-robot
controller; it declares the controller's learning parameters (same names and descriptions) plus
its own below. Message layouts: :mod:`ddpg_controller.fleet_protocol`.

Real time (``lockstep: false``): robots never wait; the learner holds the updates-per-step ratio
as a ceiling, catches up at most ``max_update_backlog`` owed updates and drops (counts) the rest.
Lockstep (simulated robots that step once per command): no update is dropped; each policy carries
the steps each robot may take on it before the learner would owe more than ``max_update_backlog``
updates, and a robot that has taken them holds its next command (simulated time stands still)
until a newer policy comes (published every ``LOCKSTEP_PUBLISH_S`` while the learner moves on), so
the fleet learns with the configured ratio, as the single-robot controller does in lockstep.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections import defaultdict, deque

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, String

from ddpg_controller import controller_node
from ddpg_controller.diagnostics import learner_diagnostics
from ddpg_controller.fleet_protocol import (
    EPISODES_TOPIC,
    EVALUATE_TOPIC,
    POLICY_TOPIC,
    STORED_TOPIC,
    TRANSITIONS_TOPIC,
    FleetMessageError,
    Inbox,
    PolicyWeights,
    decode_json,
    decode_transitions,
    encode_json,
    encode_policy,
)
from ddpg_controller.latency import LatencyMeter
from ddpg_controller.learner import BackgroundLearner, make_agent
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.schedule import TrainingSchedule
from ddpg_controller.ros_common import run_node
from ddpg_controller.ros_params import declare_all, declare_dataclass
from ddpg_controller.run_directory import (
    FLEET_COUNTERS,
    RunDirectory,
    default_run_dir,
)
from ddpg_controller.tasks import load_task
from ddpg_controller.training_end import TrainingEnd

_SHARED = (
    "task",
    "lockstep",
    "task_file",
    "total_steps",
    "seed",
    "run_dir",
    "resume",
    "eval_every_steps",
    "eval_episodes",
    "final_eval_episodes",
    "checkpoint_every_steps",
    "save_replay",
    "max_update_backlog",
    "torch_threads",
    "shutdown_when_done",
    "video",
    "video_episodes",
    "video_every_steps",
)
PARAMETERS = {name: controller_node.PARAMETERS[name] for name in _SHARED} | {
    "policy_publish_every": (20, "Learner updates between policy publications to the actors."),
    "evaluators": (
        ["robot_0"],
        "Robots that share the evaluation episodes (each with the policy it holds when asked; "
        "the others keep training). One silent for 30 s is replaced by the robot heard last.",
    ),
    "stop_when_solved": (
        False,
        "End training at the first evaluation whose mean reaches the task's solved_threshold.",
    ),
}
# Transitions: reliable, deep enough for a burst of queued batches from a returning actor.
TRANSITION_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000
)
# The policy: the newest one, kept for robots that join later.
POLICY_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
)
REPORT_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100
)
EVALUATION_RESEND_S = 5.0  # an evaluation request unanswered this long goes out again
EVALUATOR_SILENT_S = 30.0  # the designated evaluator silent this long: ask another robot
ROBOT_ACTIVE_S = 10.0  # a robot heard from within this counts in the lockstep allowance
LOCKSTEP_PUBLISH_S = 0.05  # lockstep: the longest a robot waits for a fresh allowance


class FleetLearnerNode(TrainingEnd, Node):
    def __init__(self) -> None:
        super().__init__("controller")
        self.settings = declare_all(self, PARAMETERS)
        self.config = DDPGConfig.from_dict(declare_dataclass(self, "ddpg", DDPGConfig))
        self.task = load_task(self.settings["task_file"] or self.settings["task"])
        self.agent = make_agent(
            self.task, self.config, self.settings["seed"], self.settings["torch_threads"]
        )
        self.run = RunDirectory(self.settings["run_dir"] or default_run_dir(self.task.name))
        self.schedule = TrainingSchedule(
            self.settings["total_steps"],
            self.settings["eval_every_steps"],
            self.settings["checkpoint_every_steps"],
            self.settings["video_every_steps"],
        )
        self.env_steps = 0
        self.episodes = 0
        self.inbox = Inbox()
        self.counters: dict[str, int] = defaultdict(int)
        self.steps_by_robot: dict[str, int] = defaultdict(int)
        self.actor_counters: dict[str, dict[str, int]] = {}  # the newest each robot reported
        self.last_heard: dict[str, float] = {}
        if self.settings["resume"]:
            self._resume()
        self.run.write_config({**self.settings, "ddpg": self.config.to_dict()})
        self.staleness: deque[int] = deque(maxlen=20_000)  # updates: acting policy -> stored
        self.transition_latency = LatencyMeter()  # robot -> replay, wall clock
        self.started = time.monotonic()
        self.done = False
        self.final_eval = False
        self.evaluation: dict | None = None  # the request under way and its returns
        self.eval_history: list[tuple[int, float]] = []
        self.evaluations_begun = 0
        # Request ids unique to this learner process: a restarted learner's are new to the robots.
        self.session = random.SystemRandom().randrange(2**31)

        self.policy_publisher = self.create_publisher(Float64MultiArray, POLICY_TOPIC, POLICY_QOS)
        self.evaluate_publisher = self.create_publisher(String, EVALUATE_TOPIC, REPORT_QOS)
        self.stored_publisher = self.create_publisher(String, STORED_TOPIC, REPORT_QOS)
        self.create_subscription(
            Float64MultiArray, TRANSITIONS_TOPIC, self._on_transitions, TRANSITION_QOS
        )
        self.create_subscription(String, EPISODES_TOPIC, self._on_episode, REPORT_QOS)
        self.learner = BackgroundLearner(
            self.agent,
            lockstep=self.settings["lockstep"],
            sync_every=self.settings["policy_publish_every"],
            max_backlog=self.settings["max_update_backlog"],
            on_progress=self._on_learner_progress,
        )
        self.published_progress = (-1, -1)
        self.publish_policy()
        if self.settings["lockstep"]:
            self.create_timer(LOCKSTEP_PUBLISH_S, self._publish_if_robots_wait)
        if self.env_steps == 0 and self.settings["eval_every_steps"]:
            self._begin_evaluation(self.settings["eval_episodes"])  # the untrained policy
        self.create_timer(1.0, self._resend_evaluation)
        self.create_timer(0.5, self._acknowledge)
        self.learner.start()
        self.diagnostics = learner_diagnostics(self)  # /diagnostics: learner health, 1 Hz
        self.get_logger().info(
            f"fleet learner for {self.task.name}: run dir {self.run.path}, device "
            f"{self.agent.device}, policy every {self.settings['policy_publish_every']} updates"
        )

    # ---- policy out ----------------------------------------------------------------------------
    def publish_policy(self, training_done: bool = False) -> None:
        """The learner's acting copy, as the actors load it (thread-safe: either thread);
        ``training_done``: the last one, after which the actors hold their robots still."""
        noise = self.config.noise
        weights = PolicyWeights(
            run=str(self.run.path.resolve()),
            version=self.agent.num_updates,
            published_unix_s=time.time(),
            env_steps=self.env_steps,
            warmup=self.agent.total_steps < self.config.warmup_steps,
            steps_per_robot=self._steps_per_robot(),
            noise=dataclasses.asdict(noise),
            noise_scale=float(self.agent.noise_schedule(self.agent.total_steps)),
            actor_hidden=list(self.config.actor_hidden),
            blocks=self.learner.policy.named_arrays(),
            obs_clip=self.config.observation_clip,
            training_done=training_done,
        )
        self.published_progress = (weights.version, self.agent.total_steps)
        message = encode_policy(weights)
        self.counters["policy_bytes"] += len(message.data) * 8
        self.counters["policies_published"] += 1
        self.policy_publisher.publish(message)

    def _steps_per_robot(self) -> int:
        """Lockstep: the fleet's steps before the learner would owe more than
        ``max_update_backlog`` updates, shared among the robots heard from lately; -1 (no limit)
        in real time."""
        if not self.settings["lockstep"]:
            return -1
        config = self.config
        limit = self.agent.learning_starts - 1
        limit += (
            self.agent.num_updates + self.settings["max_update_backlog"]
        ) / config.updates_per_step
        now = time.monotonic()
        robots = sum(now - heard < ROBOT_ACTIVE_S for heard in self.last_heard.values())
        return max(0, int((limit - self.agent.total_steps) / max(1, robots)))

    def _publish_if_robots_wait(self) -> None:
        """Lockstep: a policy with a fresh allowance whenever the learner has moved on (the
        robots may be waiting for one: a learner that has caught up publishes nothing else)."""
        progress = (self.agent.num_updates, self.agent.total_steps)
        if progress != self.published_progress:
            self.publish_policy()

    def _on_learner_progress(self) -> None:
        if not self.context.ok():
            return  # Ctrl-C: nothing to publish to
        if self.learner.failure is not None:
            self.get_logger().error("the learner thread died:\n" + self.learner.failure)
            rclpy.try_shutdown()
            return
        if self.learner.updates_done % self.learner.sync_every == 0:
            self.publish_policy()

    # ---- transitions in ------------------------------------------------------------------------
    def _on_transitions(self, msg: Float64MultiArray) -> None:
        if self.done:
            return
        try:
            batch = decode_transitions(msg)
        except FleetMessageError as error:
            self.counters["batches_malformed"] += 1
            self.get_logger().error(str(error), throttle_duration_sec=1.0)
            return
        if (batch.obs_dim, batch.action_dim) != (self.task.observation_dim, self.task.action_dim):
            self.counters["batches_wrong_shape"] += 1
            self.get_logger().error(
                f"{batch.robot}: transitions of {batch.obs_dim} observations and "
                f"{batch.action_dim} actions; the task has {self.task.observation_dim} and "
                f"{self.task.action_dim}",
                throttle_duration_sec=1.0,
            )
            return
        missing = self.inbox.accept(batch)
        if missing is None:
            self.counters["batches_duplicate_or_late"] += 1  # stored already, or older than one
            return
        self.counters["batches_missing"] += missing
        self.counters["batches_stored"] += 1
        self.counters["transition_bytes"] += len(msg.data) * 8
        finite = np.isfinite(batch.rows).all(axis=1)
        self.counters["transitions_nonfinite"] += int((~finite).sum())
        now = time.time()
        for i in np.flatnonzero(finite):
            self.agent.observe(
                batch.obs[i],
                batch.actions[i],
                float(batch.column("reward")[i]),
                batch.next_obs[i],
                bool(batch.column("terminated")[i]),
            )
            self.staleness.append(self.agent.num_updates - int(batch.column("policy_version")[i]))
            self.transition_latency.record(now - batch.column("created_unix_s")[i])
        stored = int(finite.sum())
        self.env_steps += stored
        self.steps_by_robot[batch.robot] += stored
        self.last_heard[batch.robot] = time.monotonic()
        self.learner.notify()

    def _acknowledge(self) -> None:
        """The last batch stored from each actor: it may forget those (fleet_protocol.Outbox)."""
        self.stored_publisher.publish(encode_json(self.inbox.sequences))

    # ---- episodes and evaluations --------------------------------------------------------------
    def _on_episode(self, msg: String) -> None:
        try:
            report = decode_json(msg)
            robot, kind, episode_return = report["robot"], report["kind"], float(report["return"])
        except (FleetMessageError, KeyError, TypeError, ValueError) as error:
            self.counters["reports_malformed"] += 1
            self.get_logger().error(f"episode report: {error}", throttle_duration_sec=1.0)
            return
        if self.done:
            return
        self.last_heard[robot] = time.monotonic()
        self.actor_counters[robot] = dict(report.get("counters", {}))
        if kind == "eval":
            if self.evaluation is None or report.get("evaluation") != self.evaluation["id"]:
                return  # an answer to a request given up on
            self.evaluation["returns"].append(episode_return)
            self.evaluation["versions"].append(int(report.get("policy_version", -1)))
            self.evaluation["answered"].add(robot)
            self._log_metrics("eval", episode_return, robot)
            if len(self.evaluation["returns"]) >= self.evaluation["episodes"]:
                self._finish_evaluation()
            return
        self.episodes += 1
        self._log_metrics("train", episode_return, robot)
        due = self.schedule.due(self.env_steps)
        if due.checkpoint:
            self.save_checkpoint()
        if due.video:
            self.record_periodic_video()
        if self.evaluation is not None:
            return  # the schedule's next evaluation waits for this one
        if due.final:
            self.final_eval = True
            self._begin_evaluation(self.settings["final_eval_episodes"])
        elif due.evaluation:
            self._begin_evaluation(self.settings["eval_episodes"])

    def _begin_evaluation(self, episodes: int) -> None:
        """Share ``episodes`` among the evaluators: with several robots an evaluation is over
        sooner, as training is."""
        self.evaluations_begun += 1
        robots = self._evaluators()
        shares = np.diff(np.linspace(0, max(1, episodes), len(robots) + 1).round()).astype(int)
        self.evaluation = {
            "id": f"{self.session}-{self.evaluations_begun}",
            "episodes": max(1, episodes),
            "returns": [],
            "versions": [],
            "assigned": {robot: int(n) for robot, n in zip(robots, shares, strict=True) if n},
            "answered": set(),
        }
        self._send_evaluation_requests()

    def _send_evaluation_requests(self) -> None:
        evaluation = self.evaluation
        evaluation["sent"] = time.monotonic()
        for robot, episodes in evaluation["assigned"].items():
            if robot not in evaluation["answered"]:
                request = {"robot": robot, "id": evaluation["id"], "episodes": episodes}
                self.evaluate_publisher.publish(encode_json(request))

    def _evaluators(self) -> list[str]:
        """The designated robots; one silent while others were heard from is replaced by the
        robot heard from last."""
        now = time.monotonic()
        chosen = []
        for robot in self.settings["evaluators"]:
            heard = self.last_heard.get(robot)
            if (heard is None or now - heard > EVALUATOR_SILENT_S) and self.last_heard:
                robot = max(self.last_heard, key=self.last_heard.get)
            if robot not in chosen:
                chosen.append(robot)
        return chosen

    def _resend_evaluation(self) -> None:
        evaluation = self.evaluation
        if evaluation is None or self.done:
            return
        if time.monotonic() - evaluation["sent"] > EVALUATION_RESEND_S:
            self._send_evaluation_requests()

    def _finish_evaluation(self) -> None:
        returns, versions = self.evaluation["returns"], self.evaluation["versions"]
        mean = float(np.mean(returns))
        self.evaluation = None
        self.get_logger().info(
            f"evaluation at step {self.env_steps}: return {mean:.1f} ± {np.std(returns):.1f} "
            f"over {len(returns)} episodes of policies {min(versions)}..{max(versions)}"
        )
        self._log_metrics("eval_mean", mean, "")
        self.eval_history.append((self.env_steps, mean))
        solved = self.settings["stop_when_solved"] and mean >= self.task.solved_threshold
        if self.final_eval or solved:
            self.learner.stop()  # no newer policy after the last one
            self.publish_policy(training_done=True)  # the actors stop acting
            self.finish(mean)

    # ---- files ---------------------------------------------------------------------------------
    def _log_metrics(self, kind: str, episode_return: float, robot: str) -> None:
        losses = self.learner.last_losses
        self.run.append_metrics(
            {
                "step": self.env_steps,
                "episode": self.episodes,
                "kind": kind,
                "return": episode_return,
                "critic_loss": losses.get("critic_loss"),
                "actor_loss": losses.get("actor_loss"),
                "updates": self.agent.num_updates,
                "updates_per_s": self.learner.updates_per_second(),
                "wall_time_s": time.monotonic() - self.started,
                "robot": robot,
                **self.fleet_counters(),
            }
        )

    def fleet_counters(self) -> dict[str, int]:
        """``run_directory.FLEET_COUNTERS``: this learner's and the robots' (as last reported)."""
        counters = {**self.counters, "updates_dropped": self.learner.updates_dropped}
        for reported in self.actor_counters.values():
            for name, value in reported.items():
                counters[f"robots_{name}"] = counters.get(f"robots_{name}", 0) + int(value)
        return {name: counters.get(name, 0) for name in FLEET_COUNTERS}

    def checkpoint_state(self) -> dict:
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "sequences": dict(self.inbox.sequences),
            "counters": dict(self.counters),
            "steps_by_robot": dict(self.steps_by_robot),
        }

    def _resume(self) -> None:
        extra = self.run.load_agent(self.agent)
        self.env_steps = int(extra["env_steps"])
        self.episodes = int(extra["episodes"])
        self.inbox = Inbox({key: int(value) for key, value in extra["sequences"].items()})
        self.counters.update(extra["counters"])
        self.steps_by_robot.update(extra["steps_by_robot"])
        self.counters["learner_restarts"] += 1
        self.schedule.resume(self.env_steps)
        self.get_logger().info(f"resumed at step {self.env_steps} from {self.run.checkpoint}")

    def node_summary(self) -> dict:
        return {
            "robots": sorted(self.steps_by_robot),
            "env_steps_by_robot": dict(sorted(self.steps_by_robot.items())),
            "policy_staleness_updates_p50": _percentile(self.staleness, 50),
            "policy_staleness_updates_p99": _percentile(self.staleness, 99),
            "transition_latency_p50_ms": self.transition_latency.percentile_ms(50),
            "transition_latency_p99_ms": self.transition_latency.percentile_ms(99),
            "fleet_counters": self.fleet_counters(),
            "learner_counters": dict(sorted(self.counters.items())),
            "actor_counters": dict(sorted(self.actor_counters.items())),
        }

    def results_title(self) -> str:
        return f"DDPG on {self.task.name}, {len(self.steps_by_robot)} robots"


def _percentile(values: deque[int], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def main(args: list[str] | None = None) -> int:
    return run_node(FleetLearnerNode, "learner_node", args)


if __name__ == "__main__":
    sys.exit(main())
