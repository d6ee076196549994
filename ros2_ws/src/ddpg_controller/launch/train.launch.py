"""Train a DDPG policy through ROS 2: sim node (lockstep) + DDPG controller node.

    ros2 launch ddpg_controller train.launch.py task:=pendulum seed:=0 run_dir:=runs/pendulum
    ros2 launch ddpg_controller train.launch.py task_file:=my_robot.yaml config:=my_params.yaml
    ros2 launch ddpg_controller train.launch.py engine:=mujoco init_from:=runs/pendulum/policy.pt

Real time (the robot's own pace, every command through the safety layer, as on hardware): a
parameter file with the sim node's ``mode: realtime`` and the controller's ``lockstep: false``, and
``use_sim_time:=false``; ``./run train`` reads the same file and sets ``use_sim_time`` from it.

``./run train`` starts the same two executables with the same parameter file and arguments
(ddpg_controller/train_cli.py; tests/test_launch_agreement.py keeps them in agreement).

The launch ends when the controller exits (training done, or failed): the sim node is stopped with
it. A failed controller makes ``ros2 launch`` exit 1 with the error line
``Caught exception in launch (see debug for traceback): controller_node failed ...``.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def end_launch_with(event: ProcessExited, context: LaunchContext) -> list[EmitEvent]:
    """Shut the launch down once training has ended; an exception is how a launch file makes
    ``LaunchService.run()`` (and ``ros2 launch``) return 1, on Humble, Jazzy and Kilted alike."""
    if event.returncode != 0:
        raise RuntimeError(
            f"controller_node failed with exit code {event.returncode}; its log says why"
        )
    return [EmitEvent(event=Shutdown(reason="training finished"))]


def generate_launch_description() -> LaunchDescription:
    task = LaunchConfiguration("task")
    task_file = LaunchConfiguration("task_file")
    config = LaunchConfiguration("config")
    seed = LaunchConfiguration("seed")
    namespace = LaunchConfiguration("namespace")
    # A list of substitutions is their concatenation, in every launch since Humble's 1.0.1 (a
    # list nested in PathJoinSubstitution needs launch 1.0.9 / 3.4.5).
    default_config = [FindPackageShare("ddpg_controller"), "/config/", task, ".yaml"]
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
            DeclareLaunchArgument(
                "engine", default_value="pybullet", description="Physics engine: pybullet | mujoco"
            ),
            DeclareLaunchArgument(
                "init_from",
                default_value="",
                description="Fine-tune from this policy.pt or checkpoint (empty: from scratch)",
            ),
            Node(
                package="ddpg_controller",
                executable="sim_node",
                name="sim",
                namespace=namespace,
                parameters=[
                    config,
                    {
                        "task": task,
                        "task_file": task_file,
                        "seed": seed,
                        "engine": LaunchConfiguration("engine"),
                    },
                ],
                output="screen",
            ),
            controller := Node(
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
                        "init_from": LaunchConfiguration("init_from"),
                    },
                ],
                output="screen",
            ),
            RegisterEventHandler(OnProcessExit(target_action=controller, on_exit=end_launch_with)),
        ]
    )
