"""The DDPG controller node: acts on a ros2_control robot and learns from it while it acts.

State in: ``joint_states`` (matched by joint name) and the task's signal topics. Command out:
``<controller_name>/commands`` (std_msgs/Float64MultiArray), reliable. Each new state closes the
previous transition (s, a, r, s', terminated), which goes to the replay buffer; the next action is
μ(s) plus exploration noise while training, μ(s) alone in evaluation episodes. The DDPG updates run
in a background thread (``BackgroundLearner``) so the control loop never waits for one, except in
lockstep: there the state waits until the learner has done the updates owed for the steps so far,
and only then is the action chosen, so every action comes from the policy after exactly the same
updates, whatever the machine's speed (the simulation waits, which costs no simulated time). In
real time the learner holds the same updates-per-step ratio without ever holding a command back.
The control path (state, observation, μ(s) + noise, command) uses only the learner's CPU policy
copy and host arrays: no training tensor, no lock held longer than a copy, no wait on a GPU.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node

from ddpg_controller.diagnostics import learner_diagnostics
from ddpg_controller.latency import LatencyMeter
from ddpg_controller.learner import BackgroundLearner, make_agent
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.init_from import (
    InitSource,
    fine_tuning_config,
    init_agent,
    read_init_source,
)
from ddpg_controller.learning.schedule import TrainingSchedule
from ddpg_controller.robot_link import RobotLink
from ddpg_controller.ros_common import run_node
from ddpg_controller.ros_params import declare_all, declare_dataclass
from ddpg_controller.run_directory import RunDirectory, default_run_dir
from ddpg_controller.tasks import RobotState, load_task
from ddpg_controller.training_end import TrainingEnd

PARAMETERS = {
    "task": ("pendulum", "Built-in task whose observation, reward and bounds the controller uses."),
    "task_file": ("", "Task spec file (YAML); when set it replaces the built-in task."),
    "controller_name": ("", "ros2_control controller to command; empty = the task's default."),
    "reset_service": ("sim/reset", "std_srvs/Trigger service that starts a new episode."),
    "training": (True, "Learn and explore (true), or act with mu(s) only and learn nothing."),
    "lockstep": (
        True,
        "The simulator steps once per command and each command waits for the owed updates; "
        "false: real time, nothing waits.",
    ),
    "total_steps": (20_000, "Environment steps to train for; then evaluate, export and stop."),
    "seed": (0, "Seed of networks, noise, replay sampling and warm-up actions."),
    "run_dir": ("", "Run directory; empty = runs/<task>-<date>-<time>."),
    "resume": (False, "Continue from <run_dir>/checkpoints/last.pt."),
    "init_from": (
        "",
        "Fine-tune: start from this policy.pt or checkpoint (e.g. one trained in simulation); "
        "acts with it from the first step, no random warm-up. Empty: fresh networks.",
    ),
    "init_critic_updates": (
        1_000,
        "init_from a policy.pt (no critic): critic-only updates on the robot's first transitions, "
        "actor frozen, before the actor trains.",
    ),
    "eval_every_steps": (2_000, "Environment steps between deterministic evaluations; 0 = none."),
    "eval_episodes": (5, "Episodes per periodic evaluation."),
    "final_eval_episodes": (10, "Episodes of the evaluation at the end of training."),
    "checkpoint_every_steps": (5_000, "Environment steps between checkpoints (at episode ends)."),
    "save_replay": (True, "Also checkpoint the replay buffer (its own file; 1e6 x 20-D ~ 0.2 GB)."),
    "policy_sync_every": (1, "Learner updates between refreshes of the acting policy copy."),
    "max_update_backlog": (
        100,
        "Real time: owed updates (ddpg.updates_per_step) the learner may catch up in one burst "
        "after falling behind; older owed updates are dropped and counted in summary.yaml.",
    ),
    "torch_threads": (1, "Torch CPU threads of the learner; leave a core for the control loop."),
    "shutdown_when_done": (True, "Shut the node down after training's final evaluation."),
    "video": (
        True,
        "Write <run_dir>/rollout.mp4 (a GIF without ffmpeg) of the final deterministic policy, "
        "rendered offscreen, and frames to TensorBoard; false: no video.",
    ),
    "video_episodes": (3, "Episodes in each video (seeds seed, seed + 1, ...), 160x120 frames."),
    "video_every_steps": (
        0,
        "Environment steps between videos of the current policy (videos/step_<N>.mp4, in a "
        "background thread); 0: only the final one.",
    ),
}


@dataclass
class _Pending:
    """A state the controller has yet to act on."""

    stamp_ns: int
    state: RobotState
    observation: np.ndarray
    received: float
    safe: bool = False


@dataclass
class _Step:
    """What the controller remembers of the last state it acted on."""

    stamp_ns: int
    state: RobotState
    observation: np.ndarray
    action: np.ndarray
    previous_action: np.ndarray  # the action before this one (zeros at an episode start)


class DDPGControllerNode(TrainingEnd, Node):
    def __init__(self) -> None:
        super().__init__("controller")
        self.settings = declare_all(self, PARAMETERS)
        self.config = DDPGConfig.from_dict(declare_dataclass(self, "ddpg", DDPGConfig))
        self.task = load_task(self.settings["task_file"] or self.settings["task"])
        controller = self.settings["controller_name"] or self.task.controller_name
        init = self._init_source()
        self.agent = make_agent(
            self.task, self.config, self.settings["seed"], self.settings["torch_threads"]
        )
        if init is not None and not self.settings["resume"]:
            init_agent(self.agent, init)
            self.get_logger().info(
                f"fine-tuning from {init.kind} {init.path}"
                + (
                    ""
                    if init.has_critic
                    else f"; critic alone for {self.config.actor_delay} updates"
                )
            )
        self.run = RunDirectory(self.settings["run_dir"] or default_run_dir(self.task.name))
        self.env_steps = 0
        self.episodes = 0
        self.schedule = TrainingSchedule(
            self.settings["total_steps"],
            self.settings["eval_every_steps"],
            self.settings["checkpoint_every_steps"],
            self.settings["video_every_steps"],
        )
        if self.settings["resume"]:
            self._resume()
        self.run.write_config(
            {**self.settings, "controller_name": controller, "ddpg": self.config.to_dict()}
        )

        self.learner = BackgroundLearner(
            self.agent,
            lockstep=self.settings["lockstep"],
            sync_every=self.settings["policy_sync_every"],
            max_backlog=self.settings["max_update_backlog"],
            on_progress=self._on_learner_progress,
        )
        # Control latency: from the moment the controller may act on a state to the command's
        # publication. In real time that is from the state's arrival; in lockstep the state first
        # waits for the learner's owed updates, reported apart as lockstep_wait.
        self.latency = LatencyMeter()
        self.lockstep_wait = LatencyMeter()
        self.period_ns = round(self.task.control_period * 1e9)
        # The spec's observation noise (sim-to-real robustness) while training; never on deploy.
        self.noise_rng = (
            np.random.default_rng(self.settings["seed"]) if self.settings["training"] else None
        )
        self.dropped_transitions = 0
        self.started = time.monotonic()

        # Episode bookkeeping.
        self.last: _Step | None = None
        self.episode_step = 0
        self.episode_return = 0.0
        self.evaluating = 0  # evaluation episodes still to run
        self.eval_returns: list[float] = []
        self.eval_history: list[tuple[int, float]] = []  # (env step, mean evaluation return)
        self.final_eval = False
        self.failure_reported = False
        self.pending_state: _Pending | None = None  # waits for the learner in lockstep
        self.pending_lock = threading.Lock()  # the learner thread may act on a waiting state
        if self.settings["training"] and self.env_steps == 0 and self.settings["eval_every_steps"]:
            self._begin_evaluation(self.settings["eval_episodes"])  # the untrained policy's score
        self.done = False

        reset, lockstep = self.settings["reset_service"], self.settings["lockstep"]
        self.link = RobotLink(self, self, self.task, controller, reset, lockstep)
        self.learner.start()
        self.diagnostics = learner_diagnostics(self)  # /diagnostics: learner health, 1 Hz
        self.get_logger().info(
            f"task {self.task.name}: {self.task.observation_dim} observations, "
            f"{self.task.action_dim} actions on {controller}/commands; run dir {self.run.path}; "
            f"device {self.agent.device}; training={self.settings['training']}"
        )

    # ---- episodes ------------------------------------------------------------------------------
    def begin_episode(self) -> None:
        self.last = None
        self.link.reset()

    def on_episode_start(self) -> None:
        self.episode_step = 0
        self.episode_return = 0.0
        self.agent.reset_noise()

    def _end_episode(self) -> None:
        kind = "eval" if self.evaluating else "train"
        self.episodes += 1
        self._log_metrics(kind, self.episode_return)
        if self.evaluating:
            self.eval_returns.append(self.episode_return)
            self.evaluating -= 1
            if not self.evaluating:
                self._finish_evaluation()
        else:
            self._schedule_after_training_episode()
        if self.done:
            return
        self.begin_episode()

    def _schedule_after_training_episode(self) -> None:
        due = self.schedule.due(self.env_steps)
        if due.checkpoint:
            self.save_checkpoint()
        if due.video:
            self.record_periodic_video()
        if due.final:
            self.final_eval = True
            self._begin_evaluation(self.settings["final_eval_episodes"])
        elif due.evaluation:
            self._begin_evaluation(self.settings["eval_episodes"])

    def _begin_evaluation(self, episodes: int) -> None:
        self.evaluating = max(1, episodes)
        self.eval_returns = []

    def _finish_evaluation(self) -> None:
        mean = float(np.mean(self.eval_returns))
        self.get_logger().info(
            f"evaluation at step {self.env_steps}: return {mean:.1f} "
            f"± {np.std(self.eval_returns):.1f} over {len(self.eval_returns)} episodes"
        )
        self._log_metrics("eval_mean", mean)
        self.eval_history.append((self.env_steps, mean))
        if self.final_eval:
            self.finish(mean)

    # ---- control loop --------------------------------------------------------------------------
    def on_state(self, stamp_ns: int, state: RobotState, received: float) -> None:
        if self.done:
            return
        # In lockstep the learner thread may be publishing the command for the state before:
        # the lock waits until it has recorded it as self.last, or this state looks like a gap
        # and its transition is lost (8 of 6,000 on a loaded machine before).
        with self.pending_lock:
            last = self.last
        if last is not None and stamp_ns <= last.stamp_ns:
            return  # duplicate or out of order: never act twice on one state
        observation = self.task.observation(state, self._previous_action(), self.noise_rng)
        finite = all(np.isfinite(v).all() for v in (state.position, state.velocity, observation))
        if not finite:
            self.last = None  # no transition across the bad state
            self._act_when_caught_up(_Pending(stamp_ns, state, observation, received, safe=True))
            return
        if last is not None:
            if stamp_ns - last.stamp_ns > 1.5 * self.period_ns:
                self.dropped_transitions += 1  # a gap in the stream: no transition across it
            elif self._close_transition(state, observation):
                self.learner.notify()
                return  # the episode ended; a reset is under way
        self._act_when_caught_up(_Pending(stamp_ns, state, observation, received))
        # The learner is woken only after the command is out (in lockstep the command waits for
        # it and is published from the learner thread): an update woken mid-act competes with the
        # control path for the GIL (bench control-loop: p99 3.7 ms woken before the act).
        self.learner.notify()

    def _close_transition(self, state: RobotState, observation: np.ndarray) -> bool:
        """Record (s, a, r, s', terminated); True when the episode ends here."""
        last = self.last
        reward = self.task.reward(last.state, last.action, state, last.previous_action)
        terminated = self.task.terminated(state)
        self.episode_return += reward
        self.episode_step += 1
        if not self.evaluating:
            self.env_steps += 1
            if self.settings["training"]:
                self.agent.observe(last.observation, last.action, reward, observation, terminated)
        # Training stops at exactly total_steps: the episode is cut there (a time limit, not a
        # termination) and the final evaluation follows.
        budget_spent = not self.evaluating and self.env_steps >= self.schedule.total_steps
        if terminated or self.episode_step >= self.task.max_episode_steps or budget_spent:
            self.last = None
            self._end_episode()
            return True
        return False

    def _act_when_caught_up(self, pending: _Pending) -> None:
        with self.pending_lock:
            self.pending_state = pending
        self._act_if_caught_up()

    def _act_if_caught_up(self) -> None:
        """Act on the waiting state once the learner owes no update (from either thread)."""
        with self.pending_lock:
            pending = self.pending_state
            if pending is None or not self.learner.caught_up():
                return
            self.pending_state = None
            start = time.perf_counter()
            if pending.safe or self.learner.failure is not None:
                why = "non-finite robot state" if pending.safe else "the learner thread failed"
                self.link.hold(pending.stamp_ns, pending.state, f"{why}: safe command")
            else:
                action = self._choose_action(pending.observation)
                previous = self._previous_action()
                applied = self.link.act(action, pending.stamp_ns, pending.state)
                self.last = _Step(
                    pending.stamp_ns, pending.state, pending.observation, applied, previous
                )
            published = time.perf_counter()
        if self.settings["lockstep"]:
            self.lockstep_wait.record(start - pending.received)
            self.latency.record(published - start)
        else:
            self.latency.record(published - pending.received)

    def _previous_action(self) -> np.ndarray:
        return self.last.action if self.last is not None else np.zeros(self.task.action_dim)

    def _choose_action(self, observation: np.ndarray) -> np.ndarray:
        explore = self.settings["training"] and not self.evaluating
        return self.agent.act(observation, explore=explore, policy=self.learner.policy)

    def _on_learner_progress(self) -> None:
        """Called in the learner thread after each update, or once when it has died.

        The EventsExecutor supports no guard conditions, and publishing is thread-safe, so the
        learner publishes a command it was holding up itself. Once Ctrl-C has shut rclpy down
        there is nothing to publish, and a publish that raced the shutdown is no learner failure.
        """
        if not self.context.ok():
            return
        if self.learner.failure is not None and not self.failure_reported:
            self.failure_reported = True
            self.get_logger().error(
                "the learner thread died; exploring stops and safe commands are published:\n"
                + self.learner.failure
            )
        self._act_if_caught_up()

    # ---- files ---------------------------------------------------------------------------------
    def _log_metrics(self, kind: str, episode_return: float) -> None:
        latency = self.latency.summary_ms()
        losses = self.learner.last_losses
        self.run.append_metrics(
            {
                "step": self.env_steps,
                "episode": self.episodes,
                "kind": kind,
                "return": float(episode_return),
                "critic_loss": losses.get("critic_loss"),
                "actor_loss": losses.get("actor_loss"),
                "updates": self.agent.num_updates,
                "updates_per_s": self.learner.updates_per_second(),
                "latency_p50_ms": latency["p50"],
                "latency_p99_ms": latency["p99"],
                "wall_time_s": time.monotonic() - self.started,
            }
        )

    def checkpoint_state(self) -> dict:
        return {"env_steps": self.env_steps, "episodes": self.episodes}

    def _init_source(self) -> InitSource | None:
        """``init_from``: read it and set the fine-tuning config (also when resuming such a run,
        whose parameters name it, so its config stays the one it started with)."""
        if not self.settings["init_from"]:
            return None
        init = read_init_source(self.settings["init_from"])
        if init.metadata is not None:
            problems = self.task.policy_mismatches(init.metadata)
            if problems:
                raise ValueError(f"init_from: {init.path} is for another task: {problems[0]}")
        self.config = fine_tuning_config(self.config, init, self.settings["init_critic_updates"])
        return init

    def _resume(self) -> None:
        extra = self.run.load_agent(self.agent)
        self.env_steps = int(extra["env_steps"])
        self.episodes = int(extra["episodes"])
        self.schedule.resume(self.env_steps)
        self.get_logger().info(f"resumed at step {self.env_steps} from {self.run.checkpoint}")

    def node_summary(self) -> dict:
        latency = self.latency.summary_ms()
        return {
            "latency_p50_ms": latency["p50"],
            "latency_p99_ms": latency["p99"],
            "latency_max_ms": latency["max"],
            "lockstep_wait_p50_ms": self.lockstep_wait.percentile_ms(50),
            "lockstep_wait_p99_ms": self.lockstep_wait.percentile_ms(99),
            "dropped_transitions": self.dropped_transitions,
        }

    def results_title(self) -> str:
        return f"DDPG on {self.task.name}"


def main(args: list[str] | None = None) -> int:
    return run_node(DDPGControllerNode, "controller_node", args)


if __name__ == "__main__":
    sys.exit(main())
