"""The simulator of ddpg_controller: the simulated robot (PyBullet, or MuJoCo as a second engine:
``make_robot(task, engine=...)``) and gymnasium envs of any task spec (``ddpg_controller.tasks``).

Imports no torch and no ROS. Importing it registers the gymnasium ids of ``ENV_IDS``.
"""

from .engine import ENGINES, make_robot
from .envs import ENV_IDS, RobotEnv, register_envs
from .robot import SimulatedRobot

register_envs()

__all__ = ["ENGINES", "ENV_IDS", "RobotEnv", "SimulatedRobot", "make_robot", "register_envs"]
