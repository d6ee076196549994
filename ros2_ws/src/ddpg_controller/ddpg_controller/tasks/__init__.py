"""Tasks as data: a URDF plus one YAML spec, validated, shared by simulator, controller and deploy.

``load_task("pendulum")`` (a built-in spec of ``builtin/``) or ``load_task("my_robot.yaml")``
returns a :class:`Task`. This package imports numpy, PyYAML and the standard library only.
"""

from .spec import (
    BUILTIN_DIR,
    RandomizationConfig,
    Task,
    builtin_task_names,
    load_task,
    task_from_dict,
)
from .terms import RobotState
from .urdf import TaskSpecError

__all__ = [
    "BUILTIN_DIR",
    "RandomizationConfig",
    "RobotState",
    "Task",
    "TaskSpecError",
    "builtin_task_names",
    "load_task",
    "task_from_dict",
]
