"""Fault injection: the deploy node against a Franka Panda that misbehaves on purpose.

``python -m bench faults [--rates 250,1000] [--seconds 3] [--faults A,B] [--tag TAG]``
(``./run bench faults``)

The deploy node runs alone (its own process, the deploy launch file's parameters, panda_reach)
with an untrained policy whose actions saturate and change with the state; this process plays the
robot (``tests/fault_robot.py``: one fault class per run, every class at every rate) and audits
every command it receives. Per fault and rate: states published, answered, skipped (the node acts
on the newest state), commands, over-step (beyond ``max_delta`` x the true time between the states
answered / control period), out-of-limit (or non-finite), not-holding (a fault that must be held
that moved the command), the largest step / allowed step, the age of each answered state when its
command arrived (robot -> node -> robot), and the e-stop latency (``e_stop`` published -> first
safe command received) with the commands received in between. Also the node's own counts and
latency line, and the load average: rates and ages depend on what else the machine runs. Writes
bench/results/<tag>-faults.{json,md}.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from bench import common

TESTS = Path(__file__).resolve().parents[1] / "ros2_ws" / "src" / "ddpg_controller" / "tests"


class _Ros:
    """An rclpy context, node and executor in this process (as the tests' ``RosHarness``)."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.experimental import EventsExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"fault_robot_{os.getpid()}", context=self.context)
        self.executor = EventsExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def call(self, client, request):
        assert self.spin_until(client.service_is_ready, 30.0), client.srv_name
        future = client.call_async(request)
        assert self.spin_until(future.done, 30.0), client.srv_name
        return future.result()

    def change_state(self, client, transition_id: int) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(client, request).success


def run(rates: list[float], seconds: float, only: list[str] | None = None) -> dict:
    from ddpg_controller.processes import NodeProcess
    from ddpg_controller.ros_common import find_packages_in_this_prefix, isolate_ros_traffic

    isolate_ros_traffic()
    find_packages_in_this_prefix()
    sys.path.insert(0, str(TESTS))
    from fault_robot import FAULTS, FaultRobot
    from test_deploy_faults import export_test_policy

    folder = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    policy = export_test_policy(folder / "panda.pt", "panda_reach")
    deploy = NodeProcess(
        [
            sys.executable, "-m", "ddpg_controller.deploy_node", "--ros-args",
            "-p", f"policy:={policy}", "-p", "latency_log_period:=0.0",
        ],
        folder / "deploy.log",
    )  # fmt: skip
    ros = _Ros()
    rows = []
    before: dict[str, int] = {}
    try:
        robot = FaultRobot(ros)
        robot.configure_and_activate()
        for rate in rates:
            for fault in only or FAULTS:
                load = os.getloadavg()[0]
                row = robot.run(fault, rate, seconds).row()
                robot.rearm()  # deactivation logs the node's latency line and counts
                line = _last_latency_line(deploy.output())
                counts = _counts(line)
                row |= {"load_avg_1min": round(load, 2), "node": line}
                row |= {f"node_{k}": v - before.get(k, 0) for k, v in counts.items()}
                before = counts
                rows.append(row)
                print(_format(row), flush=True)
    finally:
        deploy.stop()
    return {
        "machine": common.machine_info(),
        "seconds_per_run": seconds,
        "faults": FAULTS,
        "rows": rows,
        "deploy_log_tail": deploy.output()[-3000:],
    }


def _last_latency_line(output: str) -> str:
    lines = re.findall(r"deactivated: safe command published; (.*)", output)
    return lines[-1] if lines else ""


def _counts(line: str) -> dict[str, int]:
    """The node's cumulative counts from its latency line."""
    match = re.search(r"counts (\{.*\})", line)
    return ast.literal_eval(match.group(1)) if match else {}


def _format(row: dict) -> str:
    return (
        f"{row['fault']:16s} {row['rate_hz']:5d} Hz: states {row['states']:5d} answered "
        f"{row['answered']:5d} skipped {row['skipped']:5d} commands {row['commands']:5d} | "
        f"over-step {row['over_step']} out-of-limit {row['out_of_limit']} not-holding "
        f"{row['not_holding']} (worst step {row['worst_step_ratio']:.3f} x allowed) | age p50 "
        f"{row['age_p50_ms']} p99 {row['age_p99_ms']} max {row['age_max_ms']} ms | e-stop "
        f"{row['e_stop_ms']} ms ({row['e_stop_late']} commands before it) | load "
        f"{row['load_avg_1min']} | node: skipped {row.get('node_skipped')} glitches "
        f"{row.get('node_position_glitches')} clock resets {row.get('node_clock_resets')}"
    )


COLUMNS = (
    "fault", "rate_hz", "states", "answered", "skipped", "commands", "over_step", "out_of_limit",
    "not_holding", "worst_step_ratio", "age_p50_ms", "age_p99_ms", "age_max_ms", "e_stop_ms",
    "e_stop_late", "records_lost", "node_skipped", "node_skipped_in_outages",
    "node_position_glitches", "node_clock_resets", "node_timeouts", "load_avg_1min",
)  # fmt: skip


def markdown(data: dict) -> str:
    lines = [
        "# Deploy node against a misbehaving position robot (bench/faults.py)",
        "",
        f"{data['seconds_per_run']} s per fault and rate; machine: {data['machine']}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in data["rows"]:
        lines.append("| " + " | ".join(str(row.get(c)) for c in COLUMNS) + " |")
    lines += ["", "Faults:", ""]
    lines += [f"- `{name}`: {what}" for name, what in data["faults"].items()]
    lines += ["", "The node's line after each run:", ""]
    lines += [f"- {row['fault']} {row['rate_hz']} Hz: {row['node']}" for row in data["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench faults", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rates", default="250,1000", help="state rates in Hz, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="per fault and rate")
    parser.add_argument("--faults", default="", help="comma-separated fault classes; default all")
    parser.add_argument("--tag", default=None)
    args = parser.parse_args(argv)
    only = [name for name in args.faults.split(",") if name]
    data = run([float(v) for v in args.rates.split(",") if v], args.seconds, only)
    tag = args.tag or common.today()
    common.save_result("faults", data, tag)
    path = Path(__file__).parent / "results" / f"{tag}-faults.md"
    path.write_text(markdown(data))
    print(f"[bench] wrote {path}")
    return 0
