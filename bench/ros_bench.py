"""Benchmark 4: the pendulum task through ROS 2 against the same agent in-process.

Lockstep throughput: ``ddpg-train --task pendulum`` (sim node + controller node, two processes over
DDS, the simulator waiting for the controller's updates) against ``training.train`` on the
gymnasium env ``ddpg_controller/Pendulum-v0`` (the same task code, the same DDPGConfig from
config/pendulum.yaml, one torch thread like the controller), with learning
(``updates_per_step: 1``) and without (``updates_per_step: 0``: the controller still explores and
stores transitions; ``training: false`` would never finish a run). Env steps per second are taken
over the same window of steps for both (from the first episode end after learning started to the
last episode end, so start-up, warm-up and the final evaluation are excluded); latency percentiles
come from the controller's summary.yaml (state received -> command ready, all steps of the run).

Real time: the same sim node in ``mode:=realtime`` with the pendulum's control period set to 2 ms
(500 Hz, ``bench/rt_sim.py``) and the controller node with ``lockstep: false`` (the learner holds
``updates_per_step`` in its thread without holding commands back), with and without learning;
missed periods are counted in the sim process.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PKG_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/pendulum.yaml"
)


def _params_file(tmp: Path, name: str, controller: dict[str, Any], ddpg: dict[str, Any]) -> Path:
    doc = yaml.safe_load(PKG_CONFIG.read_text())
    params = doc["/**/controller"]["ros__parameters"]
    params.update(controller)
    params["ddpg"].update(ddpg)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _controller_overrides() -> dict[str, Any]:
    return {"eval_every_steps": 0, "final_eval_episodes": 1, "checkpoint_every_steps": 0}


def _window_rate(points: list[tuple[int, float]], start_step: int) -> float:
    """Steps/s between the first point at or after ``start_step`` and the last point."""
    pts = [(s, t) for s, t in points if s >= start_step]
    if len(pts) < 2:
        return float("nan")
    (s0, t0), (s1, t1) = pts[0], pts[-1]
    return (s1 - s0) / (t1 - t0)


def ros_lockstep(tmp: Path, steps: int, ups: float, seed: int) -> dict[str, Any]:
    params = _params_file(
        tmp, f"lockstep_ups{ups:g}", _controller_overrides(), {"updates_per_step": ups}
    )
    run_dir = tmp / f"ros_lockstep_ups{ups:g}"
    cmd = [
        str(Path(sys.executable).parent / "ddpg-train"),
        "--task",
        "pendulum",
        "--steps",
        str(steps),
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        "--config",
        str(params),
        "--quiet",
    ]
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0 or not (run_dir / "summary.yaml").exists():
        return {"error": f"ddpg-train exited {proc.returncode}: {proc.stderr[-1500:]}"}
    summary = yaml.safe_load((run_dir / "summary.yaml").read_text())
    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "train"]
    points = [(int(r["step"]), float(r["wall_time_s"])) for r in rows]
    keep = (
        "env_steps",
        "updates",
        "wall_time_s",
        "env_steps_per_s",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "lockstep_wait_p50_ms",
        "lockstep_wait_p99_ms",
        "dropped_transitions",
        "final_eval_return",
    )
    return {"summary": {k: summary.get(k) for k in keep}, "points": points, "process_wall_s": wall}


def in_process(steps: int, ups: float, seed: int) -> dict[str, Any]:
    import gymnasium as gym
    import torch

    import ddpg_controller.sim  # noqa: F401 (registers ddpg_controller/Pendulum-v0)
    from ddpg_controller.learning.config import DDPGConfig
    from ddpg_controller.learning.training import train

    doc = yaml.safe_load(PKG_CONFIG.read_text())
    ddpg = {**doc["/**/controller"]["ros__parameters"]["ddpg"], "updates_per_step": ups}
    threads = torch.get_num_threads()
    torch.set_num_threads(doc["/**/controller"]["ros__parameters"]["torch_threads"])
    env = gym.make("ddpg_controller/Pendulum-v0")
    points: list[tuple[int, float]] = []
    start = time.perf_counter()

    def callback(step, agent, info):
        if info["terminated"] or info["truncated"]:
            points.append((step, time.perf_counter() - start))

    result = train(env, DDPGConfig.from_dict(ddpg), steps, seed, callback=callback)
    torch.set_num_threads(threads)
    env.close()
    return {"points": points, "updates": result.num_updates, "wall_time_s": result.wall_time_s}


def realtime(
    tmp: Path, training: bool, steps: int, duration: float, period: float
) -> dict[str, Any]:
    from ddpg_controller.ros_common import claim_free_domain_id

    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(claim_free_domain_id())
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    name = f"rt_{'learn' if training else 'nolearn'}"
    params = _params_file(
        tmp, name, {**_controller_overrides(), "lockstep": False, "training": training}, {}
    )
    run_dir = tmp / name
    out = tmp / f"{name}.json"
    bindir = Path(sys.executable).parent
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.rt_sim",
            "--period",
            str(period),
            "--duration",
            str(duration),
            "--out",
            str(out),
            "--ros-args",
            "-r",
            "__node:=sim",
            "--params-file",
            str(params),
            "-p",
            "mode:=realtime",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    ctrl = subprocess.Popen(
        [
            str(bindir / "controller_node"),
            "--ros-args",
            "-r",
            "__node:=controller",
            "--params-file",
            str(params),
            "-p",
            f"run_dir:={run_dir}",
            "-p",
            f"total_steps:={steps}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        sim_out = sim.communicate(timeout=duration + 120)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(sim.pid, 9)
        sim_out = "timeout"
    _stop(ctrl)
    ctrl_out = ctrl.communicate()[0].decode(errors="replace")
    if not out.exists():
        return {"error": f"sim: {sim_out[-1500:]}\ncontroller: {ctrl_out[-1500:]}"}
    import json

    result = json.loads(out.read_text())
    summary_path = run_dir / "summary.yaml"
    if summary_path.exists():
        s = yaml.safe_load(summary_path.read_text())
        result["controller_summary"] = {
            k: s.get(k)
            for k in ("env_steps", "updates", "latency_p50_ms", "latency_p99_ms", "latency_max_ms")
        }
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        with metrics.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if rows:
            last = rows[-1]
            result["controller_last_metrics"] = {
                k: last.get(k)
                for k in ("step", "updates", "updates_per_s", "latency_p50_ms", "latency_p99_ms")
            }
    return result


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(quick: bool, seed: int = 0) -> dict[str, Any]:
    steps = 1_600 if quick else 4_000
    doc = yaml.safe_load(PKG_CONFIG.read_text())
    ddpg = doc["/**/controller"]["ros__parameters"]["ddpg"]
    window_start = max(ddpg["warmup_steps"], ddpg["batch_size"]) + 1  # first episode end after
    rt_duration = 8.0 if quick else 20.0
    rt_steps = 3_000 if quick else 9_000
    period = 0.002
    tmp = Path(tempfile.mkdtemp(prefix="bench_ros_"))
    out: dict[str, Any] = {
        "steps": steps,
        "seed": seed,
        "window_start_step": window_start,
        "rt": {"period_s": period, "duration_s": rt_duration, "steps": rt_steps},
    }
    try:
        for ups in (1.0, 0.0):
            key = "learning" if ups else "no_learning"
            ros = ros_lockstep(tmp, steps, ups, seed)
            inproc = in_process(steps, ups, seed)
            ros_rate = _window_rate(ros.get("points", []), window_start)
            in_rate = _window_rate(inproc["points"], window_start)
            out[key] = {
                "ros": ros,
                "in_process": inproc,
                "ros_steps_per_s": ros_rate,
                "in_process_steps_per_s": in_rate,
                "ratio": ros_rate / in_rate,
            }
            print(
                f"[ros] lockstep {key}: ROS {ros_rate:.0f} steps/s, in-process {in_rate:.0f} "
                f"steps/s, ratio {ros_rate / in_rate:.2f}; summary {ros.get('summary', ros)}",
                flush=True,
            )
        for training in (True, False):
            key = "rt_learning" if training else "rt_no_learning"
            out[key] = realtime(tmp, training, rt_steps, rt_duration, period)
            print(f"[ros] realtime 500 Hz {key}: {out[key]}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
