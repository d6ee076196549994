"""Two processes exchange JointState and Float64MultiArray over DDS through the package's code."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from ddpg_controller.ros_common import COMMAND_QOS, STATE_QOS

# The peer reads joint_states by name in its own joint order and answers with 2 * position.
PEER = """
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from ddpg_controller.ros_common import (
    COMMAND_QOS, STATE_QOS, joint_state_by_name, spin_until_shutdown)

class Echo(Node):
    def __init__(self):
        super().__init__("echo")
        self.pub = self.create_publisher(Float64MultiArray, "echo_controller/commands", COMMAND_QOS)
        self.create_subscription(JointState, "joint_states", self.on_state, STATE_QOS)

    def on_state(self, msg):
        position, velocity = joint_state_by_name(msg, ["a", "b", "c"])
        self.pub.publish(Float64MultiArray(data=list(2.0 * position) + list(velocity)))

rclpy.init()
node = Echo()
spin_until_shutdown(node)
node.destroy_node()
rclpy.try_shutdown()
"""


def test_joint_states_round_trip_by_name(ros, spawn, tmp_path) -> None:
    peer_file = tmp_path / "echo_peer.py"
    peer_file.write_text(PEER)
    replies: list[np.ndarray] = []
    ros.node.create_subscription(
        Float64MultiArray,
        "echo_controller/commands",
        lambda msg: replies.append(np.array(msg.data)),
        COMMAND_QOS,
    )
    publisher = ros.node.create_publisher(JointState, "joint_states", STATE_QOS)
    process = spawn(str(peer_file))

    # The message lists joints in another order than the peer's; the peer must match by name.
    state = JointState(name=["c", "a", "b"], position=[3.0, 1.0, 2.0], velocity=[0.3, 0.1, 0.2])
    assert ros.spin_until(lambda: publisher.get_subscription_count() > 0, 20.0), process.output()
    assert ros.spin_until(lambda: ros.node.count_publishers("echo_controller/commands") > 0, 20.0)
    sent = 0
    while not replies and sent < 50:
        publisher.publish(state)
        sent += 1
        ros.spin_until(lambda: bool(replies), 0.2)
    assert replies, process.output()
    np.testing.assert_array_equal(replies[0], [2.0, 4.0, 6.0, 0.1, 0.2, 0.3])
