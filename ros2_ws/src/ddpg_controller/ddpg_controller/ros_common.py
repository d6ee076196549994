"""What every node of the package shares: QoS profiles, message conversion and the spin loop.

The spin loop uses ``rclpy.experimental.EventsExecutor`` with a timeout: on this class of machine it
measured 0.28 ms p50 / 1.1 ms p99 for a two-process round trip, against 0.46 / 1.3 ms for the
single-threaded executor and 150-500 ms p99 for the multi-threaded one. Without a timeout it
busy-loops and ignores SIGINT, hence ``spin_once(timeout_sec=...)`` in a loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import JointState

# Commands: reliable, like ros2_control's forward_command_controller subscription (system default).
COMMAND_QOS = QoSProfile(
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
)
# Robot state is published reliable (joint_state_broadcaster's default); a reliable subscription
# receives every lockstep state, and a best-effort publisher of a real robot still connects to
# SENSOR_QOS subscriptions.
STATE_QOS = COMMAND_QOS
SENSOR_QOS = qos_profile_sensor_data


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds, the key used to match messages."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def joint_state_by_name(
    msg: JointState, joint_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of ``joint_names``, looked up by name, never by index.

    Raises KeyError naming the missing joints, and ValueError when velocities are absent.
    """
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise KeyError(f"joint_states lacks joints {missing}; it has {list(msg.name)}")
    if len(msg.position) != len(msg.name) or len(msg.velocity) != len(msg.name):
        raise ValueError(
            f"joint_states has {len(msg.name)} names but {len(msg.position)} positions and "
            f"{len(msg.velocity)} velocities"
        )
    order = [index[name] for name in joint_names]
    positions = np.asarray(msg.position, dtype=np.float64)[order]
    velocities = np.asarray(msg.velocity, dtype=np.float64)[order]
    return positions, velocities


def spin_until_shutdown(node: Node, timeout_sec: float = 0.1) -> None:
    """Spin ``node`` until rclpy shuts down or Ctrl-C; the caller cleans up afterwards."""
    executor = EventsExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=timeout_sec)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.remove_node(node)
        executor.shutdown()
