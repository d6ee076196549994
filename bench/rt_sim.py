"""The package's sim node in ``mode:=realtime`` at a faster control rate, instrumented.

``python -m bench.rt_sim --period 0.002 --duration 20 --out FILE --ros-args ...`` runs the pendulum
task with that control period (a copy of its spec file, given as the node's ``task_file``; the
physics then takes its 10 substeps of period/10) in the unchanged ``SimNode``, and records, in this
process and on one clock (``time.perf_counter_ns``), when each timer tick published a state and when
each command arrived. A control period is *met* when a command arrived after the state of that
period was published and before the next tick; otherwise it is *missed* (the robot holds the last
command).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, ros_args = (
        (argv[: argv.index("--ros-args")], argv[argv.index("--ros-args") :])
        if ("--ros-args" in argv)
        else (argv, [])
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--period", type=float, default=0.002)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(ours)

    import rclpy
    import yaml

    from ddpg_controller.ros_common import spin_until_shutdown
    from ddpg_controller.sim_node import SimNode
    from ddpg_controller.tasks import BUILTIN_DIR

    spec = yaml.safe_load((BUILTIN_DIR / "pendulum.yaml").read_text())
    spec["timing"]["control_period"] = args.period
    spec["robot"]["urdf"] = str(BUILTIN_DIR / "urdf" / "pendulum.urdf")
    spec_file = Path(args.out).with_suffix(".task.yaml")
    spec_file.write_text(yaml.safe_dump(spec))
    ros_args = [*(ros_args or ["--ros-args"]), "-p", f"task_file:={spec_file}"]

    ticks: list[int] = []
    commands: list[int] = []
    resets: list[int] = []

    class InstrumentedSim(SimNode):
        def _tick(self) -> None:
            super()._tick()
            ticks.append(time.perf_counter_ns())

        def _on_command(self, msg) -> None:
            commands.append(time.perf_counter_ns())
            super()._on_command(msg)

        def _on_reset(self, request, response):
            resets.append(time.perf_counter_ns())
            return super()._on_reset(request, response)

    rclpy.init(args=["--ros-args", *ros_args[1:]] if ros_args else None)
    node = InstrumentedSim()
    deadline = [None]

    def check() -> None:
        if commands and deadline[0] is None:
            deadline[0] = time.monotonic() + args.duration
        if deadline[0] is not None and time.monotonic() > deadline[0]:
            rclpy.try_shutdown()

    node.create_timer(0.1, check)
    try:
        spin_until_shutdown(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    with open(args.out, "w") as f:
        json.dump({"period": args.period, **analyse(ticks, commands, resets, args.period)}, f)
    return 0


def analyse(ticks: list[int], commands: list[int], resets: list[int], period: float) -> dict:
    t = np.asarray(ticks, dtype=np.int64)
    c = np.asarray(commands, dtype=np.int64)
    if len(c) == 0 or len(t) < 3:
        return {"ticks": len(t), "commands": len(c), "error": "no commands"}
    # From the first period with a command to the last (the controller may finish first).
    t = t[(t >= c[0] - int(period * 1e9)) & (t <= c[-1] + int(period * 1e9))]
    per_interval = np.searchsorted(c, t[1:]) - np.searchsorted(c, t[:-1])
    first_cmd = np.searchsorted(c, t[:-1])
    met = per_interval > 0
    latency = (c[np.minimum(first_cmd[met], len(c) - 1)] - t[:-1][met]) * 1e-6
    # Periods whose state was the end of an episode (a reset follows: no command is due).
    r = np.asarray(resets, dtype=np.int64)
    near_reset = np.zeros(len(per_interval), dtype=bool)
    if len(r):
        k = np.searchsorted(t[:-1], r)  # the tick after each reset request
        for offset in (-2, -1, 0, 1):
            near_reset[np.clip(k + offset, 0, len(near_reset) - 1)] = True
    dt = np.diff(t) * 1e-6
    return {
        "ticks": len(t),
        "commands": len(c),
        "periods": len(per_interval),
        "missed": int((~met).sum()),
        "missed_fraction": float((~met).mean()),
        "missed_excluding_resets": int((~met & ~near_reset).sum()),
        "missed_fraction_excluding_resets": float(
            (~met & ~near_reset).sum() / max(1, (~near_reset).sum())
        ),
        "resets": len(r),
        "round_trip_ms": {
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
            "max": float(latency.max()),
        },
        "tick_interval_ms": {
            "mean": float(dt.mean()),
            "p99": float(np.percentile(dt, 99)),
            "max": float(dt.max()),
        },
        "achieved_rate_hz": float(len(t) / ((t[-1] - t[0]) * 1e-9)),
    }


if __name__ == "__main__":
    sys.exit(main())
