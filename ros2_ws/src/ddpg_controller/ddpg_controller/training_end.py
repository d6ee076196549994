"""How a training node's run ends: one home for the controller node and the fleet's learner node.

At the end of training the learner thread stops, the agent is checkpointed, and the exported
policy, ``summary.yaml`` and the learning curve are written (a Ctrl-C meanwhile waits for them).
On a Ctrl-C before that the learner stops, the agent is checkpointed and the summary so far is
written with ``complete: false``, so nothing learned is lost and ``resume`` continues the run.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import rclpy

from ddpg_controller.run_directory import RunDirectory, completes_despite_ctrl_c

if TYPE_CHECKING:
    from ddpg_controller.learner import BackgroundLearner
    from ddpg_controller.learning.ddpg import DDPG
    from ddpg_controller.tasks import Task


class TrainingEnd:
    """Mixin for a training ``rclpy.node.Node``, listed before ``Node`` among its bases. The node
    sets the attributes below and gives ``checkpoint_state``, ``node_summary`` and
    ``results_title``."""

    agent: DDPG
    learner: BackgroundLearner
    run: RunDirectory
    task: Task
    settings: dict[str, Any]
    env_steps: int
    eval_history: list[tuple[int, float]]
    started: float  # time.monotonic() at the node's start
    done: bool

    def checkpoint_state(self) -> dict[str, Any]:
        """What the node saves beside the agent to resume where it stopped (its step counts)."""
        raise NotImplementedError

    def node_summary(self) -> dict[str, Any]:
        """The node's own figures in ``summary.yaml`` (latencies, counters)."""
        raise NotImplementedError

    def results_title(self) -> str:
        raise NotImplementedError

    def save_checkpoint(self) -> None:
        """The agent, the learner's replay (``save_replay``) and ``checkpoint_state()``."""
        state = self.checkpoint_state()
        self.run.save_agent(self.agent, self.learner, state, self.settings["save_replay"])
        self.get_logger().info(f"checkpoint at step {self.env_steps}: {self.run.checkpoint}")

    def summary(self, final_eval_return: float | None) -> dict[str, Any]:
        """``summary.yaml``: the outcome, throughput and the node's figures; ``None`` = stopped
        before the final evaluation."""
        wall = time.monotonic() - self.started
        finished = final_eval_return is not None
        return {
            "task": self.task.name,
            "seed": self.settings["seed"],
            "env_steps": self.env_steps,
            "updates": self.agent.num_updates,
            "updates_per_env_step": self.agent.num_updates / max(1, self.env_steps),
            "updates_dropped": self.learner.updates_dropped,
            "final_eval_return": final_eval_return,
            "eval_history": [[step, value] for step, value in self.eval_history],
            "solved_threshold": self.task.solved_threshold,
            "solved": finished and final_eval_return >= self.task.solved_threshold,
            # The evaluation of the untrained actor at step 0 (None when the run resumed).
            "untrained_return": next((v for step, v in self.eval_history if step == 0), None),
            "complete": finished,  # false: stopped before its end
            "wall_time_s": wall,
            "env_steps_per_s": self.env_steps / wall,
            **self.node_summary(),
            # Only a file that exists: a finished run's (write_results exports it with the
            # summary), or an earlier one's; an interrupted first run has none.
            **({"policy": str(self.run.policy)} if finished or self.run.policy.exists() else {}),
        }

    def record_video(self, name: str, act: Callable[[Any], Any]) -> None:
        """``<run_dir>/<name>``: a few episodes of ``act`` in the simulator (``video``,
        ``video_episodes``); a run without a simulator's video is still a run, so a failure is
        a warning."""
        if not self.settings["video"]:
            return
        started = time.monotonic()
        try:
            path = self.run.write_video(
                name,
                self.task,
                act,
                self.env_steps,
                self.settings["video_episodes"],
                self.settings["seed"],
            )
        except Exception as exc:  # e.g. a learner's computer without PyBullet
            self.get_logger().warning(f"no video {name}: {type(exc).__name__}: {exc}")
            return
        self.get_logger().info(
            f"video {path} ({path.stat().st_size / 1e3:.0f} kB) in "
            f"{time.monotonic() - started:.1f} s"
        )

    def record_periodic_video(self) -> None:
        """``videos/step_<N>.mp4`` of the current deterministic policy (``video_every_steps``),
        in a thread of its own with a copy of the acting policy: the control loop never waits."""
        policy = copy.deepcopy(self.learner.policy)
        name = f"videos/step_{self.env_steps}.mp4"
        threading.Thread(target=self.record_video, args=(name, policy), daemon=True).start()

    @completes_despite_ctrl_c
    def finish(self, final_eval_return: float) -> None:
        """Training is over: checkpoint, export the deterministic policy, summarise, plot, and a
        video of the exported policy."""
        from ddpg_controller.learning.export import load_policy

        self.done = True
        self.learner.stop()
        self.save_checkpoint()
        summary = self.summary(final_eval_return)
        self.run.write_results(self.agent, self.task, self.env_steps, summary, self.results_title())
        self.record_video("rollout.mp4", load_policy(self.run.policy))
        self.get_logger().info(f"training done: {summary}")
        if self.settings["shutdown_when_done"]:
            rclpy.try_shutdown()

    def close(self) -> None:
        """On Ctrl-C: stop the learner, then checkpoint, so nothing learned is lost."""
        if not self.done:
            self.learner.stop()
            self.save_checkpoint()
            self.run.write_summary(self.summary(None))  # the counters so far
            self.get_logger().warning(self.run.incomplete_reason(self.env_steps))
        self.run.close()
