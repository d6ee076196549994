"""Fleet scaling: wall time to solve the pendulum with 1, 2, 4, 8 real-time robots feeding one
learner, and lockstep fleets against today's single-robot lockstep training.

``python -m bench fleet [--robots 1,2,4,8] [--seeds 3] [--quick]``

Each run is ``ddpg-train --robots N --sim-mode realtime`` (the path of ``./run train --robots N``)
with the task's parameter file (no evaluations on the robots, no checkpoints). The benchmark
listens to the policies the learner publishes and evaluates one every 10 s of the fleet's steps
(200 steps per robot at 20 Hz) in-process (``PolicyJudge``: 10 deterministic episodes, the same
start states for every run, niced so that it takes no CPU from the fleet); the wall time to solve
is the time from the start of ``ddpg-train`` to the publication of the first policy whose
evaluation is ≥ −200, and the run is stopped there. Reported per run, from the
learner's summary.yaml: env steps/s in total and per robot, policy staleness (learner updates
between the acting policy and storage) p50/p99, transition latency robot → replay p50/p99, DDS
payload bytes/s (transitions + policies), and per process kind the CPU share and the peak resident
memory sampled from /proc every second. Lockstep: a fixed budget, N robots against today's
single-robot controller. Writes bench/results/<tag>-fleet.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml
from std_msgs.msg import Float64MultiArray

from bench import common

PACKAGE_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/pendulum.yaml"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
JUDGE_EVERY_S = 10.0  # real-time seconds of robot steps between evaluations of a policy
BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0)
JUDGE_NICE = 10


def params_file(
    tmp: Path,
    robots: int,
    total_steps: int,
    evaluate_on_robots: bool,
    learner_params: dict[str, Any] | None = None,
) -> Path:
    document = yaml.safe_load(PACKAGE_CONFIG.read_text())
    controller = document["/**/controller"]["ros__parameters"]
    controller.update(
        total_steps=total_steps,
        eval_every_steps=2000 if evaluate_on_robots else 0,
        eval_episodes=10,
        final_eval_episodes=10 if evaluate_on_robots else 1,
        checkpoint_every_steps=0,
        save_replay=False,
        evaluators=[f"robot_{k}" for k in range(robots)],
    )
    controller.update(learner_params or {})
    path = tmp / f"fleet-{robots}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class PolicyJudge:
    """Evaluates the fleet's published policies in-process, as they come: every
    ``JUDGE_EVERY_S`` of fleet steps, 10 deterministic episodes of the task's gym env (start states
    from seeds 1000..1009, the same for every run). The robots lose no time to evaluations, so
    the wall time to solve measures learning alone, alike for every fleet size."""

    def __init__(self, task_name: str) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from ddpg_controller.fleet_protocol import POLICY_TOPIC
        from ddpg_controller.sim.envs import RobotEnv
        from ddpg_controller.tasks import load_task

        self.task = load_task(task_name)
        self.env = RobotEnv(self.task)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"bench_fleet_{os.getpid()}", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # Every policy kept until this process takes it, however long an evaluation takes.
        qos = QoSProfile(
            depth=500,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.node.create_subscription(Float64MultiArray, POLICY_TOPIC, self._on_policy, qos)
        self.reset()

    def reset(self, run_dir: Path | None = None, robots: int = 1) -> None:
        """Judge the run that writes ``run_dir`` (a policy names its learner's run directory):
        a policy every ``JUDGE_EVERY_S`` seconds of the fleet's steps at the task's rate, so the
        time to solve has the same resolution whatever the number of robots."""
        self.run = str(run_dir.resolve()) if run_dir is not None else None
        self.evaluate_every = round(JUDGE_EVERY_S / self.task.control_period) * robots
        self.candidates: deque[tuple[float, Any]] = deque()
        self.next_mark = self.evaluate_every
        self.history: list[dict[str, float]] = []
        self.started = time.time()  # policies carry their wall-clock publication time

    def _on_policy(self, msg: Float64MultiArray) -> None:
        from ddpg_controller.fleet_protocol import decode_policy

        weights = decode_policy(msg)
        if weights.run != self.run:
            return  # the last run's, still in the queue
        if weights.env_steps >= self.next_mark and not weights.warmup:
            self.candidates.append((weights.published_unix_s - self.started, weights))
            every = self.evaluate_every
            self.next_mark = (weights.env_steps // every + 1) * every

    def poll(self) -> float | None:
        """Spin a little; evaluate the oldest candidate; its publication time (s) when it solves
        the task. This process runs niced (``train``): it evaluates with the CPU the robots and
        the learner leave, which delays the verdict, never the time it reports."""
        for _ in range(1000):  # take what has come (an evaluation takes seconds)
            self.executor.spin_once(timeout_sec=0)
        if not self.candidates:
            self.executor.spin_once(timeout_sec=0.2)
            return None
        from ddpg_controller.actor_node import acting_policy_for, load_weights
        from ddpg_controller.learning.training import evaluate

        at, weights = self.candidates.popleft()
        policy = acting_policy_for(weights, self.task)
        assert not load_weights(policy, weights)
        mean = statistics.mean(evaluate(policy, self.env, 10, seed=1000))
        self.history.append({"wall_s": at, "env_steps": weights.env_steps, "return": mean})
        return at if mean >= self.task.solved_threshold else None

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


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


def _undo_nice() -> None:
    """The training processes at the priority the benchmark was started with (root may raise it
    again after ``run`` lowered this process's; elsewhere they stay as low as the judge)."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, BASE_NICE)


def train(
    args: list[str],
    run_dir: Path,
    timeout: float,
    judge: PolicyJudge | None = None,
    robots: int = 1,
) -> dict[str, Any]:
    """One ``ddpg-train`` run; its summary plus per-process CPU and memory. With a ``judge``
    the run is stopped (Ctrl-C: the learner checkpoints and writes its summary) once a policy
    it publishes solves the task."""
    started = time.monotonic()
    command = [sys.executable, "-m", "ddpg_controller.train_cli", *args, "--quiet"]
    process = subprocess.Popen(
        [*command, "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_undo_nice,
    )
    sampler = ProcessSampler(process.pid)
    solved_at = None
    if judge is not None:
        judge.reset(run_dir, robots)
    last_sample = 0.0
    while process.poll() is None:
        if time.monotonic() - last_sample >= 1.0:
            sampler.sample()
            last_sample = time.monotonic()
        if judge is not None:
            solved_at = judge.poll()
        else:
            time.sleep(0.2)
        if solved_at is not None or time.monotonic() - started > timeout:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(120)
            break
    wall = time.monotonic() - started
    summary_path = run_dir / "summary.yaml"
    summary = yaml.safe_load(summary_path.read_text()) if summary_path.exists() else {}
    result = {"returncode": process.returncode, "wall_s": wall, **summary}
    result["processes"] = sampler.by_kind(wall)
    if judge is not None:
        result.update(solved=solved_at is not None, time_to_solve_s=solved_at)
        result["judged"] = judge.history
    return result


def fleet_run(
    tmp: Path,
    robots: int,
    seed: int,
    total_steps: int,
    mode: str,
    judge: PolicyJudge | None,
    learner_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config = params_file(tmp, robots, total_steps, judge is None, learner_params)
    run_dir = tmp / f"{mode}-{robots}-s{seed}"
    args = ["--robots", str(robots), "--sim-mode", mode, "--seed", str(seed)]
    args += ["--config", str(config)]
    timeout = 60 + 1.5 * total_steps / (20 * robots) if mode == "realtime" else 1800
    result = train(args, run_dir, timeout, judge, robots)
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
        f"at {result.get('time_to_solve_s')} s, {_solve_steps(result)} steps, "
        f"{result.get('env_steps_per_s', 0):.1f} steps/s",
        flush=True,
    )
    return result


def single_robot_lockstep(tmp: Path, seed: int, total_steps: int) -> dict[str, Any]:
    """Today's controller: sim + controller node, lockstep, the same parameter file."""
    config = params_file(tmp, 1, total_steps, evaluate_on_robots=True)
    run_dir = tmp / f"controller-lockstep-s{seed}"
    result = train(["--seed", str(seed), "--config", str(config)], run_dir, 1800)
    result.update(robots=1, seed=seed, mode="controller-lockstep")
    print(
        f"[fleet] controller lockstep seed {seed}: {result.get('env_steps_per_s', 0):.1f} steps/s"
    )
    return result


def run(
    robot_counts: list[int],
    seeds: list[int],
    quick: bool,
    lockstep_robots: list[int],
    learner_params: dict[str, Any] | None = None,
) -> dict:
    from ddpg_controller.ros_common import claim_free_domain_id

    # One DDS domain for the benchmark and its runs (one after another), nobody else's.
    os.environ["ROS_DOMAIN_ID"] = str(claim_free_domain_id())
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # The judge's evaluations (~2 s of CPU each) must not take the CPU from the fleet on this
    # machine: it runs niced, the training processes as before (_undo_nice).
    os.nice(JUDGE_NICE)
    total = 2_000 if quick else 30_000
    runs: list[dict[str, Any]] = []
    judge = PolicyJudge("pendulum")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        for seed in seeds:
            for robots in robot_counts:
                runs.append(fleet_run(tmp, robots, seed, total, "realtime", judge, learner_params))
        lockstep_steps = 1_000 if quick else 3_000
        runs.append(single_robot_lockstep(tmp, seeds[0], lockstep_steps))
        for robots in lockstep_robots:
            runs.append(fleet_run(tmp, robots, seeds[0], lockstep_steps, "lockstep", None))
    judge.close()
    return {"runs": runs, "machine": common.machine_info(), "learner_params": learner_params}


def _mean(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean, std = common.mean_std(values)
    return f"{mean:.0f} ± {std:.0f}" if len(values) > 1 else f"{mean:.1f}"


def _solve_steps(run: dict[str, Any]) -> int | None:
    solved = [j for j in run.get("judged", []) if j["wall_s"] == run.get("time_to_solve_s")]
    return solved[0]["env_steps"] if solved else None


def report(data: dict[str, Any]) -> str:
    runs = [r for r in data["runs"] if r["mode"] == "realtime"]
    lines = [
        "# Fleet scaling: pendulum, sims in real time (20 Hz), one learner",
        "",
        f"Learner parameters beyond config/pendulum.yaml: {data.get('learner_params') or 'none'}.",
        "",
        "| robots | seed | solved | wall time to solve (s) | fleet env steps at solve | "
        "env steps/s (total / per robot) | staleness p50/p99 (updates) | "
        "transition latency p50/p99 (ms) | DDS kB/s | updates per env step | updates dropped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        solve = r.get("time_to_solve_s")
        lines.append(
            f"| {r['robots']} | {r['seed']} | {r.get('solved')} | "
            f"{'-' if solve is None else f'{solve:.0f}'} | {_solve_steps(r) or '-'} | "
            f"{r.get('env_steps_per_s', 0):.1f} / {r.get('env_steps_per_s_per_robot', 0):.1f} | "
            f"{r.get('policy_staleness_updates_p50')} / {r.get('policy_staleness_updates_p99')} | "
            f"{r.get('transition_latency_p50_ms') or 0:.0f} / "
            f"{r.get('transition_latency_p99_ms') or 0:.0f} | {r['dds_bytes_per_s'] / 1e3:.0f} | "
            f"{r.get('updates_per_env_step', 0):.2f} | {r.get('updates_dropped')} |"
        )
    counts = sorted({r["robots"] for r in runs})
    lines += [
        "",
        "| robots | solved | wall time to solve, mean ± std (s) | ratio to 1 robot |",
        "|---|---|---|---|",
    ]
    base = [r["time_to_solve_s"] for r in runs if r["robots"] == 1 and r.get("solved")]
    for n in counts:
        times = [r["time_to_solve_s"] for r in runs if r["robots"] == n and r.get("solved")]
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
    parser.add_argument(
        "--learner-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the learner (the file's controller section) for every run; YAML value",
    )
    args = parser.parse_args(argv)
    learner_params = {}
    for item in args.learner_param:
        name, _, value = item.partition("=")
        learner_params[name] = yaml.safe_load(value)
    data = run(
        [int(v) for v in args.robots.split(",") if v],
        [int(v) for v in args.seeds.split(",") if v],
        args.quick,
        [int(v) for v in args.lockstep_robots.split(",") if v],
        learner_params,
    )
    tag = args.tag or common.today() + ("-quick" if args.quick else "")
    common.save_result("fleet", data, tag)
    path = Path(__file__).parent / "results" / f"{tag}-fleet.md"
    path.write_text(report(data))
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
