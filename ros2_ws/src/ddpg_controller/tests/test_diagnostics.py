"""``/diagnostics`` as rqt_robot_monitor and Foxglove read it: the deploy node's safety state (an
e-stop is ERROR in the very next message), the learner's health and the simulator's real-time
factor, each node in its own process, read over DDS by this one."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from test_deploy_faults import LIMIT, FakeRobot, export_test_policy, start_deploy

PACKAGE = Path(__file__).resolve().parents[1]


class StatusLog:
    """Every DiagnosticStatus received on /diagnostics, in order, by name."""

    def __init__(self, ros) -> None:
        self.ros = ros
        self.received: list[tuple[float, DiagnosticStatus]] = []
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_array, 100)

    def _on_array(self, msg: DiagnosticArray) -> None:
        self.received += [(time.monotonic(), status) for status in msg.status]

    def of(self, name: str, since: int = 0) -> list[DiagnosticStatus]:
        return [status for _, status in self.received[since:] if status.name == name]

    def wait_for(self, name: str, condition, timeout: float, since: int = 0) -> DiagnosticStatus:
        def found() -> bool:
            return any(condition(s) for s in self.of(name, since))

        assert self.ros.spin_until(found, timeout), [
            (s.level, s.message) for s in self.of(name, since)
        ]
        return next(s for s in self.of(name, since) if condition(s))


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {pair.key: pair.value for pair in status.values}


def test_deploy_safety_status_and_an_e_stop_is_error_in_the_next_message(
    spawn, ros, tmp_path
) -> None:
    policy = export_test_policy(tmp_path / "reacher.pt")
    start_deploy(spawn, policy, "state_timeout:=5.0", "max_delta:=[0.01]")
    log = StatusLog(ros)
    name = "deploy: safety"
    stale = log.wait_for(name, lambda s: s.level == DiagnosticStatus.STALE, 30.0)
    assert stale.message.startswith("unconfigured")

    robot = FakeRobot(ros, policy)
    robot.configure_and_activate()
    for _ in range(5):
        command = robot.step(robot.random_state())
        assert np.all(np.abs(command) <= LIMIT)
    # The policy's outputs are saturated at the torque bound (0.1) or near it, and each command
    # may change by 0.01 only: the rate limit changed every one of them.
    ok = log.wait_for(
        name,
        lambda s: s.level == DiagnosticStatus.OK and int(values(s)["clipped_commands"]) >= 5,
        10.0,
    )
    assert ok.message == "active: commanding effort_controller/commands"
    figures = values(ok)
    assert figures["active"] == "true" and figures["e_stop"] == "false"
    assert int(figures["commands"]) >= 5 and float(figures["latency_p99_ms"]) > 0.0

    # An e-stop: the status changes at once, not at the next 1 Hz tick. At most one message of
    # the old state may already have been on its way when the e-stop arrived.
    mark = len(log.received)
    robot.e_stop_pub.publish(Bool(data=True))
    error = log.wait_for(name, lambda s: s.level == DiagnosticStatus.ERROR, 5.0, since=mark)
    before_error = log.of(name, mark)[: log.of(name, mark).index(error)]
    assert len(before_error) <= 1, [(s.level, s.message) for s in before_error]
    assert error.message == "e-stop latched: safe command until ~/clear_e_stop"
    assert values(error)["e_stop"] == "true"

    # Until cleared, every status says so, including the periodic ones, and counts the states
    # answered with the safe command.
    mark = len(log.received)
    assert robot.step(robot.random_state()).tolist() == [0.0, 0.0]
    log.wait_for(name, lambda s: int(values(s)["safe_commands"]) == 1, 10.0, since=mark)
    assert ros.spin_until(lambda: len(log.of(name, mark)) >= 2, 10.0), "no 1 Hz status"
    assert all(s.level == DiagnosticStatus.ERROR for s in log.of(name, mark))
    assert ros.call(robot.clear, Trigger.Request()).success
    log.wait_for(name, lambda s: s.level == DiagnosticStatus.OK, 5.0, since=mark)


def test_controller_and_sim_report_learner_health_and_real_time_factor(
    spawn, ros, tmp_path
) -> None:
    """The two nodes of ``./run train`` (lockstep), with a short warm-up so that learning starts."""
    config = str(PACKAGE / "config" / "pendulum.yaml")
    spawn(
        "-m", "ddpg_controller.sim_node", "--ros-args", "-r", "__node:=sim", "--params-file", config
    )
    controller = spawn(
        *("-m", "ddpg_controller.controller_node", "--ros-args", "-r", "__node:=controller"),
        *("--params-file", config, "-p", "use_sim_time:=true", "-p", f"run_dir:={tmp_path}/run"),
        *("-p", "total_steps:=100000", "-p", "eval_every_steps:=0", "-p", "ddpg.warmup_steps:=200"),
    )
    log = StatusLog(ros)
    learner = log.wait_for(
        "controller: learner",
        lambda s: s.level == DiagnosticStatus.OK and int(values(s)["updates"]) > 0,
        120.0,
    )
    assert learner.message.startswith("learning: ") and learner.hardware_id == "pendulum"
    figures = values(learner)
    assert int(figures["replay_size"]) >= 200 and int(figures["env_steps"]) >= 200
    assert float(figures["updates_per_step_target"]) == 1.0
    assert float(figures["updates_per_env_step"]) <= 1.0 and figures["updates_dropped"] == "0"
    assert np.isfinite(float(figures["critic_loss"])), controller.output()[-2000:]

    # Lockstep: simulated time runs as fast as the commands come (the learner sets the pace).
    sim = log.wait_for("sim: simulation", lambda s: int(values(s)["control_periods"]) >= 200, 30)
    assert sim.level == DiagnosticStatus.OK and float(values(sim)["real_time_factor"]) > 0.0
    assert sim.message.startswith("lockstep: real-time factor")
