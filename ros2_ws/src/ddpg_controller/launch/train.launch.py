"""Train a DDPG policy through ROS 2: PyBullet sim node (lockstep) + DDPG controller node.

    ros2 launch ddpg_controller train.launch.py task:=pendulum seed:=0 run_dir:=runs/pendulum
    ros2 launch ddpg_controller train.launch.py task_file:=my_robot.yaml config:=my_params.yaml

``./run train`` starts the same two executables with the same parameter file and arguments
(ddpg_controller/train_cli.py; tests/test_launch_agreement.py keeps them in agreement).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    task = LaunchConfiguration("task")
    task_file = LaunchConfiguration("task_file")
    config = LaunchConfiguration("config")
    seed = LaunchConfiguration("seed")
    namespace = LaunchConfiguration("namespace")
    default_config = PathJoinSubstitution(
        [FindPackageShare("ddpg_controller"), "config", [task, ".yaml"]]
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("task", default_value="pendulum", description="Task to train"),
            DeclareLaunchArgument(
                "config", default_value=default_config, description="Parameter file"
            ),
            DeclareLaunchArgument(
                "task_file", default_value="", description="Task spec file (replaces task)"
            ),
            DeclareLaunchArgument("seed", default_value="0", description="Seed of both nodes"),
            DeclareLaunchArgument(
                "run_dir", default_value="", description="Run directory (empty: runs/<task>-...)"
            ),
            DeclareLaunchArgument(
                "use_sim_time", default_value="true", description="Controller on /clock"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Robot namespace"),
            Node(
                package="ddpg_controller",
                executable="sim_node",
                name="sim",
                namespace=namespace,
                parameters=[config, {"task": task, "task_file": task_file, "seed": seed}],
                output="screen",
            ),
            Node(
                package="ddpg_controller",
                executable="controller_node",
                name="controller",
                namespace=namespace,
                parameters=[
                    config,
                    {
                        "task": task,
                        "task_file": task_file,
                        "seed": seed,
                        "run_dir": LaunchConfiguration("run_dir"),
                        "use_sim_time": LaunchConfiguration("use_sim_time"),
                    },
                ],
                output="screen",
            ),
        ]
    )
