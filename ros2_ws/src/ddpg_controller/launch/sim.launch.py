"""The simulated robot alone, with the interfaces of a ros2_control robot.

    ros2 launch ddpg_controller sim.launch.py task:=arm_reach mode:=realtime
    ros2 launch ddpg_controller sim.launch.py task:=panda_reach engine:=mujoco

Publishes ``joint_states`` and the task's signals, takes ``<controller>/commands``, offers
``sim/reset``; in lockstep it also publishes ``/clock``.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    task = LaunchConfiguration("task")
    # A list of substitutions is their concatenation, in every launch since Humble's 1.0.1 (a
    # list nested in PathJoinSubstitution needs launch 1.0.9 / 3.4.5).
    default_config = [FindPackageShare("ddpg_controller"), "/config/", task, ".yaml"]
    return LaunchDescription(
        [
            DeclareLaunchArgument("task", default_value="pendulum", description="Task to simulate"),
            DeclareLaunchArgument(
                "config", default_value=default_config, description="Parameter file"
            ),
            DeclareLaunchArgument(
                "mode", default_value="realtime", description="'realtime' or 'lockstep'"
            ),
            DeclareLaunchArgument(
                "task_file", default_value="", description="Task spec file (replaces task)"
            ),
            DeclareLaunchArgument("seed", default_value="0", description="Episode seed"),
            DeclareLaunchArgument(
                "engine", default_value="pybullet", description="Physics engine: pybullet | mujoco"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Robot namespace"),
            Node(
                package="ddpg_controller",
                executable="sim_node",
                name="sim",
                namespace=LaunchConfiguration("namespace"),
                parameters=[
                    LaunchConfiguration("config"),
                    {
                        "task": task,
                        "task_file": LaunchConfiguration("task_file"),
                        "mode": LaunchConfiguration("mode"),
                        "seed": LaunchConfiguration("seed"),
                        "engine": LaunchConfiguration("engine"),
                    },
                ],
                output="screen",
            ),
        ]
    )
