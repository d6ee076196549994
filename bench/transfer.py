"""Zero-shot sim-to-sim transfer: trained in one physics engine, deployed on the other.

    ./run bench transfer [--tasks pendulum,reacher] [--seeds 0,1,2] [--randomization off,on]
                         [--episodes 10] [--train-engine pybullet] [--steps N]
                         [--fine-tune-steps N] [--fine-tune-mode realtime]

For each task, seed and domain-randomisation setting: train through ROS (``ddpg-train``, lockstep,
the task's parameter file) in ``--train-engine``, then deploy the exported policy through the
lifecycle deploy node with its safety layer, in real time, on the sim node of each engine
(``ddpg-deploy --engine E``), the same ``--episodes`` seeded episodes in both. Prints and writes
(``bench/results/<tag>-transfer.md`` and ``.json``) the mean return in each engine and their ratio
(other engine / training engine: returns are negative, so above 1 is worse), and for reach tasks
the mean final end-effector distance. Randomisation ``on`` trains with the spec's
``randomization`` block, or where the spec has none with ``TRANSFER_RANDOMIZATION`` (one set for
every task, written before the runs: the uncertainty a robot's datasheet leaves); deployment is
always without randomisation. A run directory that already holds a policy is reused.

``--steps N`` trains for N steps instead of the parameter file's budget.

``--fine-tune-steps N`` also measures fine-tuning on the other engine (the stand-in robot) for the
row with the largest zero-shot gap (the largest return ratio): ``ddpg-train --engine <other>
--init-from <policy.pt>`` against training from scratch there, both for N steps, in real time
(``--fine-tune-mode``; every command through the safety layer, as on a robot) or lockstep; robot
time is steps × control period, and the report gives the robot minutes until the evaluation
return first reaches the policy's return in the training engine.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import common

ENGINES = ("pybullet", "mujoco")
EPISODE_LINE = re.compile(
    r"episode (\d+): return (-?[\d.]+)(?:, final end-effector distance ([\d.]+) m)?"
)
TIMEOUTS = re.compile(r"'timeouts': (\d+)")


# Domain randomisation for ``on`` when the task's spec has no block of its own: masses and inertias
# ±20 %, up to 0.05 N·m·s/rad of damping and 0.05 N·m (N) of Coulomb friction added per joint,
# torque/velocity actuators ±10 %, 0.002 of noise on the joint readings; no action delay (it would
# change the task, not its physics).
TRANSFER_RANDOMIZATION = {
    "mass_scale": [0.8, 1.2],
    "joint_damping": [0.0, 0.05],
    "joint_friction": [0.0, 0.05],
    "actuator_gain": [0.9, 1.1],
    "observation_noise_std": 0.002,
    "action_delay_steps": 0,
}


def _list(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(command: list[str], log: Path) -> str:
    """Run ``command`` at a lower priority (the machine is shared), output to ``log``."""
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(["nice", "-n", "10", *command], stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text()
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {code}; see {log}:\n{text[-2000:]}")
    print(f"  {Path(command[0]).name} done in {time.monotonic() - started:.0f} s ({log})")
    return text


def train(
    task: str,
    seed: int,
    engine: str,
    randomize: bool,
    run_dir: Path,
    extra: tuple[str, ...] = (),
    controller: dict | None = None,
    mode: str = "lockstep",
) -> Path:
    """A policy trained through ROS in ``engine``; reused when ``run_dir`` already has one.
    ``controller``: parameters of the controller node that replace the task's parameter file's;
    ``mode``: lockstep, or real time (the robot's pace, commands through the safety layer)."""
    policy = run_dir / "policy.pt"
    if policy.is_file():
        print(f"  reusing {policy}")
        return policy
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [_tool("ddpg-train"), "--task", task, "--seed", str(seed), "--engine", engine]
    command += ["--run-dir", str(run_dir), "--quiet", *extra]
    parameters = _parameter_file(task, run_dir, randomize, controller or {}, mode)
    command += ["--config", str(parameters)]
    _run(command, run_dir.with_suffix(".train.log"))
    return policy


def _parameter_file(task: str, run_dir: Path, randomize: bool, controller: dict, mode: str) -> Path:
    """The task's parameter file, with the sim node's randomisation off unless ``randomize`` (then
    the spec's own block, or ``TRANSFER_RANDOMIZATION`` where it has none), both nodes in ``mode``
    and the controller's parameters updated with ``controller``."""
    import yaml

    from ddpg_controller.tasks import RandomizationConfig
    from ddpg_controller.train_cli import package_config

    document = yaml.safe_load(package_config(task).read_text())
    if not randomize:
        randomization = RandomizationConfig().to_dict()
    elif has_randomization(task):
        randomization = None  # the spec's block: the sim node's default
    else:
        randomization = TRANSFER_RANDOMIZATION
    for key, section in document.items():
        node = key.rsplit("/", 1)[-1]
        if node == "sim":
            section["ros__parameters"]["mode"] = mode
            if randomization is not None:
                section["ros__parameters"]["randomization"] = randomization
        if node == "controller":
            section["ros__parameters"].update(controller, lockstep=mode == "lockstep")
    path = run_dir.parent / f"{run_dir.name}.params.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def deploy(
    policy: Path, task: str, engine: str, episodes: int, seed: int, log_dir: Path, mode: str
) -> dict:
    """Mean return (and final end-effector distance) of the deploy node on ``engine``'s robot,
    in real time or lockstep (``mode``), without randomisation; ``timeouts``: the deploy node's
    watchdog (no state within state_timeout: the safe command went out), a loaded machine's
    mark on a real-time run."""
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [_tool("ddpg-deploy"), "--policy", str(policy), "--task", task, "--engine", engine]
    command += ["--episodes", str(episodes), "--seed", str(seed), "--log-dir", str(log_dir)]
    command += ["--timeout", "120", "--sim-mode", mode]
    text = _run(command, log_dir / "deploy.log")
    rows = EPISODE_LINE.findall(text)
    returns = [float(r[1]) for r in rows]
    distances = [float(r[2]) for r in rows if r[2]]
    timeouts = TIMEOUTS.findall(text)
    return {
        "returns": returns,
        "return": float(np.mean(returns)),
        "distance": float(np.mean(distances)) if distances else None,
        "timeouts": int(timeouts[-1]) if timeouts else None,
    }


