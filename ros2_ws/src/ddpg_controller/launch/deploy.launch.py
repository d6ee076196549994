"""Deploy an exported DDPG policy on a ros2_control robot: the lifecycle node ``deploy``.

    ros2 launch ddpg_controller deploy.launch.py policy:=/path/to/policy.pt [task:=pendulum]

Without ``task`` (or ``task_file``) the node runs the task spec the policy carries, with the
parameters of ``config/default.yaml`` unless ``config`` names a file.

The node is configured (policy loaded and checked against the robot) and, once inactive, activated
by the standard launch_ros pattern: an EmitEvent(ChangeState configure) at start, and an
OnStateTransition(configuring -> inactive) handler that emits ChangeState activate. If configure
fails (wrong joints, bad policy file...), the node stays unconfigured and says why in its log.

``./run deploy`` starts the same node with the same parameters (ddpg_controller/deploy_cli.py,
which drives the transitions over ``/deploy/change_state`` itself and adds the sim node as the
robot); tests/test_deploy_launch.py keeps the two in agreement.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    task = LaunchConfiguration("task")
    config = LaunchConfiguration("config")
    # A list of substitutions is their concatenation, in every launch since Humble's 1.0.1 (a
    # list nested in PathJoinSubstitution needs launch 1.0.9 / 3.4.5).
    # config/<task>.yaml, or config/default.yaml when no task is given.
    config_name = PythonExpression(["'", task, "' or 'default'"])
    default_config = [FindPackageShare("ddpg_controller"), "/config/", config_name, ".yaml"]
    deploy = LifecycleNode(
        package="ddpg_controller",
        executable="deploy_node",
        name="deploy",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            config,
            {
                "task": task,
                "task_file": LaunchConfiguration("task_file"),
                "policy": LaunchConfiguration("policy"),
            },
        ],
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(deploy),
            transition_id=Transition.TRANSITION_CONFIGURE,
        )
    )
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=deploy,
            start_state="configuring",
            goal_state="inactive",
            entities=[
                EmitEvent(
                    event=ChangeState(
                        lifecycle_node_matcher=matches_action(deploy),
                        transition_id=Transition.TRANSITION_ACTIVATE,
                    )
                )
            ],
        )
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument("policy", description="Exported policy file (policy.pt)"),
            DeclareLaunchArgument(
                "task", default_value="", description="Task; empty: the one the policy carries"
            ),
            DeclareLaunchArgument(
                "config", default_value=default_config, description="Parameter file"
            ),
            DeclareLaunchArgument(
                "task_file", default_value="", description="Task spec file (replaces task)"
            ),
            DeclareLaunchArgument("namespace", default_value="", description="Robot namespace"),
            activate_when_configured,
            deploy,
            configure,
        ]
    )
