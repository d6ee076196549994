"""Benchmark 6: a real-time control loop beside the background learner, learner on vs off.

One process, no ROS: a loop thread ticks at a fixed rate on ``time.perf_counter`` and does what the
controller node does per state (observation -> μ(s) + noise from the learner's CPU policy copy ->
command, then ``observe`` the transition and wake the learner). The ``BackgroundLearner`` runs in
real-time mode (never holding the loop back) at the configured ``updates_per_step``. The same loop
runs with the learner off (transitions still stored) as the peer, in the same run, and at the
pendulum's rate also beside a learner that ignores the ratio (how real time ran before).

Measured per run: *late ticks* (a tick whose work began more than ``LATE_FRACTION`` of a period
after its scheduled time, or that was skipped because the loop was busy), the control path's time
per tick (p50 / p99 / max), the loop's achieved rate, and the learner's updates/s and achieved
updates per env step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

LATE_FRACTION = 0.25
PENDULUM_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/pendulum.yaml"
)


def pendulum_ddpg() -> dict[str, Any]:
    """The ddpg section the controller node trains the pendulum with (config/pendulum.yaml)."""
    import yaml

    doc = yaml.safe_load(PENDULUM_CONFIG.read_text())
    return dict(doc["/**/controller"]["ros__parameters"]["ddpg"])


def run_loop(
    ddpg: dict[str, Any],
    learner_on: bool,
    rate_hz: float,
    duration_s: float,
    obs_dim: int = 3,
    action_dim: int = 1,
    sync_every: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """One loop run; the replay is prefilled past warm-up, so learning starts at once."""
    from ddpg_controller.learner import BackgroundLearner
    from ddpg_controller.learning.config import DDPGConfig
    from ddpg_controller.learning.ddpg import DDPG

    config = DDPGConfig.from_dict(ddpg)
    agent = DDPG(obs_dim, action_dim, -1.0, 1.0, config, seed=seed)
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal(obs_dim)
    for _ in range(agent.learning_starts + 9):  # 10 updates owed at the start
        next_obs = rng.standard_normal(obs_dim)
        agent.observe(obs, rng.uniform(-1, 1, action_dim), float(rng.normal()), next_obs, False)
        obs = next_obs
    learner = BackgroundLearner(agent, lockstep=False, sync_every=sync_every)
    policy = learner.policy
    if learner_on:
        learner.start()
        while agent.num_updates < 10 and learner.failure is None:
            time.sleep(0.01)  # past the first updates (and a CUDA graph's capture)
    steps_before, updates_before = agent.total_steps, agent.num_updates
    period = 1.0 / rate_hz
    ticks = int(duration_s * rate_hz)
    work = np.zeros(ticks)
    lateness = np.zeros(ticks)
    skipped = 0
    start = time.perf_counter()
    scheduled = start
    for i in range(ticks):
        scheduled += period
        now = time.perf_counter()
        if now < scheduled:
            time.sleep(scheduled - now)
        began = time.perf_counter()
        lateness[i] = began - scheduled
        # The control path: state -> observation -> μ(s) + noise -> command, then the transition.
        next_obs = np.tanh(obs + 0.05 * rng.standard_normal(obs_dim))
        action = agent.act(next_obs, explore=True, policy=policy)
        agent.observe(obs, action, float(-np.sum(next_obs**2)), next_obs, False)
        work[i] = time.perf_counter() - began  # the command is out
        if learner_on:
            learner.notify()  # after the command, as the controller node does
        obs = next_obs
        behind = int((time.perf_counter() - scheduled) // period)
        if behind > 0:  # a real-time loop drops the periods it missed
            scheduled += behind * period
            skipped += behind
    elapsed = time.perf_counter() - start
    updates = agent.num_updates - updates_before
    steps = agent.total_steps - steps_before
    learner.stop()
    late = int((lateness > LATE_FRACTION * period).sum()) + skipped
    return {
        "learner": learner_on,
        "device": str(agent.device),
        "cuda_graph": agent.uses_cuda_graph,
        "rate_hz": rate_hz,
        "achieved_hz": steps / elapsed,
        "ticks": ticks + skipped,
        "late_pct": 100.0 * late / (ticks + skipped),
        "act_ms": {
            "p50": float(np.percentile(work, 50) * 1e3),
            "p99": float(np.percentile(work, 99) * 1e3),
            "max": float(work.max() * 1e3),
        },
        "updates_per_s": updates / elapsed,
        "updates_per_env_step": updates / max(1, steps),
        "configured_updates_per_step": config.updates_per_step,
        "updates_dropped": learner.updates_dropped,
        "failure": learner.failure,
    }


def compare(
    ddpg: dict[str, Any],
    rate_hz: float,
    duration_s: float,
    label: str,
    free_running_peer: bool = False,
    rounds: int = 2,
    **kwargs: Any,
) -> dict[str, Any]:
    """Learner off, on, and (``free_running_peer``) on without the ratio, as the learner ran in
    real time before it held ``updates_per_step``; round-robin for ``rounds`` rounds so all see
    the same machine load. Per setup the run with the lower p99 is kept."""
    setups: dict[str, tuple[dict[str, Any], bool]] = {"off": (ddpg, False), "on": (ddpg, True)}
    if free_running_peer:
        setups["free-running"] = ({**ddpg, "updates_per_step": 1000.0}, True)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in setups}
    for _ in range(rounds):
        for key, (config, learner_on) in setups.items():
            runs[key].append(run_loop(config, learner_on, rate_hz, duration_s, **kwargs))
    out: dict[str, Any] = {"label": label, "rate_hz": rate_hz, "duration_s": duration_s}
    out["setups"] = {}
    for key, group in runs.items():
        best = min(group, key=lambda r: r["act_ms"]["p99"])
        out["setups"][key] = {
            **best,
            "late_pct_runs": [r["late_pct"] for r in group],
            "act_p99_ms_runs": [r["act_ms"]["p99"] for r in group],
        }
    line = ", ".join(
        f"{key}: late {r['late_pct']:.1f}% act p50/p99/max {r['act_ms']['p50']:.3f}/"
        f"{r['act_ms']['p99']:.3f}/{r['act_ms']['max']:.2f} ms, {r['updates_per_s']:.0f} "
        f"updates/s ({r['updates_per_env_step']:.2f}/step)"
        for key, r in out["setups"].items()
    )
    print(f"[control-loop] {label} {rate_hz:g} Hz: {line}", flush=True)
    return out


def run(quick: bool, device: str = "cpu") -> dict[str, Any]:
    """The pendulum's controller config at its own rate (20 Hz, with the free-running learner of
    before as a peer) and at 500 Hz, on ``device``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the controller node's torch_threads: a core for the loop
    ddpg = {**pendulum_ddpg(), "device": device}
    duration = 3.0 if quick else 20.0
    rows = [
        compare(ddpg, 20.0, duration * 2, "pendulum config", free_running_peer=True),
        compare(ddpg, 500.0, duration, "pendulum config"),
    ]
    torch.set_num_threads(threads)
    return {"rows": rows, "late_fraction": LATE_FRACTION, "device": device}
