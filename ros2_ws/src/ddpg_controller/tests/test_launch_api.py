"""The launch files use only the launch API that Humble, Jazzy and Kilted share.

``launch`` is not installable from PyPI, so the launch files are read as Python source (AST). Every
name they import must be in ``ALLOWED``, and every keyword they pass to it must be one that name
takes. Source of the set: the names exported by Humble's launch 1.0.14 and launch_ros 0.19.14, with
the keyword parameters of their constructors (``inspect.signature``, plus what ``**kwargs`` forwards
to ``Action``, ``EventHandler`` and ``ExecuteLocal``), checked identical in Jazzy's 3.4.11 / 0.26.12
and Kilted's 3.8.8 / 0.28.6 and in Humble's first release, 1.0.1 (release tags of
github.com/ros2-gbp/launch-release and launch_ros-release, 2026-11-26). Left out on purpose:
``LifecycleNode(autostart=)`` (in Jazzy's 0.26.12 and Kilted, not Humble's 0.19.14),
``PythonExpression(python_modules=)`` (not in Humble), ``EqualsSubstitution``,
``IfElseSubstitution`` and ``NotEqualsSubstitution`` (not in Humble's 1.0.1), and a list nested in
``PathJoinSubstitution`` (launch 1.0.9 / 3.4.5 and later; 1.0.8 and 3.4.4 raise
``TypeError: Failed to normalize given item of type '<class 'list'>'``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"

_ACTION = {"condition"}
_EVENT_HANDLER = {"handle_once"}
_EXECUTE_LOCAL = {
    "cached_output",
    "emulate_tty",
    "log_cmd",
    "on_exit",
    "output",
    "output_format",
    "respawn",
    "respawn_delay",
    "shell",
    "sigkill_timeout",
    "sigterm_timeout",
} | _ACTION
_NODE = {
    "arguments",
    "exec_name",
    "executable",
    "name",
    "namespace",
    "package",
    "parameters",
    "remappings",
    "ros_arguments",
} | _EXECUTE_LOCAL

# "module.name" -> the keyword arguments a call may pass (None: not called, e.g. a message class).
ALLOWED: dict[str, frozenset[str] | None] = {
    name: None if keywords is None else frozenset(keywords)
    for name, keywords in {
        "launch.LaunchContext": {"argv", "noninteractive"},
        "launch.LaunchDescription": {"initial_entities", "deprecated_reason"},
        "launch.actions.DeclareLaunchArgument": {"name", "default_value", "description", "choices"}
        | _ACTION,
        "launch.actions.EmitEvent": {"event"} | _ACTION,
        "launch.actions.ExecuteProcess": {"cmd", "cwd", "env", "additional_env", "name", "prefix"}
        | _EXECUTE_LOCAL,
        "launch.actions.GroupAction": {"actions", "scoped", "forwarding", "launch_configurations"}
        | _ACTION,
        "launch.actions.IncludeLaunchDescription": {"launch_description_source", "launch_arguments"}
        | _ACTION,
        "launch.actions.LogInfo": {"msg"} | _ACTION,
        "launch.actions.OpaqueFunction": {"function", "args", "kwargs"} | _ACTION,
        "launch.actions.RegisterEventHandler": {"event_handler"} | _ACTION,
        "launch.actions.SetEnvironmentVariable": {"name", "value"} | _ACTION,
        "launch.actions.SetLaunchConfiguration": {"name", "value"} | _ACTION,
        "launch.actions.TimerAction": {"period", "actions", "cancel_on_shutdown"} | _ACTION,
        "launch.conditions.IfCondition": {"predicate_expression"},
        "launch.conditions.UnlessCondition": {"predicate_expression"},
        "launch.conditions.LaunchConfigurationEquals": {
            "launch_configuration_name",
            "expected_value",
        },
        "launch.conditions.LaunchConfigurationNotEquals": {
            "launch_configuration_name",
            "expected_value",
        },
        "launch.event_handlers.OnProcessExit": {"target_action", "on_exit"} | _EVENT_HANDLER,
        "launch.event_handlers.OnProcessStart": {"target_action", "on_start"} | _EVENT_HANDLER,
        "launch.event_handlers.OnShutdown": {"on_shutdown"} | _EVENT_HANDLER,
        "launch.events.Shutdown": {"reason", "due_to_sigint"},
        "launch.events.matches_action": {"target_action"},
        "launch.events.process.ProcessExited": None,
        "launch.launch_description_sources.PythonLaunchDescriptionSource": {"launch_file_path"},
        "launch.substitutions.AnonName": {"name"},
        "launch.substitutions.EnvironmentVariable": {"name", "default_value"},
        "launch.substitutions.LaunchConfiguration": {"variable_name", "default"},
        "launch.substitutions.PathJoinSubstitution": {"substitutions"},
        "launch.substitutions.PythonExpression": {"expression"},
        "launch.substitutions.TextSubstitution": {"text"},
        "launch.substitutions.ThisLaunchFileDir": set(),
        "launch_ros.actions.Node": _NODE,
        "launch_ros.actions.LifecycleNode": _NODE,
        "launch_ros.actions.PushRosNamespace": {"namespace"} | _ACTION,
        "launch_ros.actions.SetParameter": {"name", "value"} | _ACTION,
        "launch_ros.actions.SetRemap": {"src", "dst"} | _ACTION,
        "launch_ros.event_handlers.OnStateTransition": {
            "target_lifecycle_node",
            "transition",
            "start_state",
            "goal_state",
            "entities",
            "matcher",
        }
        | _EVENT_HANDLER,
        "launch_ros.events.lifecycle.ChangeState": {"lifecycle_node_matcher", "transition_id"},
        "launch_ros.substitutions.FindPackagePrefix": {"package"},
        "launch_ros.substitutions.FindPackageShare": {"package"},
        "lifecycle_msgs.msg.Transition": None,
    }.items()
}


def portability_errors(source: str) -> list[str]:
    """What in ``source`` (a launch file) is outside ``ALLOWED``, one line each."""
    errors = []
    imported: dict[str, str] = {}  # local name -> "module.name"
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            errors += [
                f"line {node.lineno}: 'import {a.name}': import the names used" for a in node.names
            ]
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                if qualified not in ALLOWED:
                    errors.append(f"line {node.lineno}: {qualified} is not in ALLOWED")
                imported[alias.asname or alias.name] = qualified
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        keywords = ALLOWED.get(imported.get(node.func.id, ""), frozenset())
        for keyword in node.keywords:
            if keywords is not None and keyword.arg not in keywords:
                errors.append(f"line {node.lineno}: {node.func.id}({keyword.arg}=) is not allowed")
        if node.func.id == "PathJoinSubstitution":
            parts = node.args[0] if node.args else None
            if isinstance(parts, ast.List) and any(isinstance(e, ast.List) for e in parts.elts):
                errors.append(
                    f"line {node.lineno}: a list nested in PathJoinSubstitution needs launch 1.0.9"
                )
    return errors


@pytest.mark.parametrize("path", sorted(LAUNCH_DIR.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_keeps_to_the_api_all_distros_share(path: Path) -> None:
    assert portability_errors(path.read_text()) == []


def test_the_check_catches_what_humble_lacks() -> None:
    source = (
        "from launch.substitutions import EqualsSubstitution, PathJoinSubstitution\n"
        "from launch_ros.actions import LifecycleNode\n"
        "import launch\n"
        "LifecycleNode(name='deploy', namespace='', autostart=True)\n"
        "PathJoinSubstitution(['share', ['task', '.yaml']])\n"
    )
    assert portability_errors(source) == [
        "line 1: launch.substitutions.EqualsSubstitution is not in ALLOWED",
        "line 3: 'import launch': import the names used",
        "line 4: LifecycleNode(autostart=) is not allowed",
        "line 5: a list nested in PathJoinSubstitution needs launch 1.0.9",
    ]
