"""The files a training run leaves behind, so that it can be read, plotted and resumed.

``<run_dir>/config.yaml`` (the resolved parameters), ``metrics.csv``, ``tensorboard/`` events,
``checkpoints/last.pt`` (+ the replay buffer when asked), ``learning_curve.png``, ``policy.pt``,
``summary.yaml`` (the final evaluation, throughput and latency) and ``rollout.mp4`` (a video of the
final policy; ``videos/`` holds periodic ones).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import yaml

from ddpg_controller.learning.atomic import atomic_write

if TYPE_CHECKING:
    from ddpg_controller.learner import BackgroundLearner
    from ddpg_controller.learning.ddpg import DDPG
    from ddpg_controller.tasks import Task

# Fleet training's counters (learner_node): the learner's, then the robots' summed (``robots_``);
# cumulative, on every row the fleet learner writes, empty for a single robot.
FLEET_COUNTERS = (
    "batches_stored",
    "batches_missing",
    "batches_duplicate_or_late",
    "batches_wrong_shape",
    "batches_malformed",
    "transitions_nonfinite",
    "learner_restarts",
    "updates_dropped",
    "robots_batches_dropped",
    "robots_transitions_dropped",
    "robots_policies_refused_shape",
    "robots_policies_refused_stale",
    "robots_policies_malformed",
    "robots_nonfinite_states",
)
METRICS_COLUMNS = (
    "step",
    "episode",
    "kind",
    "return",
    "critic_loss",
    "actor_loss",
    "updates",
    "updates_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "wall_time_s",
    "robot",  # the fleet's robot that ran the episode; empty for a single robot
    *FLEET_COUNTERS,
)


class RunDirectory:
    """Owns one run's directory; every file it writes is complete or absent (temp + rename)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.path / "checkpoints" / "last.pt"
        self.checkpoint.parent.mkdir(exist_ok=True)
        self.policy = self.path / "policy.pt"
        self.metrics = self.path / "metrics.csv"
        self.curve = self.path / "learning_curve.png"
        self.summary = self.path / "summary.yaml"
        self._tensorboard = None

    def incomplete_reason(self, env_steps: int) -> str:
        """What a run stopped before its end lacks, and why, for the log."""
        missing = [p.name for p in (self.policy, self.summary, self.curve) if not p.exists()]
        return (
            f"stopped at step {env_steps} before training ended: {', '.join(missing) or 'nothing'}"
            f" missing (written after the final evaluation); {self.checkpoint} holds the agent,"
            " the parameter resume=true continues from it"
        )

    def save_agent(
        self,
        agent: DDPG,
        learner: BackgroundLearner,
        extra: Mapping[str, Any],
        include_replay: bool,
    ) -> None:
        """Checkpoint ``agent`` with the caller's ``extra`` state, no training step under way."""
        from ddpg_controller.learning.checkpoint import save_checkpoint

        with learner.paused():
            save_checkpoint(self.checkpoint, agent, dict(extra), include_replay=include_replay)

    def load_agent(self, agent: DDPG) -> dict[str, Any]:
        """Resume: restore ``agent`` from the checkpoint; returns the ``extra`` saved with it."""
        from ddpg_controller.learning.checkpoint import load_checkpoint

        if not self.checkpoint.exists():
            raise FileNotFoundError(f"resume: no checkpoint at {self.checkpoint}")
        return load_checkpoint(self.checkpoint, agent)

    def write_results(
        self, agent: DDPG, task: Task, env_steps: int, summary: Mapping[str, Any], title: str
    ) -> None:
        """Training is over: the deterministic policy for deploy, the summary, the curve."""
        from ddpg_controller.learning.export import export_policy

        export_policy(self.policy, agent, {**task.policy_metadata(), "env_steps": env_steps})
        self.write_summary(summary)
        self.plot_learning_curve(title)

    def write_video(
        self, name: str, task: Task, act: Callable[[Any], Any], step: int, episodes: int, seed: int
    ) -> Path:
        """``<run_dir>/<name>`` (MP4, or GIF without ffmpeg): ``episodes`` episodes of ``act`` in
        the simulator, offscreen; and eight of its frames in TensorBoard (``video/<name>``), as
        images: ``add_video`` needs moviepy, which is not a dependency. Returns the file."""
        import numpy as np

        from ddpg_controller.sim.video import record_episodes, write_video

        frames, fps = record_episodes(task, act, episodes, seed)
        path = write_video(self.path / name, frames, fps)
        picks = np.linspace(0, len(frames) - 1, 8).round().astype(int)
        tag = f"video/{Path(name).with_suffix('')}"
        images = np.stack([frames[i] for i in picks])
        self._writer().add_images(tag, images, step, dataformats="NHWC")
        self._writer().flush()
        return path

    def write_config(self, config: Mapping[str, Any]) -> None:
        _write_text(self.path / "config.yaml", yaml.safe_dump(dict(config), sort_keys=True))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        _write_text(self.summary, yaml.safe_dump(dict(summary), sort_keys=False))

    def append_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one row to metrics.csv and the same scalars to TensorBoard."""
        new_file = not self.metrics.exists()
        with self.metrics.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow({key: _csv_value(row.get(key)) for key in METRICS_COLUMNS})
        self._log_tensorboard(row)

    def read_metrics(self) -> list[dict[str, str]]:
        if not self.metrics.exists():
            return []
        with self.metrics.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def plot_learning_curve(self, title: str) -> None:
        # A Figure of its own, without pyplot: no global backend or figure list, so it can be
        # drawn outside the main thread (see ``completes_despite_ctrl_c``).
        from matplotlib.figure import Figure

        rows = self.read_metrics()
        figure = Figure(figsize=(7, 4))
        axes = figure.subplots()
        for kind, style, label in (
            ("train", "-", "training episode"),
            ("eval_mean", "o-", "deterministic evaluation (mean)"),
        ):
            points = [(int(r["step"]), float(r["return"])) for r in rows if r["kind"] == kind]
            if points:
                steps, returns = zip(*points, strict=True)
                axes.plot(steps, returns, style, label=label, alpha=0.8)
        # Early episodes can score 100x worse than late ones: a symmetric log scale shows both.
        axes.set_yscale("symlog", linthresh=100.0)
        axes.set_xlabel("environment steps")
        axes.set_ylabel("episode return")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        atomic_write(self.curve, lambda handle: figure.savefig(handle, format="png", dpi=100))

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def _writer(self):
        if self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        return self._tensorboard

    def _log_tensorboard(self, row: Mapping[str, Any]) -> None:
        step = int(row["step"])
        for key in ("return", "critic_loss", "actor_loss", "updates_per_s", "latency_p99_ms"):
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                self._writer().add_scalar(f"{row.get('kind', 'train')}/{key}", value, step)
        self._writer().flush()


def default_run_dir(task: str) -> Path:
    """``runs/<task>-<date>-<time>``: where a node writes when no run directory is given."""
    return Path("runs") / f"{task}-{datetime.now():%Y%m%d-%H%M%S}"


Params = ParamSpec("Params")
Result = TypeVar("Result")


def completes_despite_ctrl_c(work: Callable[Params, Result]) -> Callable[Params, Result]:
    """Run ``work`` (writing a run's final files) to its end even when Ctrl-C arrives meanwhile.

    Python raises KeyboardInterrupt only in the main thread, where rclpy runs the node's callbacks:
    a Ctrl-C that landed while the final files were written (in matplotlib's import) aborted them
    and left no summary.yaml. In a thread of its own ``work`` completes while the main thread waits
    through any number of Ctrl-C; rclpy's own SIGINT handler still shuts the context down, so the
    node exits once ``work`` is done. Exceptions of ``work`` reach the caller unchanged.
    """

    @functools.wraps(work)
    def run_to_completion(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def target() -> None:
            try:
                outcome["result"] = work(*args, **kwargs)
            except BaseException as error:  # handed to the caller below
                outcome["error"] = error
            finally:
                finished.set()

        threading.Thread(target=target, name=work.__name__).start()
        # Polled with sleep: a KeyboardInterrupt inside Thread.join() or a lock wait can leave
        # the thread looking finished while it still runs (measured here: Python 3.11).
        while True:
            try:
                while not finished.is_set():
                    time.sleep(0.02)
                break
            except KeyboardInterrupt:
                print(
                    f"Ctrl-C during {work.__name__}: the run's final files are written first",
                    file=sys.stderr,
                    flush=True,
                )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    return run_to_completion


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))
