"""Run benchmarks and write bench/results/<tag>.md.

``python -m bench [BENCHMARK ...] [--quick] [--seeds N|LIST] [--tasks T,..] [--variants V,..]``

Benchmarks: learning (1 and 2), update-step (3), ros (4), memory (5), control-loop (6), gpu (7,
only with CUDA), netns (8, only as root: ROS 2 across two network namespaces); none named = all.
``fleet`` (robots feeding one learner) runs alone, with its own arguments:
``python -m bench fleet --help``. So do ``faults`` (the deploy node against a misbehaving position
robot), ``transfer`` (zero-shot sim-to-sim transfer, PyBullet -> MuJoCo) and ``video`` (what a
run's video costs): ``STANDALONE``.
``report`` only rebuilds ``bench/results/<date>.md`` from the JSON already there.
``--quick`` uses tiny budgets to check that the suite works; its files are tagged
``<date>-quick`` so they never overwrite a full run's results.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench import common, report


def _int_list(text: str) -> list[int]:
    """'3' -> [0, 1, 2]; '0,3,4' -> [0, 3, 4]."""
    values = [int(v) for v in text.split(",") if v]
    return list(range(values[0])) if "," not in text else values


def _str_list(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


# Benchmarks that run alone, each with its own arguments (``python -m bench NAME --help``).
STANDALONE = ("fleet", "faults", "transfer", "video")
BENCHMARKS = ("learning", "update-step", "ros", "memory", "control-loop", "gpu", "netns")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in STANDALONE:  # its own arguments: bench/<name>.py
        return importlib.import_module(f"bench.{argv[0]}").main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "benchmarks", nargs="*", help=f"any of {', '.join(BENCHMARKS)}, all, report (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: check the suite works")
    parser.add_argument(
        "--seeds",
        type=_int_list,
        help="learning: N = seeds 0..N-1, or a list '0,3,4' (one seed: '2,'); default: each env's "
        "own count",
    )
    parser.add_argument(
        "--tasks",
        "--env",
        type=_str_list,
        help="learning: only envs whose id contains one of these comma-separated texts",
    )
    parser.add_argument(
        "--variants",
        type=_str_list,
        help="learning: comma-separated, of this package's critic layouts first, second, "
        "first-fan_in, second-fan_in, each optionally followed by a guard +delay, +penalty or "
        "+delay+penalty (e.g. first+delay), sb3_equivalent (config/sb3_equivalent.yaml's switches) "
        "and sb3 (default: the package's default variant, "
        "the same with the other layout, and sb3)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="learning runs at a time (default 2)"
    )
    parser.add_argument(
        "--steps", type=int, help="learning: env steps per run for every task (default: each's own)"
    )
    parser.add_argument("--tag", help="results file tag (default: today's UTC date [-quick])")
    args = parser.parse_args(argv)
    unknown = set(args.benchmarks) - {*BENCHMARKS, "all", "report"}
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {BENCHMARKS}")
    tag = args.tag or (common.today() + ("-quick" if args.quick else ""))
    chosen = [b for b in args.benchmarks if b not in ("all", "report")]
    if not args.benchmarks or "all" in args.benchmarks:
        chosen = list(BENCHMARKS)
    machine = common.machine_info()
    runtime = common.load_result("runtime", tag) or {}
    start_all = time.perf_counter()
    for name in chosen:
        start = time.perf_counter()
        if name == "learning":
            from bench import learning

            variants = args.variants or learning.default_variants()
            specs = learning.select_envs(args.tasks)
            config = {
                "seeds": args.seeds,
                "quick": args.quick,
                "tasks": [s.env_id for s in specs],
                "variants": variants,
                "workers": args.workers,
                "budgets": {
                    s.env_id: args.steps or (s.quick_steps if args.quick else s.steps)
                    for s in specs
                },
            }
            common.print_header("learning (benchmarks 1 and 2)", config, machine)
            # Runs of earlier invocations with the same tag stay unless redone; the runs done
            # so far are saved after each, so an interrupted benchmark keeps what it finished.
            earlier = common.load_result("learning", tag)
            finished: list[dict] = []

            def save_progress(r: dict, finished: list[dict] = finished) -> None:
                finished.append(r)
                common.save_result("learning-partial", {"runs": finished}, tag)

            data = learning.run(
                args.quick,
                args.seeds,
                args.tasks,
                variants,
                args.workers,
                save_progress,
                args.steps,
            )
            data = learning.merge(earlier, data)
        elif name == "update-step":
            from bench import update_step

            common.print_header(
                "update step (benchmark 3)",
                {"quick": args.quick, "nets": "400-300", "batches": [64, 256], "obs/act": [20, 7]},
                machine,
            )
            data = update_step.run(args.quick)
        elif name == "ros":
            from bench import ros_bench

            common.print_header(
                "ROS 2 (benchmark 4)", {"quick": args.quick, "task": "pendulum", "seed": 0}, machine
            )
            data = ros_bench.run(args.quick)
        elif name == "control-loop":
            from bench import control_loop

            common.print_header(
                "control loop beside the learner (benchmark 6)",
                {"quick": args.quick, "config": "pendulum", "device": "cpu"},
                machine,
            )
            data = control_loop.run(args.quick)
        elif name == "gpu":
            from bench import gpu

            common.print_header("GPU learner (benchmark 7)", {"quick": args.quick}, machine)
            data = gpu.run(args.quick, args.seeds or [0, 1, 2])
        elif name == "netns":
            from bench import netns

            common.print_header(
                "two computers: network namespaces joined by a veth (benchmark 8)",
                {"quick": args.quick, "task": "pendulum", "discovery": netns.DISCOVERY_KINDS},
                machine,
            )
            data = netns.run(args.quick)
        else:
            from bench import memory

            common.print_header(
                "memory (benchmark 5)",
                {"size": memory.SIZE, "obs": memory.OBS, "act": memory.ACT},
                machine,
            )
            data = memory.run(args.quick)
        data["machine"] = machine
        data["elapsed_s"] = data.get("elapsed_s", time.perf_counter() - start)
        runtime[name] = time.perf_counter() - start
        common.save_result(name, data, tag)
    if chosen:
        runtime["total (this invocation)"] = time.perf_counter() - start_all
        common.save_result("runtime", runtime, tag)
    report.build(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
