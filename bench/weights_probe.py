"""A stand-in for a fleet's policy topic, for ``bench/netns.py`` to send across the veth.

``publish`` sends a ``std_msgs/Float64MultiArray`` of ``--values`` float64 (an actor's weights)
every ``--period`` seconds, reliable + transient local, keep-last 1: what a learner publishes so
that a robot joining late gets the newest weights at once. ``data[0]`` is the version, ``data[1]``
the publisher's ``time.time()`` (both ends share this machine's clock, so the latency is exact).
``subscribe`` waits ``--start-after`` seconds (a robot joining late), listens for ``--duration``
seconds and writes what it received to ``--out`` (JSON).

    python -m bench.weights_probe publish --values 67073 --period 0.5 --duration 12
    python -m bench.weights_probe subscribe --start-after 3 --duration 8 --out got.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

POLICY_QOS_DEPTH = 1
TOPIC = "weights_probe"


def _qos():
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
        history=HistoryPolicy.KEEP_LAST,
        depth=POLICY_QOS_DEPTH,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.weights_probe")
    parser.add_argument("role", choices=("publish", "subscribe"))
    parser.add_argument("--values", type=int, default=67_073, help="float64 per message")
    parser.add_argument("--period", type=float, default=0.5, help="s between messages")
    parser.add_argument("--duration", type=float, default=10.0, help="s to run")
    parser.add_argument("--start-after", type=float, default=0.0, help="s to wait first")
    parser.add_argument("--out", type=Path, help="subscribe: where to write what arrived")
    args = parser.parse_args(argv)
    time.sleep(args.start_after)
    import array

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float64MultiArray

    rclpy.init()
    node = rclpy.create_node(f"weights_probe_{args.role}")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = time.time()
    received: list[dict[str, float]] = []

    def on_weights(msg: Float64MultiArray) -> None:
        now = time.time()
        received.append(
            {"version": msg.data[0], "latency_ms": (now - msg.data[1]) * 1e3, "at_s": now - started}
        )

    publisher = None
    if args.role == "publish":
        publisher = node.create_publisher(Float64MultiArray, TOPIC, _qos())
    else:
        node.create_subscription(Float64MultiArray, TOPIC, on_weights, _qos())
    weights = array.array("d", bytes(8 * args.values))
    version, next_publish = 0, time.time()
    while time.time() - started < args.duration:
        if publisher is not None and time.time() >= next_publish:
            version += 1
            weights[0], weights[1] = version, time.time()
            publisher.publish(Float64MultiArray(data=weights))
            next_publish += args.period
        executor.spin_once(timeout_sec=0.01)
    node.destroy_node()
    rclpy.shutdown()
    if args.out is not None:
        args.out.write_text(json.dumps({"published": version, "received": received}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
