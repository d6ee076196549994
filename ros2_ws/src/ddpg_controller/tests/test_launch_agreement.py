"""The launch files (for a ROS 2 distro) and ``./run train`` start the same nodes the same way.

``launch`` is not installable here, so the launch files are read as Python source: the nodes they
start, the parameters they set and the arguments they declare are compared with the CLI's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from ddpg_controller.tasks import builtin_task_names
from ddpg_controller.train_cli import (
    ACTOR_NODE,
    LEARNER_NODE,
    SIM_NODE,
    TRAIN_NODES,
    fleet_parameters,
    launch_parameters,
    node_command,
    parse_args,
    train_commands,
)

PACKAGE = Path(__file__).resolve().parents[1]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _launch_nodes(path: Path) -> list[dict]:
    nodes = []
    for call in ast.walk(ast.parse(path.read_text())):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node":
            parameters = _keyword(call, "parameters")
            assert isinstance(parameters, ast.List)
            first, overrides = parameters.elts
            nodes.append(
                {
                    "executable": ast.literal_eval(_keyword(call, "executable")),
                    "name": ast.literal_eval(_keyword(call, "name")),
                    "params_file": ast.unparse(first),
                    "parameters": [ast.literal_eval(key) for key in overrides.keys],
                    "package": ast.literal_eval(_keyword(call, "package")),
                }
            )
    return nodes


def _launch_arguments(path: Path) -> set[str]:
    return {
        ast.literal_eval(call.args[0])
        for call in ast.walk(ast.parse(path.read_text()))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument"
    }


def test_train_launch_starts_the_cli_nodes_with_the_same_parameters(tmp_path) -> None:
    nodes = _launch_nodes(PACKAGE / "launch" / "train.launch.py")
    assert [(n["executable"], n["name"]) for n in nodes] == [
        (spec.executable, spec.name) for spec in TRAIN_NODES
    ]
    args = parse_args(["--task", "pendulum", "--seed", "3"])
    for node, spec in zip(nodes, TRAIN_NODES, strict=True):
        assert node["package"] == "ddpg_controller"
        assert node["params_file"] == "config", "each node reads the one parameter file first"
        assert sorted(node["parameters"]) == sorted(launch_parameters(spec, args, tmp_path))


def test_train_launch_arguments_match_cli_options() -> None:
    arguments = _launch_arguments(PACKAGE / "launch" / "train.launch.py")
    assert arguments == {
        "task",
        "task_file",
        "config",
        "seed",
        "run_dir",
        "use_sim_time",
        "namespace",
        "engine",
        "init_from",
    }
    options = vars(parse_args([]))
    # The CLI sets use_sim_time from the parameter file's sim mode (configured_lockstep).
    assert arguments - {"use_sim_time"} <= set(options)


def test_fleet_launch_starts_the_cli_fleet_nodes_with_the_same_parameters(tmp_path) -> None:
    path = PACKAGE / "launch" / "fleet.launch.py"
    nodes = sorted(_launch_nodes(path), key=lambda node: node["executable"])
    specs = (ACTOR_NODE, LEARNER_NODE, SIM_NODE)
    assert [(n["executable"], n["name"]) for n in nodes] == [(s.executable, s.name) for s in specs]
    args = parse_args(["--robots", "4", "--seed", "3"])
    for node, spec in zip(nodes, specs, strict=True):
        assert node["params_file"] == "config", "each node reads the one parameter file first"
        assert sorted(node["parameters"]) == sorted(fleet_parameters(spec, args, tmp_path))
    options = {name.replace("_", "-") for name in vars(args)}
    for argument in _launch_arguments(path):
        assert argument.replace("_", "-") in options, argument


def test_cli_command_line_is_what_launch_would_run(tmp_path) -> None:
    spec = TRAIN_NODES[1]
    config = tmp_path / "c.yaml"
    command = node_command(spec, config, {"seed": 2, "resume": False}, namespace="robot1")
    assert Path(command[0]).name == "controller_node"
    assert command[1:] == [
        "--ros-args",
        "-r",
        "__node:=controller",
        "-r",
        "__ns:=/robot1",
        "--params-file",
        str(config),
        "-p",
        "seed:=2",
        "-p",
        "resume:=false",
    ]


def test_a_real_time_parameter_file_puts_the_controller_on_the_wall_clock(tmp_path) -> None:
    """Training in real time (fine-tuning on a robot): the file's sim mode decides use_sim_time,
    which the launch takes as its argument; a file that sets only one of the two nodes to real
    time is refused with its name (the controller would wait for a /clock that never comes)."""
    args = parse_args(["--task", "pendulum"])
    config = tmp_path / "realtime.yaml"
    sim = {"/**/sim": {"ros__parameters": {"mode": "realtime"}}}
    controller = {"/**/controller": {"ros__parameters": {"lockstep": False}}}
    config.write_text(yaml.safe_dump(sim | controller))
    _, command = train_commands(args, config, tmp_path, 100)
    assert "use_sim_time:=false" in command
    config.write_text(yaml.safe_dump({}))
    _, command = train_commands(args, config, tmp_path, 100)
    assert "use_sim_time:=true" in command
    config.write_text(yaml.safe_dump(sim))
    with pytest.raises(SystemExit, match=r"realtime\.yaml: sim mode 'realtime' with controller "):
        train_commands(args, config, tmp_path, 100)


def test_every_task_has_a_parameter_file_for_every_node() -> None:
    for task in builtin_task_names():
        document = yaml.safe_load((PACKAGE / "config" / f"{task}.yaml").read_text())
        for spec in TRAIN_NODES:
            section = document[f"/**/{spec.name}"]["ros__parameters"]
            assert section["task"] == task


def test_installed_share_holds_launch_and_config() -> None:
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("ddpg_controller"))
    for path in (PACKAGE / "launch").glob("*.launch.py"):
        assert (share / "launch" / path.name).read_text() == path.read_text()
    for path in (PACKAGE / "config").glob("*.yaml"):
        assert (share / "config" / path.name).read_text() == path.read_text()
