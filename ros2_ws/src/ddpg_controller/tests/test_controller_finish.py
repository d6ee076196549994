"""Ctrl-C while the controller writes its final files still leaves a complete run directory.

A user stopping ``ros2 launch`` just as training ends used to lose summary.yaml and
learning_curve.png (the Ctrl-C landed in matplotlib's import); the node said "finished cleanly".
"""

from __future__ import annotations

import math
import os
import signal
import time

import yaml

from ddpg_controller.learning.export import load_policy
from ddpg_controller.train_cli import CONTROLLER_NODE, SIM_NODE, node_command, package_config

FINAL_FILES_FIRST = "the run's final files are written first"


def test_ctrl_c_during_the_final_files_leaves_a_complete_run_directory(spawn, tmp_path) -> None:
    config = package_config("pendulum")
    run_dir = tmp_path / "run"
    spawn(*node_command(SIM_NODE, config, {"task": "pendulum", "seed": 0}))
    controller = spawn(
        *node_command(
            CONTROLLER_NODE,
            config,
            {
                "run_dir": run_dir,
                "use_sim_time": True,
                # An episode and a half, all warm-up (no learning, a quick test): training
                # stops at exactly 300 steps, mid-episode.
                "total_steps": 300,
                "eval_every_steps": 0,
                "final_eval_episodes": 1,
                "save_replay": False,
            },
        )
    )
    # The final checkpoint is the first file the end of training writes (no periodic one here):
    # from then on, Ctrl-C every 20 ms until one has landed in the final writes.
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        assert time.monotonic() < deadline and controller.alive(), controller.output()[-3000:]
        time.sleep(0.01)
    while controller.alive() and FINAL_FILES_FIRST not in controller.output():
        os.killpg(controller.popen.pid, signal.SIGINT)
        time.sleep(0.02)
    assert controller.wait(60) == 0, controller.output()[-3000:]
    assert FINAL_FILES_FIRST in controller.output(), "no Ctrl-C landed while finishing"

    summary = yaml.safe_load((run_dir / "summary.yaml").read_text())
    assert summary["env_steps"] == 300 and math.isfinite(summary["final_eval_return"])
    assert load_policy(run_dir / "policy.pt").metadata["task"] == "pendulum"
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
