"""Train one policy with a fleet: N simulated robots feed one learner over DDS.

    ros2 launch ddpg_controller fleet.launch.py task:=pendulum robots:=4 sim_mode:=realtime

Robot k runs in namespace ``robot_k``: a PyBullet sim node (seed + k) and an actor node (acts,
explores, streams its transitions). One learner node (``fleet/controller``) stores every robot's
transitions in one replay buffer, trains, publishes the policy, and writes the run directory.
For robots on real hardware start only the learner here and an actor node beside each robot
(docs/fleet-and-networking.md).

``./run train --robots N`` starts the same executables with the same parameter file and arguments
(ddpg_controller/train_cli.py; tests/test_launch_agreement.py keeps them in agreement). The launch
ends when the learner exits (training done, or failed): the robots' nodes are stopped with it, and
a failed learner makes ``ros2 launch`` exit 1.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def end_launch_with(event: ProcessExited, context: LaunchContext) -> list[EmitEvent]:
    """As train.launch.py: shut down once the learner has ended, exit 1 if it failed."""
    if event.returncode != 0:
        raise RuntimeError(f"learner_node failed with exit code {event.returncode}; see its log")
    return [EmitEvent(event=Shutdown(reason="training finished"))]


def fleet(context: LaunchContext) -> list:
    """The robots' nodes (their count is a launch argument) and the learner."""
    task = LaunchConfiguration("task").perform(context)
    task_file = LaunchConfiguration("task_file").perform(context)
    config = LaunchConfiguration("config").perform(context)
    seed = int(LaunchConfiguration("seed").perform(context))
    robots = int(LaunchConfiguration("robots").perform(context))
    sim_mode = LaunchConfiguration("sim_mode").perform(context)
    engine = LaunchConfiguration("engine").perform(context)
    if robots < 1:
        raise RuntimeError(f"robots must be >= 1, got {robots}")
    nodes = []
    for k in range(robots):
        nodes.append(
            Node(
                package="ddpg_controller",
                executable="sim_node",
                name="sim",
                namespace=f"robot_{k}",
                parameters=[
                    config,
                    {
                        "task": task,
                        "task_file": task_file,
                        "seed": seed + k,
                        "mode": sim_mode,
                        "engine": engine,
                    },
                ],
                output="screen",
            )
        )
        nodes.append(
            Node(
                package="ddpg_controller",
                executable="actor_node",
                name="actor",
                namespace=f"robot_{k}",
                parameters=[
                    config,
                    {
                        "task": task,
                        "task_file": task_file,
                        "seed": seed + k,
                        "lockstep": sim_mode == "lockstep",
                    },
                ],
                output="screen",
            )
        )
    learner = Node(
        package="ddpg_controller",
        executable="learner_node",
        name="controller",
        namespace="fleet",
        parameters=[
            config,
            {
                "task": task,
                "task_file": task_file,
                "seed": seed,
                "run_dir": LaunchConfiguration("run_dir").perform(context),
                "lockstep": sim_mode == "lockstep",
            },
        ],
        output="screen",
    )
    return [
        *nodes,
        learner,
        RegisterEventHandler(OnProcessExit(target_action=learner, on_exit=end_launch_with)),
    ]


def generate_launch_description() -> LaunchDescription:
    task = LaunchConfiguration("task")
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
            DeclareLaunchArgument("seed", default_value="0", description="Seed; robot k: seed + k"),
            DeclareLaunchArgument(
                "run_dir", default_value="", description="Run directory (empty: runs/<task>-...)"
            ),
            DeclareLaunchArgument("robots", default_value="2", description="Simulated robots"),
            DeclareLaunchArgument(
                "sim_mode",
                default_value="realtime",
                choices=["realtime", "lockstep"],
                description="The simulators' mode",
            ),
            DeclareLaunchArgument(
                "engine", default_value="pybullet", description="Physics engine: pybullet | mujoco"
            ),
            OpaqueFunction(function=fleet),
        ]
    )
