"""A deployed policy reproduces, over DDS, the evaluation return it had at the end of training.

A short training run (the learning core on the gymnasium ``RobotEnv``) ends with a deterministic
evaluation on seeds s, s+1, s+2; the policy is exported as the controller node exports it. Then
``ddpg-deploy`` runs it as the ROS deploy node (lifecycle, its own process) against the sim node in
LOCKSTEP mode (its own process; timing cannot change results) with the same seeds, and the returns
computed from the states it observed must equal the evaluation's.

With the safety layer's rate limit on the deployed controller is policy + safety layer; the returns
then equal an in-process evaluation of exactly that composition.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.export import export_policy, load_policy
from ddpg_controller.learning.training import evaluate, train
from ddpg_controller.safety import SafetyConfig, SafetyLayer, Verdict
from ddpg_controller.sim.envs import RobotEnv
from ddpg_controller.tasks import load_task

SEED = 7
EVAL_SEED = SEED + 1_000_000  # learning.training.train's evaluation seeds
EPISODES = 3
# Small enough that the briefly trained policy's first command exceeds it in every episode,
# whatever that policy's action scale (the config's 1.0 N·m depends on the training's luck).
MAX_DELTA = 0.05


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> SimpleNamespace:
    config = DDPGConfig(
        actor_hidden=(32, 32),
        critic_hidden=(32, 32),
        actor_lr=1e-3,
        critic_lr=1e-3,
        batch_size=64,
        warmup_steps=300,
        actor_delay=0,  # 500 updates in all: the actor trains from the first
        normalize_observations=True,  # exercises the frozen normaliser in the export
    )
    result = train(
        RobotEnv("pendulum"),
        config,
        total_steps=800,
        seed=SEED,
        eval_env=RobotEnv("pendulum"),
        eval_episodes=EPISODES,
    )
    task = load_task("pendulum")
    # The metadata exactly as the controller node writes it at the end of training.
    metadata = {**task.policy_metadata(), "env_steps": result.total_steps}
    path = tmp_path_factory.mktemp("policy") / "policy.pt"
    export_policy(path, result.agent, metadata)
    return SimpleNamespace(path=path, final_eval=result.eval_returns[-1], task=task)


def deploy_returns(
    spawn, tmp_path: Path, policy: Path, *params: str, record: bool = False
) -> list[float]:
    extra = [arg for param in params for arg in ("--param", param)]
    extra += ["--record"] if record else []
    cli = spawn(
        "-m",
        "ddpg_controller.deploy_cli",
        "--policy",
        str(policy),
        "--episodes",
        str(EPISODES),
        "--seed",
        str(EVAL_SEED),
        "--sim-mode",
        "lockstep",
        "--log-dir",
        str(tmp_path / "deploy"),
        *extra,
    )
    code = cli.wait(timeout=180)
    output = cli.output()
    assert code == 0, output + (tmp_path / "deploy" / "deploy_node.log").read_text()
    returns = [float(v) for v in re.findall(r"episode \d+: return (\S+)", output)]
    assert len(returns) == EPISODES, output
    assert "latency state->command p50" in output
    return returns


def test_exported_policy_is_the_evaluated_policy(trained) -> None:
    exported = evaluate(load_policy(trained.path), RobotEnv("pendulum"), EPISODES, EVAL_SEED)
    assert exported == pytest.approx(trained.final_eval, rel=1e-9, abs=1e-9)


def test_deployed_policy_reproduces_the_final_evaluation(trained, spawn, tmp_path) -> None:
    """With ``--record`` too: the simulator renders every control period and moves the same."""
    returns = deploy_returns(spawn, tmp_path, trained.path, "max_delta:=[0.0]", record=True)
    assert returns == pytest.approx(trained.final_eval, rel=1e-9, abs=1e-6)
    video = iio.imread(tmp_path / "deploy" / "rollout.mp4", plugin="FFMPEG")
    assert video.shape[0] >= EPISODES * trained.task.max_episode_steps
    assert video.shape[1:] == (120, 160, 3)


def test_deployed_policy_with_rate_limit_is_policy_plus_safety_layer(
    trained, spawn, tmp_path
) -> None:
    policy = load_policy(trained.path)
    task = trained.task
    meta = policy.metadata
    config = SafetyConfig.build(
        task.action_dim,
        meta["action_low"],
        meta["action_high"],
        task.control_period,
        task.command_interface,
        max_delta=[MAX_DELTA],
    )
    period_ns = round(task.control_period * 1e9)
    layer = SafetyLayer(config)
    env = RobotEnv("pendulum")
    expected, limited = [], 0
    for episode in range(EPISODES):
        observation, _ = env.reset(seed=EVAL_SEED + episode)
        layer.start(now=0.0)
        total = 0.0
        for step in range(task.max_episode_steps):
            state = env.state
            assert layer.check_state(step * period_ns, state.position, now=0.0)[0] is Verdict.ACT
            action = policy(observation)
            command, _ = layer.command(action, step * period_ns)
            limited += int(not np.allclose(command, np.clip(action, -2.0, 2.0)))
            observation, reward, *_ = env.step(command)
            total += reward
        expected.append(total)
    assert limited > 0, "the rate limit never acted: the comparison would show nothing"
    returns = deploy_returns(spawn, tmp_path, trained.path, f"max_delta:=[{MAX_DELTA}]")
    assert returns == pytest.approx(expected, rel=1e-9, abs=1e-6)
