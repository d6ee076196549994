"""``launch/deploy.launch.py`` and ``./run deploy`` start the deploy node the same way; the config
files' deploy sections only set parameters the node declares; ``./run deploy`` works end to end
against the real-time sim.

``launch`` is not installable here, so the launch file is read as Python source.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from test_deploy_faults import export_test_policy

from ddpg_controller.deploy_cli import DEPLOY_NODE, launch_parameters, parse_args
from ddpg_controller.deploy_node import OPTIONAL_ARRAYS, PARAMETERS
from ddpg_controller.tasks import builtin_task_names

PACKAGE = Path(__file__).resolve().parents[1]
LAUNCH = PACKAGE / "launch" / "deploy.launch.py"


def _calls(name: str) -> list[ast.Call]:
    return [
        call
        for call in ast.walk(ast.parse(LAUNCH.read_text()))
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == name
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_launch_starts_the_cli_node_with_the_same_parameters(tmp_path) -> None:
    (node,) = _calls("LifecycleNode")
    assert ast.literal_eval(_keyword(node, "package")) == "ddpg_controller"
    assert ast.literal_eval(_keyword(node, "executable")) == DEPLOY_NODE.executable
    assert ast.literal_eval(_keyword(node, "name")) == DEPLOY_NODE.name
    first, overrides = _keyword(node, "parameters").elts
    assert ast.unparse(first) == "config", "the node reads the one parameter file first"
    keys = sorted(ast.literal_eval(key) for key in overrides.keys)
    args = parse_args(["--policy", str(tmp_path / "p.pt")])
    assert keys == sorted(launch_parameters(DEPLOY_NODE, args))


def test_launch_configures_then_activates_with_change_state_events() -> None:
    transitions = [ast.unparse(_keyword(c, "transition_id")) for c in _calls("ChangeState")]
    assert transitions == ["Transition.TRANSITION_CONFIGURE", "Transition.TRANSITION_ACTIVATE"]
    (handler,) = _calls("OnStateTransition")
    assert ast.literal_eval(_keyword(handler, "start_state")) == "configuring"
    assert ast.literal_eval(_keyword(handler, "goal_state")) == "inactive"
    arguments = {ast.literal_eval(c.args[0]) for c in _calls("DeclareLaunchArgument")}
    assert arguments == {"policy", "config", "namespace", "task", "task_file"}
    # No task given: the node runs the spec the policy carries, in both.
    (task,) = [c for c in _calls("DeclareLaunchArgument") if c.args[0].value == "task"]
    assert ast.literal_eval(_keyword(task, "default_value")) == ""
    assert launch_parameters(DEPLOY_NODE, parse_args(["--policy", "p.pt"]))["task"] == ""
    options = vars(parse_args(["--policy", "p.pt"]))
    assert arguments <= set(options)


@pytest.mark.parametrize("task", builtin_task_names())
def test_config_deploy_sections_set_only_declared_parameters(task) -> None:
    document = yaml.safe_load((PACKAGE / "config" / f"{task}.yaml").read_text())
    section = document["/**/deploy"]["ros__parameters"]
    assert section["task"] == task
    assert set(section) <= set(PARAMETERS) | set(OPTIONAL_ARRAYS)
    assert section["max_delta"][0] > 0.0, "the rate limit is on by default"


def test_run_deploy_on_the_realtime_sim(spawn, tmp_path) -> None:
    """Without --task the task is the policy's (here not the pendulum, the train default)."""
    policy = export_test_policy(tmp_path / "pendulum_balance.pt", "pendulum_balance")
    cli = spawn(
        "-m",
        "ddpg_controller.deploy_cli",
        "--policy",
        str(policy),
        "--episodes",
        "1",
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert cli.wait(timeout=120) == 0, cli.output()
    output = cli.output()
    (value,) = re.findall(r"episode 0: return (\S+)", output)
    # 1 - tilt per step, from 1 (upright) to 1 - pi (hanging), 200 steps.
    assert "task pendulum_balance" in output and -430.0 < float(value) <= 200.0
    deploy_log = (tmp_path / "logs" / "deploy_node.log").read_text()
    assert "mean return" in output, output
    assert "latency state->command p50" in output, deploy_log[-3000:]
    assert "deactivated: safe command published" in deploy_log
    assert "shutdown: latency" in deploy_log
