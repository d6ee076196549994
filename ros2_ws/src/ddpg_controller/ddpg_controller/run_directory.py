"""The files a training run leaves behind, so that it can be read, plotted and resumed.

``<run_dir>/config.yaml`` (the resolved parameters), ``metrics.csv``, ``tensorboard/`` events,
``checkpoints/last.pt`` (+ the replay buffer when asked), ``learning_curve.png``, ``policy.pt`` and
``summary.yaml`` (the final evaluation, throughput and latency).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ddpg_controller.learning.atomic import atomic_write

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
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        rows = self.read_metrics()
        figure, axes = plt.subplots(figsize=(7, 4))
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
        plt.close(figure)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def _log_tensorboard(self, row: Mapping[str, Any]) -> None:
        if self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        step = int(row["step"])
        for key in ("return", "critic_loss", "actor_loss", "updates_per_s", "latency_p99_ms"):
            value = row.get(key)
            if value is not None and math.isfinite(float(value)):
                self._tensorboard.add_scalar(f"{row.get('kind', 'train')}/{key}", value, step)
        self._tensorboard.flush()


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))
