"""The PyBullet simulator of ddpg_controller: tasks, the simulated robot and gymnasium envs.

Imports no torch and no ROS. Importing it registers the gymnasium ids of ``ENV_IDS``.
"""

from .envs import ENV_IDS, RobotEnv, register_envs
from .robot import RandomizationConfig, SimulatedRobot
from .tasks import TASK_NAMES, RobotState, Task, make_task

register_envs()

__all__ = [
    "ENV_IDS",
    "TASK_NAMES",
    "RandomizationConfig",
    "RobotEnv",
    "RobotState",
    "SimulatedRobot",
    "Task",
    "make_task",
    "register_envs",
]
