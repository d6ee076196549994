"""Shared helpers: machine description, result files, small statistics."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, library versions and GPU: printed by every benchmark and kept in its JSON."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": np.__version__,
    }
    from importlib import metadata

    for module, dist in (
        ("stable_baselines3", "stable-baselines3"),
        ("gymnasium", "gymnasium"),
        ("pybullet_envs_gymnasium", "pybullet-envs-gymnasium"),
        ("pybullet", "pybullet"),
        ("rclpy", "ros-kilted-rclpy"),
    ):
        try:
            info[module] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[module] = None
    try:
        load = os.getloadavg()
        info["load_avg_at_start"] = [round(x, 2) for x in load]
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=RESULTS.parent,
        ).stdout.strip()
    except OSError:
        info["git_commit"] = None
    return info


def print_header(name: str, config: dict[str, Any], machine: dict[str, Any]) -> None:
    print(f"\n=== {name} ===", flush=True)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), flush=True)
    print("config:  " + json.dumps(config, default=str), flush=True)


def save_result(name: str, data: dict[str, Any], date: str | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{date or today()}-{name}.json"
    path.write_text(json.dumps(data, indent=1, default=_json_default))
    print(f"[bench] wrote {path}", flush=True)
    return path


def load_result(name: str, date: str) -> dict[str, Any] | None:
    path = RESULTS / f"{date}-{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
