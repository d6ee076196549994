"""The PyBullet simulator of ddpg_controller: the simulated robot and gymnasium envs of any task
spec (``ddpg_controller.tasks``).

Imports no torch and no ROS. Importing it registers the gymnasium ids of ``ENV_IDS``.
"""

from .envs import ENV_IDS, RobotEnv, register_envs
from .robot import SimulatedRobot

register_envs()

__all__ = ["ENV_IDS", "RobotEnv", "SimulatedRobot", "register_envs"]
