"""``ddpg-train`` (``./run train``): the two nodes of ``launch/train.launch.py``, without a distro.

It starts the same executables with the same parameter file and arguments as the launch file (a
test keeps the two in agreement), each in its own process talking over DDS, shows progress from the
run's ``metrics.csv``, and prints the run's summary when the controller finishes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ddpg_controller.processes import NodeProcess
from ddpg_controller.ros_common import find_packages_in_this_prefix, isolate_ros_traffic
from ddpg_controller.run_directory import RunDirectory
from ddpg_controller.yaml_numbers import load_yaml

if TYPE_CHECKING:
    from ddpg_controller.tasks import Task


@dataclass(frozen=True)
class NodeSpec:
    """One node of a launch: the same fields ``launch_ros.actions.Node`` takes."""

    executable: str
    name: str


SIM_NODE = NodeSpec(executable="sim_node", name="sim")
CONTROLLER_NODE = NodeSpec(executable="controller_node", name="controller")
TRAIN_NODES = (SIM_NODE, CONTROLLER_NODE)
# launch/fleet.launch.py: per robot a sim node and an actor node in namespace robot_<k>, and one
# learner in namespace fleet (named controller: the parameter file's controller section is its).
ACTOR_NODE = NodeSpec(executable="actor_node", name="actor")
LEARNER_NODE = NodeSpec(executable="learner_node", name="controller")
LEARNER_NAMESPACE = "fleet"


def robot_namespace(index: int) -> str:
    return f"robot_{index}"


def package_config(task: str) -> Path:
    """``share/ddpg_controller/config/<task>.yaml``, found through the ament index."""
    from ament_index_python.packages import get_package_share_directory

    path = Path(get_package_share_directory("ddpg_controller")) / "config" / f"{task}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SystemExit(f"no config for task {task!r} at {path}; configs: {known}")
    return path


def executable(name: str) -> str:
    """A console script installed beside this Python (a venv's bin/, or lib/ddpg_controller/)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"executable {name!r} not found beside {sys.executable} nor on PATH")
    return found


def node_command(
    spec: NodeSpec, params_file: Path, overrides: dict[str, object], namespace: str = ""
) -> list[str]:
    """The command line ``ros2 launch`` would build for ``spec``."""
    command = [executable(spec.executable), "--ros-args", "-r", f"__node:={spec.name}"]
    if namespace:
        command += ["-r", f"__ns:=/{namespace.strip('/')}"]
    command += ["--params-file", str(params_file)]
    for key, value in overrides.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        text = text or "''"  # rcl reads the value as YAML: '' is the empty string
        command += ["-p", f"{key}:={text}"]
    return command


def task_file_parameter(args: argparse.Namespace) -> str:
    """The ``task_file`` parameter: the spec file's absolute path, or "" for a built-in task."""
    return str(Path(args.task_file).resolve()) if args.task_file else ""


def add_task_arguments(parser: argparse.ArgumentParser, default_task: str | None) -> None:
    """``--task``, ``--task-file``, ``--list-tasks`` and ``--engine``, the same for train and
    deploy (the sim node checks the engine's name and says which exist)."""
    parser.add_argument("--task", default=default_task, help="built-in task (see --list-tasks)")
    parser.add_argument("--task-file", type=Path, help="task spec file (YAML); replaces --task")
    parser.add_argument("--list-tasks", action="store_true", help="list the built-in tasks")
    parser.add_argument(
        "--engine", default="pybullet", help="physics engine of the sim node: pybullet | mujoco"
    )


def resolve_task(args: argparse.Namespace, spec: str | None = None) -> tuple[Task, Path]:
    """Check the task before any node starts (one line on error; its warnings on stderr) and pick
    its parameter file: --config, else config/<task name>.yaml of the package, else
    config/default.yaml. ``spec``: the task when neither --task nor --task-file names one."""
    from ddpg_controller.tasks import TaskSpecError, load_task

    try:
        task = load_task(args.task_file or args.task or spec)
    except TaskSpecError as exc:
        raise SystemExit(f"task: {exc}") from None
    for warning in task.warnings:
        print(f"[ddpg-train] warning: {warning}", file=sys.stderr)
    if args.config is not None:
        return task, args.config
    try:
        return task, package_config(task.name)
    except SystemExit:
        if not args.task_file:
            raise
        return task, package_config("default")


def baseline_returns(task: Task) -> dict[str, float]:
    """The untrained returns (zero and random actions) a solved threshold must be above; a
    warning when it is not."""
    from ddpg_controller.task_check import BASELINE_EPISODES, c_output_silenced, threshold_warning

    with c_output_silenced():  # PyBullet's own lines
        from ddpg_controller.sim.envs import untrained_returns

        returns = untrained_returns(task, BASELINE_EPISODES)
    warning = threshold_warning(task, returns)
    if warning is not None:
        print(f"[ddpg-train] warning: {warning}", file=sys.stderr)
    return returns


def list_tasks() -> str:
    from ddpg_controller.tasks import BUILTIN_DIR, builtin_task_names, load_task

    lines = [f"built-in tasks (spec files in {BUILTIN_DIR}):"]
    for name in builtin_task_names():
        task = load_task(name)
        lines.append(
            f"  {name:18s} {task.action_dim} joints, {task.command_interface} "
            f"({task.action_mode}), {task.observation_dim} observations, "
            f"{task.max_episode_steps} steps of {task.control_period} s"
        )
    return "\n".join(lines)


def launch_parameters(
    spec: NodeSpec, args: argparse.Namespace, run_dir: Path, lockstep: bool = True
) -> dict:
    """The per-node parameters ``launch/train.launch.py`` sets from its arguments; the controller
    is on ``/clock`` (``use_sim_time``) when the simulator runs in ``lockstep``, on the wall clock
    in real time (the launch's ``use_sim_time:=false``)."""
    task_file = task_file_parameter(args)
    if spec == SIM_NODE:
        return {"task": args.task, "task_file": task_file, "seed": args.seed, "engine": args.engine}
    return {
        "task": args.task,
        "task_file": task_file,
        "seed": args.seed,
        "run_dir": str(run_dir.resolve()),
        "use_sim_time": lockstep,
        "init_from": str(args.init_from.resolve()) if args.init_from else "",
    }


def fleet_parameters(
    spec: NodeSpec, args: argparse.Namespace, run_dir: Path, robot: int = 0
) -> dict:
    """The per-node parameters ``launch/fleet.launch.py`` sets; robot k's seed is seed + k."""
    task_file = task_file_parameter(args)
    common = {"task": args.task, "task_file": task_file}
    lockstep = args.sim_mode == "lockstep"
    if spec == LEARNER_NODE:
        return {
            **common,
            "seed": args.seed,
            "run_dir": str(run_dir.resolve()),
            "lockstep": lockstep,
        }
    seed = args.seed + robot
    if spec == SIM_NODE:
        return {**common, "seed": seed, "mode": args.sim_mode, "engine": args.engine}
    return {**common, "seed": seed, "lockstep": lockstep}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ddpg-train", description=__doc__.split("\n")[0])
    add_task_arguments(parser, default_task="pendulum")
    parser.add_argument(
        "--config", type=Path, help="parameter file (default: config/<task>.yaml or default.yaml)"
    )
    parser.add_argument("--steps", type=int, help="environment steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", type=Path, help="default: runs/<task>-s<seed>-<time>")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--init-from",
        type=Path,
        help="fine-tune: start from this policy.pt or checkpoints/last.pt of another run",
    )
    parser.add_argument("--namespace", default="", help="ROS namespace of both nodes")
    parser.add_argument(
        "--robots",
        type=int,
        help="fleet training: N simulated robots (sim + actor node each) feed one learner node",
    )
    parser.add_argument(
        "--sim-mode",
        choices=("realtime", "lockstep"),
        default="realtime",
        help="with --robots: the simulators' mode (default realtime: robots run as real ones)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument(
        "--check-task",
        type=Path,
        metavar="F.yaml",
        help="check a task spec and its URDF without training, print what it resolves to",
    )
    parser.add_argument(
        "--no-video", action="store_true", help="no rollout.mp4 of the final policy (video:=false)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    find_packages_in_this_prefix()
    if args.list_tasks:
        print(list_tasks())
        return 0
    if args.check_task is not None:
        from ddpg_controller.task_check import check_task

        return check_task(args.check_task)
    task, config = resolve_task(args)
    task_name = task.name
    if not config.exists():
        raise SystemExit(f"parameter file not found: {config}")
    if args.resume and args.run_dir is None:
        raise SystemExit("--resume needs --run-dir")
    if args.init_from is not None and not args.init_from.is_file():
        raise SystemExit(f"--init-from: {args.init_from} not found")
    if args.init_from is not None and args.robots is not None:
        raise SystemExit("--init-from is for single-robot training (the controller node)")
    run_dir = (
        args.run_dir or Path("runs") / f"{task_name}-s{args.seed}-{datetime.now():%m%d-%H%M%S}"
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    if "ROS_DOMAIN_ID" not in os.environ:
        isolate_ros_traffic()
    total_steps = args.steps or _configured_steps(config)
    baselines = baseline_returns(task)
    if args.robots is not None:
        return train_fleet(args, config, run_dir, total_steps, task_name, baselines)
    sim_command, controller_command = train_commands(args, config, run_dir, total_steps)
    sim = NodeProcess(sim_command, run_dir / "sim_node.log")
    controller = NodeProcess(controller_command, run_dir / "controller_node.log")
    print(f"[ddpg-train] task {task_name}, seed {args.seed}, {total_steps} steps -> {run_dir}")
    print(f"[ddpg-train] ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, logs in {run_dir}")
    try:
        _follow(RunDirectory(run_dir), controller, [sim], total_steps, args.quiet)
    except KeyboardInterrupt:
        print("\n[ddpg-train] interrupted: the controller saves a checkpoint", file=sys.stderr)
    finally:
        code = controller.stop(timeout=60)
        sim.stop()
    return _report(run_dir, controller, code, baselines)


def train_fleet(
    args: argparse.Namespace,
    config: Path,
    run_dir: Path,
    total_steps: int,
    task_name: str,
    baselines: dict[str, float],
) -> int:
    """The nodes of ``launch/fleet.launch.py``: N robots (sim + actor), one learner."""
    robot_commands, learner_command = fleet_commands(args, config, run_dir, total_steps)
    robots = [NodeProcess(argv, run_dir / f"{name}.log") for name, argv in robot_commands]
    learner = NodeProcess(learner_command, run_dir / "learner_node.log")
    print(
        f"[ddpg-train] fleet of {args.robots} robots ({args.sim_mode}), task {task_name}, "
        f"seed {args.seed}, {total_steps} steps -> {run_dir}"
    )
    print(f"[ddpg-train] ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, logs in {run_dir}")
    try:
        # A robot leaving mid-run does not end fleet training: the learner goes on with the rest.
        _follow(RunDirectory(run_dir), learner, [], total_steps, args.quiet)
    except KeyboardInterrupt:
        print("\n[ddpg-train] interrupted: the learner saves a checkpoint", file=sys.stderr)
    finally:
        code = learner.stop(timeout=60)
        for process in robots:
            process.stop()
    return _report(run_dir, learner, code, baselines)


def _report(run_dir: Path, learner: NodeProcess, code: int, baselines: dict[str, float]) -> int:
    """Print the summary, with the untrained baselines added beside the node's own step-0
    evaluation (``untrained_return``)."""
    run = RunDirectory(run_dir)
    if code == 0 and run.summary.exists():
        summary = yaml.safe_load(run.summary.read_text())
        summary["untrained_baselines"] = {name: float(v) for name, v in baselines.items()}
        run.write_summary(summary)
        print(run.summary.read_text(), end="")
        return 0 if summary.get("complete", True) else 1
    print(learner.output()[-3000:], file=sys.stderr)
    print(f"[ddpg-train] {learner.args[0]} exited with {code}; see {run_dir}", file=sys.stderr)
    return code or 1


def train_commands(
    args: argparse.Namespace, config: Path, run_dir: Path, total_steps: int
) -> tuple[list[str], list[str]]:
    """The sim node's and the controller node's command lines of a training run: what ``main``
    starts here, and what ``bench/netns.py`` starts on two "computers" (network namespaces)."""
    sim = node_command(SIM_NODE, config, launch_parameters(SIM_NODE, args, run_dir), args.namespace)
    controller_parameters = {
        **launch_parameters(CONTROLLER_NODE, args, run_dir, configured_lockstep(config)),
        "total_steps": total_steps,
        "resume": args.resume,
        **({"video": False} if args.no_video else {}),
    }
    controller = node_command(CONTROLLER_NODE, config, controller_parameters, args.namespace)
    return sim, controller


def fleet_commands(
    args: argparse.Namespace, config: Path, run_dir: Path, total_steps: int
) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """A fleet's command lines: (log name, argv) of each robot's sim and actor node, and the
    learner's; what ``train_fleet`` starts here and ``bench/netns.py`` on two "computers"."""
    if args.robots < 1:
        raise SystemExit(f"--robots must be >= 1, got {args.robots}")
    robots = []
    for k in range(args.robots):
        namespace = robot_namespace(k)
        for spec in (SIM_NODE, ACTOR_NODE):
            parameters = fleet_parameters(spec, args, run_dir, k)
            argv = node_command(spec, config, parameters, namespace)
            robots.append((f"{namespace}_{spec.executable}", argv))
    learner_parameters = {
        **fleet_parameters(LEARNER_NODE, args, run_dir),
        "total_steps": total_steps,
        "resume": args.resume,
        **({"video": False} if args.no_video else {}),
    }
    learner = node_command(LEARNER_NODE, config, learner_parameters, LEARNER_NAMESPACE)
    return robots, learner


def _configured(config: Path, node: str) -> dict:
    """``node``'s ``ros__parameters`` in the parameter file (empty where it has none)."""
    document = load_yaml(config.read_text()) or {}
    for key, section in document.items():
        if key.rsplit("/", 1)[-1] == node:
            return section.get("ros__parameters") or {}
    return {}


def _configured_steps(config: Path) -> int:
    return int(_configured(config, "controller").get("total_steps", 20_000))


def configured_lockstep(config: Path) -> bool:
    """Whether the parameter file trains in lockstep (the sim node's ``mode``, default lockstep);
    real time (``mode: realtime``, the robot's own pace, commands through the safety layer) needs
    the controller's ``lockstep: false`` as well, or the controller waits for a ``/clock`` that
    never comes: a file that says one without the other is refused, naming it."""
    mode = _configured(config, "sim").get("mode", "lockstep")
    lockstep = _configured(config, "controller").get("lockstep", True)
    if (mode == "lockstep") != bool(lockstep):
        raise SystemExit(
            f"{config}: sim mode {mode!r} with controller lockstep {lockstep}: set both to train "
            "in lockstep (mode: lockstep, lockstep: true) or in real time (mode: realtime, "
            "lockstep: false)"
        )
    return mode == "lockstep"


def _follow(
    run: RunDirectory, controller: NodeProcess, robots: list[NodeProcess], total: int, quiet: bool
) -> None:
    """Wait for the controller (or learner), printing a progress line from metrics.csv once a
    second; a robot's node exiting first ends the run."""
    started = time.monotonic()
    every = 1.0 if sys.stdout.isatty() else 10.0
    last_print = 0.0
    while controller.alive():
        for process in robots:
            if not process.alive():
                raise SystemExit(f"{process.args[0]} exited:\n{process.output()[-3000:]}")
        time.sleep(0.5)
        if quiet or time.monotonic() - last_print < every:
            continue
        last_print = time.monotonic()
        rows = run.read_metrics()
        train = [r for r in rows if r["kind"] == "train"]
        evals = [r for r in rows if r["kind"] == "eval_mean"]
        step = int(train[-1]["step"]) if train else 0
        filled = int(30 * min(step, total) / total)
        line = (
            f"[{'#' * filled}{'.' * (30 - filled)}] {step}/{total} steps"
            f" | return {_last(train, 'return')} | eval {_last(evals, 'return')}"
            f" | {_last(train, 'updates_per_s')} updates/s | {time.monotonic() - started:.0f} s"
        )
        print(f"\r{line}", end="" if sys.stdout.isatty() else "\n", flush=True)
    print()


def _last(rows: list[dict[str, str]], key: str) -> str:
    if not rows or not rows[-1][key]:
        return "-"
    return f"{float(rows[-1][key]):.1f}"


if __name__ == "__main__":
    sys.exit(main())
