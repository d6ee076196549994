"""Fleet training: robots (sim + actor node each) feed one learner node over DDS.

The messages' layout round-trips; `ddpg-train --robots 2` trains end to end with both robots'
transitions in one replay; and the faults a fleet meets are counted, never stored: duplicate,
late, non-finite and wrong-shape transition batches, wrong-shape and stale policies, and a learner
that restarts from its checkpoint while the robot keeps acting and queueing, and a robot that
joins late and leaves.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ddpg_controller.fleet_protocol import (
    EPISODES_TOPIC,
    POLICY_TOPIC,
    TRANSITION_COLUMNS,
    TRANSITIONS_TOPIC,
    FleetMessageError,
    Inbox,
    Outbox,
    PolicyWeights,
    TransitionBatch,
    decode_json,
    decode_policy,
    decode_transitions,
    encode_policy,
    encode_transitions,
    transition_row,
)
from ddpg_controller.run_directory import RunDirectory

TRAIN = str(Path(sys.executable).parent / "ddpg-train")
CONFIG = Path(__file__).resolve().parents[1] / "config" / "pendulum.yaml"


def _row(obs_dim: int = 3, nan: bool = False) -> np.ndarray:
    obs = np.full(obs_dim, np.nan if nan else 0.5)
    return transition_row(0, 0, 0, time.time(), -1.0, False, False, obs, np.zeros(1), obs)


def test_messages_round_trip_and_malformed_ones_are_errors() -> None:
    rows = np.stack([_row(), _row()])
    batch = decode_transitions(encode_transitions(TransitionBatch("robot_3", 7, 42, rows, 3, 1)))
    assert (batch.robot, batch.session, batch.sequence) == ("robot_3", 7, 42)
    np.testing.assert_array_equal(batch.rows, rows)
    assert batch.obs.shape == (2, 3) and batch.actions.shape == (2, 1)
    assert batch.column("reward").tolist() == [-1.0, -1.0]
    assert rows.shape[1] == len(TRANSITION_COLUMNS) + 3 + 1 + 3

    blocks = {"obs_mean": np.zeros(3), "obs_std": np.ones(3), "out.weight": np.arange(6.0)}
    sent = PolicyWeights(
        "run", 40, 0.0, 1000, False, -1, {"type": "ou"}, 0.5, [8], float("inf"), blocks
    )
    policy = decode_policy(encode_policy(sent))
    assert (policy.run, policy.version, policy.env_steps, policy.actor_hidden) == (
        "run",
        40,
        1000,
        [8],
    )
    np.testing.assert_array_equal(policy.blocks["out.weight"], np.arange(6.0))
    assert policy.obs_clip == float("inf")

    broken = encode_transitions(TransitionBatch("robot_3", 7, 42, rows, 3, 1))
    broken.layout.dim[0].label = "{}"
    with pytest.raises(FleetMessageError, match="transition batch"):
        decode_transitions(broken)
    short = encode_policy(sent)
    short.data = short.data[:-1]
    with pytest.raises(FleetMessageError, match="policy"):
        decode_policy(short)


def test_batches_are_kept_until_stored_and_stored_once() -> None:
    outbox = Outbox("robot_0", 5, 3, 1, max_batches=3)
    inbox = Inbox()
    sent = []
    for _ in range(2):
        outbox.add(_row())
        outbox.seal()
    sent += outbox.to_send(learner_returned=True)
    assert [b.sequence for b in sent] == [0, 1]
    assert [inbox.accept(b) for b in sent] == [0, 0]
    outbox.acknowledge(inbox.sequences["robot_0/5"])
    # The learner goes away: batches accumulate, the oldest beyond 3 are dropped and counted.
    for _ in range(5):
        outbox.add(_row())
        outbox.add(_row())
        outbox.seal()
    assert outbox.counters["batches_dropped"] == 2 and outbox.counters["transitions_dropped"] == 4
    # A learner is back: the unacknowledged batches go; the gap left by the dropped ones counts.
    back = outbox.to_send(learner_returned=True)
    assert [b.sequence for b in back] == [4, 5, 6]
    assert inbox.accept(back[0]) == 2
    assert [inbox.accept(b) for b in back[1:]] == [0, 0]
    assert outbox.to_send(learner_returned=False) == []
    # Sent again before the acknowledgement came: refused, not stored twice.
    assert [inbox.accept(b) for b in outbox.to_send(learner_returned=True)] == [None] * 3
    outbox.acknowledge(6)
    assert outbox.to_send(learner_returned=True) == []


def _params(tmp_path: Path, **controller: object) -> Path:
    """pendulum.yaml with small networks and a short warm-up: a quick fleet run."""
    document = yaml.safe_load(CONFIG.read_text())
    section = document["/**/controller"]["ros__parameters"]
    section.update(controller)
    section["ddpg"].update(
        actor_hidden=[64, 64], critic_hidden=[64, 64], warmup_steps=200, batch_size=64
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_two_robots_train_one_learner_through_ros(tmp_path: Path) -> None:
    config = _params(
        tmp_path,
        eval_every_steps=0,
        final_eval_episodes=2,
        evaluators=["robot_0", "robot_1"],
        checkpoint_every_steps=0,
    )
    run_dir = tmp_path / "run"
    command = [TRAIN, "--robots", "2", "--sim-mode", "lockstep", "--steps", "800"]
    command += ["--config", str(config), "--run-dir", str(run_dir), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    summary = yaml.safe_load((run_dir / "summary.yaml").read_text())
    by_robot = summary["env_steps_by_robot"]
    assert set(by_robot) == {"robot_0", "robot_1"} and min(by_robot.values()) >= 200
    assert summary["env_steps"] == sum(by_robot.values()) >= 800
    # One learner, one replay, the updates-per-step ratio held over the fleet's steps: in lockstep
    # the robots hold their commands while the learner owes more than max_update_backlog (100)
    # updates, and no update is dropped.
    updates_owed = summary["env_steps"] - 200 + 1
    assert summary["updates_dropped"] == 0
    assert updates_owed - 100 - 2 * 20 <= summary["updates"] <= updates_owed
    counters = summary["learner_counters"]
    assert counters.get("batches_missing", 0) == 0
    assert counters.get("batches_duplicate_or_late", 0) == 0
    assert counters["policies_published"] >= 2
    for robot in ("robot_0", "robot_1"):
        actor = summary["actor_counters"][robot]
        assert actor["policies_loaded"] >= 1 and actor["batches_dropped"] == 0
    rows = RunDirectory(run_dir).read_metrics()
    assert {r["robot"] for r in rows if r["kind"] == "train"} == {"robot_0", "robot_1"}
    # The final evaluation's two episodes were shared: one on each robot.
    assert sorted(r["robot"] for r in rows if r["kind"] == "eval") == ["robot_0", "robot_1"]
    assert (run_dir / "policy.pt").stat().st_size > 0


def _node(module: str, config: Path, namespace: str, **parameters: object) -> list[str]:
    command = ["-m", f"ddpg_controller.{module}", "--ros-args", "-r", f"__ns:=/{namespace}"]
    command += ["--params-file", str(config)]
    for key, value in parameters.items():
        command += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return command


def test_faults_are_counted_and_a_learner_restart_loses_nothing(tmp_path, spawn, ros) -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    from ddpg_controller.learner_node import REPORT_QOS

    config = _params(tmp_path, eval_every_steps=0, final_eval_episodes=1, checkpoint_every_steps=0)
    run_dir = tmp_path / "run"
    spawn(*_node("sim_node", config, "robot_0", mode="lockstep"))
    actor = spawn(*_node("actor_node", config, "robot_0", lockstep=True))
    learner_args = _node(
        "learner_node", config, "fleet", run_dir=run_dir, total_steps=100_000, save_replay=True
    )
    learner = spawn(*learner_args)
    states: list[int] = []
    ros.node.create_subscription(JointState, "/robot_0/joint_states", states.append, 10)
    health: list[dict[str, str]] = []  # the learner's status on /diagnostics
    ros.node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda msg: health.extend(
            {"level": s.level, **{v.key: v.value for v in s.values}}
            for s in msg.status
            if s.name == "fleet/controller: learner"
        ),
        10,
    )
    metrics = RunDirectory(run_dir)
    assert ros.spin_until(lambda: len(metrics.read_metrics()) >= 3, 120), learner.output()[-2000:]
    assert ros.spin_until(lambda: any(int(h["updates"]) > 0 for h in health), 10), health
    assert health[-1]["level"] == DiagnosticStatus.OK and int(health[-1]["replay_size"]) > 0

    # Transition batches from a made-up robot: stored once, in order, never with a NaN.
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    transitions = ros.node.create_publisher(Float64MultiArray, TRANSITIONS_TOPIC, reliable)
    assert ros.spin_until(lambda: transitions.get_subscription_count() > 0, 30)
    good = np.stack([_row(), _row()])
    for sequence, rows, obs_dim in [
        (0, good, 3),
        (0, good, 3),  # duplicate
        (2, good, 3),  # batch 1 missing
        (1, good, 3),  # late: older than one stored
        (3, np.stack([_row(), _row(nan=True)]), 3),  # one non-finite row
        (4, np.stack([_row(5)]), 5),  # wrong shape
    ]:
        transitions.publish(
            encode_transitions(TransitionBatch("robot_x", 1, sequence, rows, obs_dim, 1))
        )
    # Policies the actor must refuse: another network layout, and one older than its own.
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    policies = ros.node.create_publisher(Float64MultiArray, POLICY_TOPIC, latched)
    run = str(run_dir.resolve())
    wrong = {"obs_mean": np.zeros(3), "obs_std": np.ones(3), "out.weight": np.zeros(8)}
    reported: dict[str, int] = {}

    def on_report(msg: String) -> None:
        report = decode_json(msg)
        if report["robot"] == "robot_0":
            reported.update(report["counters"])

    ros.node.create_subscription(String, EPISODES_TOPIC, on_report, REPORT_QOS)

    def refused() -> bool:
        """Both kinds refused, as the actor's episode reports say (sent again until they do)."""
        for version in (10**9, 0):
            weights = PolicyWeights(
                run, version, 0.0, 0, False, -1, {"type": "ou"}, 1.0, [8], 10.0, wrong
            )
            policies.publish(encode_policy(weights))
            ros.spin_until(lambda: False, 0.3)
        counts = (reported.get("policies_refused_shape"), reported.get("policies_refused_stale"))
        return min(c or 0 for c in counts) >= 1

    # The learner's own policy first: an actor with none would take the other layout as its own.
    assert ros.spin_until(lambda: reported.get("policies_loaded", 0) >= 1, 60), reported
    assert ros.spin_until(refused, 60), reported

    # A robot joins late and leaves after one episode: training goes on.
    spawn(*_node("sim_node", config, "robot_1", mode="lockstep"))
    late = spawn(*_node("actor_node", config, "robot_1", lockstep=True))

    def joined() -> bool:
        return any(row["robot"] == "robot_1" for row in metrics.read_metrics())

    assert ros.spin_until(joined, 60), late.output()[-2000:]
    late.stop()
    episodes = len(metrics.read_metrics())
    assert ros.spin_until(lambda: len(metrics.read_metrics()) >= episodes + 2, 60)

    # The learner stops (Ctrl-C: it checkpoints); the robot goes on acting meanwhile.
    learner.popen.send_signal(signal.SIGINT)
    assert learner.wait(60) == 0, learner.output()[-2000:]
    states.clear()
    assert ros.spin_until(lambda: len(states) >= 300, 60), "the robot stopped with the learner"
    learner = spawn(*learner_args, "-p", "resume:=true", "-p", "total_steps:=1")
    assert learner.wait(180) == 0, learner.output()[-3000:]

    summary = yaml.safe_load((run_dir / "summary.yaml").read_text())
    counters = summary["learner_counters"]
    assert counters["learner_restarts"] == 1
    # robot_x's duplicate and late batch, and the real robot's batches sent again to the new
    # learner (unacknowledged when the old one stopped): refused, never stored twice.
    assert counters["batches_duplicate_or_late"] >= 2
    assert counters["batches_missing"] == 1  # robot_x's batch 1: none of the real robot's
    assert counters["transitions_nonfinite"] == 1
    assert counters["batches_wrong_shape"] == 1
    assert summary["env_steps_by_robot"]["robot_x"] == 2 + 2 + 1
    assert summary["env_steps_by_robot"]["robot_1"] >= 200
    # The same counters, cumulative, on the last row of metrics.csv.
    last_row = metrics.read_metrics()[-1]
    for name in ("batches_missing", "transitions_nonfinite", "learner_restarts"):
        assert int(last_row[name]) == summary["fleet_counters"][name] == counters[name]
    actor_counters = summary["actor_counters"]["robot_0"]
    assert actor_counters["policies_refused_shape"] >= 1
    assert actor_counters["policies_refused_stale"] >= 1
    assert actor_counters["batches_dropped"] == 0
    # What the robot did while the learner was away was queued and delivered on its return,
    # each transition once.
    stored = summary["env_steps_by_robot"]["robot_0"]
    assert actor_counters["transitions"] - 50 <= stored <= actor_counters["transitions"]
    assert actor.alive()


