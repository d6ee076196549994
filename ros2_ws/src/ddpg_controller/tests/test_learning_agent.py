"""Agent plumbing: devices, action scaling, warm-up, update ratio, training loop semantics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG, resolve_device
from ddpg_controller.learning.training import evaluate, train


def cfg(**overrides: object) -> DDPGConfig:
    base = {"actor_hidden": [16], "critic_hidden": [16, 16], "batch_size": 4, "device": "cpu"}
    return DDPGConfig.from_dict({**base, **overrides})


def test_device_selection() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert DDPG(2, 1, -1.0, 1.0, cfg(device="cpu")).device == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match=r"'cuda' requested but torch.cuda.is_available"):
            DDPG(2, 1, -1.0, 1.0, cfg(device="cuda"))


def test_action_scaling_and_replay_space() -> None:
    agent = DDPG(2, 2, [-2.0, 0.0], [2.0, 10.0], cfg(warmup_steps=0, noise={"type": "none"}))
    np.testing.assert_allclose(agent.to_env_action(np.array([-1.0, 1.0])), [-2.0, 10.0])
    np.testing.assert_allclose(agent.to_unit_action(np.array([1.0, 2.5])), [0.5, -0.5])
    np.testing.assert_allclose(agent.to_unit_action(np.array([9.0, -5.0])), [1.0, -1.0])
    agent.observe(np.zeros(2), np.array([1.0, 2.5]), 1.0, np.ones(2), True)
    np.testing.assert_allclose(agent.replay.field("actions")[0], [0.5, -0.5])
    assert agent.replay.field("terminated")[0, 0] == 1.0 and agent.total_steps == 1
    with pytest.raises(ValueError, match="bounds"):
        DDPG(2, 1, 1.0, -1.0, cfg())


def test_warmup_exploration_and_determinism() -> None:
    agent = DDPG(2, 1, -3.0, 3.0, cfg(warmup_steps=5, noise={"type": "gaussian", "sigma": 0.5}))
    obs = np.array([0.3, -0.2])
    warm = np.array([agent.act(obs, explore=True)[0] for _ in range(200)])
    assert warm.min() < -2 and warm.max() > 2 and np.all(np.abs(warm) <= 3)  # uniform on bounds
    greedy = agent.act(obs, explore=False)
    assert np.array_equal(agent.act(obs, explore=False), greedy)
    for _ in range(5):
        agent.observe(obs, greedy, 0.0, obs, False)
    noisy = np.array([agent.act(obs, explore=True)[0] for _ in range(200)])
    assert noisy.std() == pytest.approx(0.5 * 3, rel=0.2)  # sigma in [-1,1] units, scaled x3
    assert np.all(np.abs(noisy) <= 3)


def test_act_with_a_policy_snapshot() -> None:
    """The control thread acts through an acting_policy() snapshot, not the live actor."""
    agent = DDPG(2, 1, -3.0, 3.0, cfg(warmup_steps=0, noise={"type": "gaussian", "sigma": 0.2}))
    obs = np.array([0.3, -0.2])
    snapshot = agent.acting_policy()
    np.testing.assert_allclose(
        agent.act(obs, explore=False, policy=snapshot), agent.act(obs, explore=False), atol=1e-6
    )
    with torch.no_grad():
        agent.actor.out.bias.add_(5.0)  # training moves the live actor; the snapshot stays
    assert agent.act(obs, explore=False)[0] > 2.9
    assert agent.act(obs, explore=False, policy=snapshot)[0] < 2.0
    noisy = [agent.act(obs, explore=True, policy=lambda o: np.array([0.6]))[0] for _ in range(400)]
    assert np.mean(noisy) == pytest.approx(0.6, abs=0.1)  # noise std 0.2 * 3 around mu(s)
    assert np.std(noisy) == pytest.approx(0.6, rel=0.15)
    near_top = [
        agent.act(obs, explore=True, policy=lambda o: np.array([2.9]))[0] for _ in range(50)
    ]
    assert max(near_top) == 3.0  # clipped to the bound


def test_noise_schedule_scales_exploration() -> None:
    agent = DDPG(
        1,
        1,
        -1.0,
        1.0,
        cfg(
            noise={
                "type": "gaussian",
                "sigma": 0.1,
                "scale_initial": 1.0,
                "scale_final": 0.0,
                "schedule_steps": 10,
            }
        ),
    )
    for _ in range(10):
        agent.observe(np.zeros(1), np.zeros(1), 0.0, np.zeros(1), False)
    obs = np.zeros(1)
    assert agent.act(obs, explore=True)[0] == agent.act(obs, explore=False)[0]


@pytest.mark.parametrize(("ratio", "expected"), [(1.0, 97), (0.5, 48), (2.0, 194), (0.0, 0)])
def test_updates_per_step_ratio(ratio: float, expected: int) -> None:
    agent = DDPG(2, 1, -1.0, 1.0, cfg(warmup_steps=4, updates_per_step=ratio))
    assert agent.train_step() is None  # nothing to learn from yet
    rng = np.random.default_rng(0)
    for _ in range(100):
        agent.observe(rng.normal(size=2), rng.uniform(-1, 1, 1), 0.0, rng.normal(size=2), False)
        for _ in range(agent.updates_due()):
            assert agent.train_step() is not None
    assert agent.num_updates == expected  # int((100 - 4 + 1) * ratio)


class CountEnv(gym.Env):
    """obs = step count; terminates at step ``end`` (a true terminal state)."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.observation_space = gym.spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t >= self.end, False, {}


