"""Fleet scaling: wall time to solve the pendulum with 1, 2, 4, 8 real-time robots feeding one
learner, and lockstep fleets against today's single-robot lockstep training.

``python -m bench fleet [--robots 1,2,4,8] [--seeds 3] [--quick]``

Each run is ``ddpg-train --robots N --sim-mode realtime`` (the path of ``./run train --robots N``)
with the task's parameter file and these changes, the same for every N: a deterministic
evaluation of 10 episodes every 2,000 fleet steps, shared among all robots, training stopped at
the first evaluation ≥ the task's threshold (−200: "solved"). Reported per run, from the learner's
summary.yaml: wall time to solve, env steps/s in total and per robot, policy staleness (learner
updates between the acting policy and storage) p50/p99, transition latency robot → replay
p50/p99, DDS payload bytes/s (transitions + policies), and per process kind the CPU share and the
peak resident memory sampled from /proc every second. Writes bench/results/<tag>-fleet.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import common

PACKAGE_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/pendulum.yaml"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def params_file(tmp: Path, robots: int, total_steps: int) -> Path:
    document = yaml.safe_load(PACKAGE_CONFIG.read_text())
    controller = document["/**/controller"]["ros__parameters"]
    controller.update(
        total_steps=total_steps,
        eval_every_steps=2000,
        eval_episodes=10,
        final_eval_episodes=10,
        checkpoint_every_steps=0,
        save_replay=False,
        stop_when_solved=True,
        evaluators=[f"robot_{k}" for k in range(robots)],
    )
    path = tmp / f"fleet-{robots}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        frontier += [int(c) for c in children]
    return found


def _process_kind(pid: int) -> str | None:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    text = b" ".join(command).decode(errors="replace")
    for kind in ("learner_node", "actor_node", "sim_node", "controller_node"):
        if kind in text:
            return kind
    return None


class ProcessSampler:
    """CPU seconds and peak RSS of the run's node processes, by kind, sampled from /proc."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.cpu: dict[int, float] = {}
        self.rss_peak_mb: dict[int, float] = {}
        self.kind: dict[int, str] = {}

    def sample(self) -> None:
        for pid in _descendants(self.root):
            kind = self.kind.get(pid) or _process_kind(pid)
            if kind is None:
                continue
            self.kind[pid] = kind
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, IndexError):
                continue
            self.cpu[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            self.rss_peak_mb[pid] = max(self.rss_peak_mb.get(pid, 0.0), rss_pages * PAGE_KB / 1024)

    def by_kind(self, wall: float) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for kind in sorted(set(self.kind.values())):
            pids = [p for p, k in self.kind.items() if k == kind and p in self.cpu]
            if pids:
                out[kind] = {
                    "processes": len(pids),
                    "cpu_percent_each": 100 * statistics.mean(self.cpu[p] for p in pids) / wall,
                    "rss_peak_mb_each": statistics.mean(self.rss_peak_mb[p] for p in pids),
                }
        return out


def train(args: list[str], run_dir: Path, timeout: float) -> dict[str, Any]:
    """One ``ddpg-train`` run; its summary plus per-process CPU and memory."""
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    env.pop("ROS_DOMAIN_ID", None)  # ddpg-train claims a free domain: runs never mix
    started = time.monotonic()
    command = [sys.executable, "-m", "ddpg_controller.train_cli", *args, "--quiet"]
    process = subprocess.Popen(
        [*command, "--run-dir", str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = ProcessSampler(process.pid)
    while process.poll() is None:
        sampler.sample()
        if time.monotonic() - started > timeout:
            process.send_signal(2)
            process.wait(120)
            break
        time.sleep(1.0)
    wall = time.monotonic() - started
    summary_path = run_dir / "summary.yaml"
    summary = yaml.safe_load(summary_path.read_text()) if summary_path.exists() else {}
    return {
        "returncode": process.returncode,
        "wall_s": wall,
        **summary,
        "processes": sampler.by_kind(wall),
    }


def fleet_run(tmp: Path, robots: int, seed: int, total_steps: int, mode: str) -> dict[str, Any]:
    config = params_file(tmp, robots, total_steps)
    run_dir = tmp / f"{mode}-{robots}-s{seed}"
    args = [
        "--robots",
        str(robots),
        "--sim-mode",
        mode,
        "--seed",
        str(seed),
        "--config",
        str(config),
    ]
    timeout = 60 + 3 * total_steps / (20 * robots) if mode == "realtime" else 1800
    result = train(args, run_dir, timeout)
    counters = result.get("learner_counters", {})
    wall = result.get("wall_time_s") or result["wall_s"]
    result.update(
        robots=robots,
        seed=seed,
        mode=mode,
        dds_bytes_per_s=(counters.get("transition_bytes", 0) + counters.get("policy_bytes", 0))
        / wall,
        env_steps_per_s_per_robot=result.get("env_steps_per_s", 0.0) / robots,
    )
    print(
        f"[fleet] {mode} {robots} robots seed {seed}: solved={result.get('solved')} "
        f"in {wall:.0f} s, {result.get('env_steps')} steps, "
        f"{result.get('env_steps_per_s', 0):.1f} steps/s",
        flush=True,
    )
    return result


def single_robot_lockstep(tmp: Path, seed: int, total_steps: int) -> dict[str, Any]:
    """Today's controller: sim + controller node, lockstep, the same parameter file."""
    config = params_file(tmp, 1, total_steps)
    run_dir = tmp / f"controller-lockstep-s{seed}"
    result = train(["--seed", str(seed), "--config", str(config)], run_dir, 1800)
    result.update(robots=1, seed=seed, mode="controller-lockstep")
    print(
        f"[fleet] controller lockstep seed {seed}: {result.get('env_steps_per_s', 0):.1f} steps/s"
    )
    return result


def run(robot_counts: list[int], seeds: list[int], quick: bool, lockstep_robots: list[int]) -> dict:
    total = 2_000 if quick else 20_000
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        for seed in seeds:
            for robots in robot_counts:
                runs.append(fleet_run(tmp, robots, seed, total, "realtime"))
        lockstep_steps = 1_000 if quick else 3_000
        runs.append(single_robot_lockstep(tmp, seeds[0], lockstep_steps))
        for robots in lockstep_robots:
            runs.append(fleet_run(tmp, robots, seeds[0], lockstep_steps, "lockstep"))
    return {"runs": runs, "machine": common.machine_info()}


def _mean(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, std = common.mean_std(values)
    return f"{mean:.0f} ± {std:.0f}" if len(values) > 1 else f"{mean:.1f}"


def report(data: dict[str, Any]) -> str:
    runs = [r for r in data["runs"] if r["mode"] == "realtime"]
    lines = [
        "# Fleet scaling: pendulum, sims in real time (20 Hz), one learner",
        "",
        "| robots | seed | solved | wall time to solve (s) | env steps | env steps/s (total / per "
        "robot) | staleness p50/p99 (updates) | transition latency p50/p99 (ms) | DDS kB/s | "
        "updates dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['robots']} | {r['seed']} | {r.get('solved')} | {r.get('wall_time_s', 0):.0f} | "
            f"{r.get('env_steps')} | {r.get('env_steps_per_s', 0):.1f} / "
            f"{r.get('env_steps_per_s_per_robot', 0):.1f} | "
            f"{r.get('policy_staleness_updates_p50')} / {r.get('policy_staleness_updates_p99')} | "
            f"{r.get('transition_latency_p50_ms', 0):.0f} / "
            f"{r.get('transition_latency_p99_ms', 0):.0f} | {r['dds_bytes_per_s'] / 1e3:.0f} | "
            f"{r.get('updates_dropped')} |"
        )
    counts = sorted({r["robots"] for r in runs})
    lines += [
        "",
        "| robots | solved | wall time to solve, mean ± std (s) | ratio to 1 robot |",
        "|---|---|---|---|",
    ]
    base = [r["wall_time_s"] for r in runs if r["robots"] == 1 and r.get("solved")]
    for n in counts:
        times = [r["wall_time_s"] for r in runs if r["robots"] == n and r.get("solved")]
        solved = f"{len(times)}/{sum(r['robots'] == n for r in runs)}"
        ratio = f"{statistics.mean(times) / statistics.mean(base):.2f}" if times and base else "-"
        lines.append(f"| {n} | {solved} | {_mean(times)} | {ratio} |")
    lines += ["", "CPU share and peak RSS per process (mean over processes of a kind):", ""]
    lines += ["| run | process | count | CPU % each | RSS MB each |", "|---|---|---|---|---|"]
    for r in data["runs"]:
        for kind, p in r.get("processes", {}).items():
            lines.append(
                f"| {r['mode']} {r['robots']} s{r['seed']} | {kind} | {p['processes']} | "
                f"{p['cpu_percent_each']:.0f} | {p['rss_peak_mb_each']:.0f} |"
            )
    lockstep = [r for r in data["runs"] if r["mode"] != "realtime"]
    if lockstep:
        lines += [
            "",
            "Lockstep (the simulators step once per command, as fast as the nodes go):",
            "",
            "| run | robots | env steps | env steps/s | final eval | updates/env step "
            "| updates dropped |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in lockstep:
            lines.append(
                f"| {r['mode']} | {r['robots']} | {r.get('env_steps')} | "
                f"{r.get('env_steps_per_s', 0):.1f} | {r.get('final_eval_return', 0):.0f} | "
                f"{r.get('updates_per_env_step', 0):.2f} | {r.get('updates_dropped')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--robots", default="1,2,4,8")
    parser.add_argument("--lockstep-robots", default="1,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tag", default=None)
    args = parser.parse_args(argv)
    data = run(
        [int(v) for v in args.robots.split(",") if v],
        [int(v) for v in args.seeds.split(",") if v],
        args.quick,
        [int(v) for v in args.lockstep_robots.split(",") if v],
    )
    tag = args.tag or common.today() + ("-quick" if args.quick else "")
    common.save_result("fleet", data, tag)
    path = Path(__file__).parent / "results" / f"{tag}-fleet.md"
    path.write_text(report(data))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