def test_a_realtime_actor_holds_when_the_learner_is_silent_or_done(tmp_path, spawn, ros) -> None:
    """In real time an actor without a learner, or told that training has ended, sends the safe
    command (zero torque for the pendulum) instead of exploring, says so, and acts again when a
    learner speaks; the learner is played here (policy and acknowledgements)."""
    import dataclasses

    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float64MultiArray, String

    from ddpg_controller.actor_node import acting_policy_for
    from ddpg_controller.fleet_protocol import STORED_TOPIC, encode_json
    from ddpg_controller.learner_node import REPORT_QOS
    from ddpg_controller.learning.config import NoiseConfig
    from ddpg_controller.tasks import load_task

    config = _params(tmp_path)
    spawn(*_node("sim_node", config, "robot_0", mode="realtime"))
    actor = spawn(*_node("actor_node", config, "robot_0", lockstep=False, learner_timeout=1.0))
    commands: list[tuple[float, float]] = []  # (time, torque)
    ros.node.create_subscription(
        Float64MultiArray,
        "/robot_0/effort_controller/commands",
        lambda msg: commands.append((time.monotonic(), msg.data[0])),
        10,
    )
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    policies = ros.node.create_publisher(Float64MultiArray, POLICY_TOPIC, latched)
    acknowledgements = ros.node.create_publisher(String, STORED_TOPIC, REPORT_QOS)
    task = load_task("pendulum")
    blocks = None

    def policy(version: int, training_done: bool) -> Float64MultiArray:
        nonlocal blocks
        header = PolicyWeights("run", version, time.time(), 0, False, -1, {}, 1.0, [8], 10.0, {})
        blocks = blocks or acting_policy_for(header, task).named_arrays()
        noise = dataclasses.asdict(NoiseConfig())
        weights = PolicyWeights(
            "run", version, time.time(), 0, False, -1, noise, 1.0, [8], 10.0, blocks, training_done
        )
        return encode_policy(weights)

    def torques(seconds: float, acknowledge: bool) -> np.ndarray:
        """The torques sent over the next ``seconds``, acknowledging every 0.2 s or not."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if acknowledge:
                acknowledgements.publish(encode_json({}))
            ros.spin_until(lambda: False, 0.2)
        return np.array([torque for at, torque in commands if at > start])

    policies.publish(policy(1, False))
    assert ros.spin_until(lambda: len(commands) > 20, 60), actor.output()[-2000:]
    assert np.any(np.abs(torques(1.0, acknowledge=True)) > 1e-3)  # exploring
    torques(1.2, acknowledge=False)  # the learner falls silent for its learner_timeout (1 s)
    held = torques(1.0, acknowledge=False)
    assert held.size > 10 and np.all(held == 0.0), held
    assert "no policy or acknowledgement from the learner" in actor.output()
    torques(0.3, acknowledge=True)
    assert np.any(np.abs(torques(1.0, acknowledge=True)) > 1e-3)  # the learner is back
    assert "the learner is back: acting again" in actor.output()
    policies.publish(policy(2, True))  # the learner's last word
    torques(0.3, acknowledge=True)
    held = torques(1.0, acknowledge=True)
    assert held.size > 10 and np.all(held == 0.0), held
    assert "training has ended: safe command" in actor.output()
    assert actor.stop() == 0 and "Traceback" not in actor.output()