def test_truncation_is_not_termination() -> None:
    small = cfg(warmup_steps=1000, buffer_size=100)
    truncating = gym.wrappers.TimeLimit(CountEnv(end=50), max_episode_steps=4)
    result = train(truncating, small, total_steps=12, seed=0)
    assert result.episode_lengths == [4, 4, 4]
    assert result.agent.replay.field("terminated")[:12].sum() == 0  # time limits still bootstrap
    result = train(CountEnv(end=3), small, total_steps=12, seed=0)
    assert result.episode_returns == [3.0] * 4
    np.testing.assert_array_equal(result.agent.replay.field("terminated")[:12, 0], [0, 0, 1] * 4)


def test_train_loop_updates_evaluates_and_stops() -> None:
    env = gym.make("Pendulum-v1")
    calls: list[int] = []

    def callback(step: int, agent: DDPG, info: dict) -> bool:
        calls.append(step)
        return step < 150

    result = train(
        env,
        cfg(warmup_steps=50, updates_per_step=0.5),
        400,
        seed=0,
        eval_env=gym.make("Pendulum-v1"),
        eval_every=100,
        eval_episodes=2,
        callback=callback,
    )
    assert result.total_steps == 150 and calls[-1] == 150
    assert result.num_updates == int((150 - 50 + 1) * 0.5)
    assert result.eval_steps == [100, 150] and [len(r) for r in result.eval_returns] == [2, 2]
    policy = result.agent.acting_policy()
    first = evaluate(policy, gym.make("Pendulum-v1"), 2, seed=7)
    assert first == evaluate(policy, gym.make("Pendulum-v1"), 2, seed=7)  # deterministic


def test_bfloat16_update_tracks_float32() -> None:
    """precision: bfloat16 autocasts the update's matmuls: the critic's loss on a batch stays
    within 5% of float32's, while weights and Adam state stay float32 and do get updated."""

    def agent(precision: str) -> DDPG:
        config = DDPGConfig.from_dict(
            {"batch_size": 64, "device": "cpu", "precision": precision, "warmup_steps": 0}
        )
        learner = DDPG(4, 2, -1.0, 1.0, config, seed=3)
        rng = np.random.default_rng(0)
        for _ in range(200):
            obs = rng.normal(size=4)
            learner.observe(obs, rng.uniform(-1, 1, 2), rng.normal(), obs + 0.1, False)
        return learner

    full, half = agent("float32"), agent("bfloat16")
    before = [p.detach().clone() for p in half.critic.parameters()]
    losses_full, losses_half = full.train_step(), half.train_step()
    assert float(losses_half["critic_loss"]) == pytest.approx(
        float(losses_full["critic_loss"]), rel=0.05
    )
    for p_before, p_after in zip(before, half.critic.parameters(), strict=True):
        assert p_after.dtype == torch.float32
        assert not torch.equal(p_before, p_after)
    with pytest.raises(ValueError, match="precision"):
        DDPGConfig.from_dict({"precision": "float16"})
