"""DDPG continuous control for ROS 2 robots.

``ddpg_controller.learning`` is the learning core and imports no ROS; ``ddpg_controller.sim`` is the
PyBullet simulator and imports no torch; the ``*_node`` modules are thin ROS 2 adapters over both.
"""