def has_randomization(task: str) -> bool:
    from ddpg_controller.tasks import load_task

    return load_task(task).randomization.enabled


def evaluation_curve(metrics: Path, control_period: float) -> list[tuple[float, float]]:
    """(robot minutes, mean evaluation return) of a run: robot time is training steps × period
    (evaluation episodes not counted)."""
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "eval_mean"]
    return [(int(r["step"]) * control_period / 60.0, float(r["return"])) for r in rows]


def robot_minutes_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """Robot minutes until the evaluation return first reaches ``target``; None if never."""
    return next((minutes for minutes, value in curve if value >= target), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench transfer", description=__doc__)
    parser.add_argument("--tasks", type=_list, default=["pendulum"])
    parser.add_argument("--seeds", type=lambda t: [int(v) for v in _list(t)], default=[0, 1, 2])
    parser.add_argument("--randomization", type=_list, default=["off", "on"])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--episode-seed", type=int, default=1000)
    parser.add_argument("--train-engine", choices=ENGINES, default="pybullet")
    parser.add_argument(
        "--sim-mode",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="deployment: real time (as a robot), or lockstep (physics alone, no timing effects)",
    )
    parser.add_argument("--steps", type=int, help="training steps (default: the parameter file's)")
    parser.add_argument("--fine-tune-steps", type=int, default=0)
    parser.add_argument("--fine-tune-mode", choices=("realtime", "lockstep"), default="realtime")
    parser.add_argument("--runs", type=Path, default=Path("runs/transfer"))
    parser.add_argument("--tag", default=common.today())
    args = parser.parse_args(argv)
    from ddpg_controller.ros_common import find_packages_in_this_prefix, isolate_ros_traffic
    from ddpg_controller.tasks import load_task

    find_packages_in_this_prefix()
    isolate_ros_traffic()
    source = args.train_engine
    target = next(e for e in ENGINES if e != source)
    common.print_header("transfer", vars(args) | {"deploy_engines": ENGINES}, common.machine_info())
    rows, notes = [], []
    for task in args.tasks:
        for setting in args.randomization:
            if setting == "on" and not has_randomization(task):
                notes.append(f"{task}: its spec has no randomization: on = TRANSFER_RANDOMIZATION")
            for seed in args.seeds:
                name = f"{task}-{source}-dr{setting}-s{seed}"
                print(f"[transfer] {name}")
                budget = ("--steps", str(args.steps)) if args.steps else ()
                policy = train(task, seed, source, setting == "on", args.runs / name, budget)
                result = {
                    "task": task,
                    "seed": seed,
                    "randomization": setting,
                    "mode": args.sim_mode,
                }
                for engine in (source, target):
                    result[engine] = deploy(
                        policy,
                        task,
                        engine,
                        args.episodes,
                        args.episode_seed,
                        args.runs / f"{name}-deploy-{engine}-{args.sim_mode}",
                        args.sim_mode,
                    )
                result["ratio"] = result[target]["return"] / result[source]["return"]
                rows.append(result)
                print(f"[transfer] {_row(result, source, target)}")
    fine_tuning = None
    if args.fine_tune_steps and rows:
        widest = max(rows, key=lambda r: r["ratio"])  # the largest zero-shot gap
        task, seed, mode = widest["task"], widest["seed"], args.fine_tune_mode
        period = load_task(task).control_period
        policy = args.runs / f"{task}-{source}-dr{widest['randomization']}-s{seed}" / "policy.pt"
        goal = widest[source]["return"]
        fine_tuning = {"task": task, "seed": seed, "goal": goal, "steps": args.fine_tune_steps}
        fine_tuning |= {"randomization": widest["randomization"], "mode": mode}
        for label, extra in (("fine-tuned", ("--init-from", str(policy))), ("scratch", ())):
            run_dir = args.runs / f"{task}-{target}-{label}-{mode}-s{seed}"
            steps = ("--steps", str(args.fine_tune_steps), *extra)
            evaluation = {"eval_every_steps": 1000}
            train(task, seed, target, False, run_dir, steps, evaluation, mode)
            curve = evaluation_curve(run_dir / "metrics.csv", period)
            fine_tuning[f"{label} curve"] = curve
            fine_tuning[label] = robot_minutes_to(curve, goal)
            print(f"[transfer] {label}: robot minutes to {goal:.1f}: {fine_tuning[label]}")
    data = {"rows": rows, "notes": notes, "fine_tuning": fine_tuning, "source": source}
    common.save_result("transfer", data, args.tag)
    report = _report(data, source, target)
    out = Path("bench/results") / f"{args.tag}-transfer.md"
    out.write_text(report)
    print(report)
    return 0


def _row(r: dict, source: str, target: str) -> str:
    cells = [r["task"], str(r["seed"]), r["randomization"], r.get("mode", "realtime")]
    cells += [f"{r[source]['return']:.1f}", f"{r[target]['return']:.1f}", f"{r['ratio']:.3f}"]
    for engine in (source, target):
        distance = r[engine]["distance"]
        cells.append("-" if distance is None else f"{100 * distance:.2f}")
    cells.append(" / ".join(str(r[engine].get("timeouts")) for engine in (source, target)))
    return "| " + " | ".join(cells) + " |"


def _report(data: dict, source: str, target: str) -> str:
    lines = [
        f"# Zero-shot transfer: trained in {source}, deployed on {source} and {target}",
        "",
        "Deploy node with its safety layer, the same seeded episodes in both engines.",
        f"Ratio: {target} return / {source} return (returns are negative: above 1 is worse).",
        "Watchdog timeouts: states the deploy node waited for past state_timeout (safe command).",
        "",
        f"| task | seed | randomisation | deploy | return {source} | return {target} | ratio | "
        f"final distance {source} (cm) | final distance {target} (cm) | watchdog timeouts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(r, source, target) for r in data["rows"]]
    lines += ["", *(f"- {note}" for note in data["notes"])]
    tuning = data["fine_tuning"]
    if tuning:
        lines += [
            "",
            f"Fine-tuning on {target} ({tuning['task']}, seed {tuning['seed']}, randomisation "
            f"{tuning.get('randomization', 'off')}: the largest zero-shot gap; {tuning['steps']} "
            f"steps each, {tuning.get('mode', 'lockstep')}): robot minutes until the evaluation "
            f"return reaches {tuning['goal']:.1f} (the policy's return in {source}): "
            f"fine-tuned {tuning['fine-tuned']}, from scratch {tuning['scratch']}.",
            "",
            "| robot minutes | fine-tuned return | from-scratch return |",
            "|---|---|---|",
        ]
        for (minutes, tuned), (_, scratch) in zip(
            tuning["fine-tuned curve"], tuning["scratch curve"], strict=False
        ):
            lines.append(f"| {minutes:.2f} | {tuned:.2f} | {scratch:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
