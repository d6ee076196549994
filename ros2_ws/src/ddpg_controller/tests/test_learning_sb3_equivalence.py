"""With config/sb3_equivalent.yaml the package's DDPG is Stable-Baselines3's: the correctness check
of the learning core. From identical weights, fed identical batches, a few updates of each leave
the same parameters (to float rounding: the package's Adam is the fused kernel), for DDPG and with
the TD3 options for SB3's TD3; the networks' shapes and inits are the same; warm-up actions carry
the exploration noise as SB3's do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DDPG as SB3DDPG
from stable_baselines3 import TD3 as SB3TD3
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from ddpg_controller.learning.config import load_ddpg_config
from ddpg_controller.learning.ddpg import DDPG, Batch, StepKind

CONFIG = Path(__file__).resolve().parents[1] / "config" / "sb3_equivalent.yaml"
OBS, ACT, BATCH, UPDATES = 5, 2, 32, 6
HIDDEN = (64, 48)  # small for speed; the update does not depend on the widths


class _Spaces(gym.Env):
    """Only the spaces: SB3 needs an env to build its networks."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)


def _sb3_config():
    cfg = load_ddpg_config(CONFIG, "/**/controller")
    return dataclasses.replace(
        cfg, actor_hidden=HIDDEN, critic_hidden=HIDDEN, batch_size=BATCH, cuda_graph="off"
    )


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def _copy(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Layer i of ``src`` into layer i of ``dst`` (same shapes: the same architecture)."""
    with torch.no_grad():
        for a, b in zip(_linears(src), _linears(dst), strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p for layer in _linears(module) for p in (layer.weight, layer.bias)]


def test_same_networks_and_inits_as_sb3() -> None:
    cfg = _sb3_config()
    agent = DDPG(OBS, ACT, -1.0, 1.0, cfg, seed=0)
    sb3 = SB3DDPG(
        "MlpPolicy", _Spaces(), policy_kwargs={"net_arch": list(HIDDEN)}, device="cpu", seed=0
    )
    for ours, theirs in ((agent.actor, sb3.actor.mu), (agent.critic, sb3.critic.qf0)):
        assert [p.shape for p in _params(ours)] == [p.shape for p in _params(theirs)]
        for a, b in zip(_linears(ours), _linears(theirs), strict=True):
            bound = 1.0 / np.sqrt(a.in_features)  # U[-1/sqrt(fan_in), +] on every layer
            for p, q in ((a.weight, b.weight), (a.bias, b.bias)):
                assert p.abs().max() <= bound and q.abs().max() <= bound
            # The weights fill that range in both (not a smaller init such as U[+-3e-3]).
            assert a.weight.abs().max() > 0.9 * bound and b.weight.abs().max() > 0.9 * bound


@pytest.mark.parametrize("td3", [False, True], ids=["ddpg", "td3"])
def test_updates_from_identical_weights_and_batches_match_sb3(td3: bool) -> None:
    """DDPG against SB3's DDPG; with the TD3 options (twin critics, actor and targets every 2nd
    update) against SB3's TD3. Target-policy noise is 0 here: its draws come from another stream."""
    cfg = _sb3_config()
    if td3:
        cfg = dataclasses.replace(cfg, twin_critics=True, policy_delay=2)
    agent = DDPG(OBS, ACT, -1.0, 1.0, cfg, seed=1)
    kwargs = {"policy_delay": 2, "target_policy_noise": 0.0} if td3 else {}
    sb3 = (SB3TD3 if td3 else SB3DDPG)(
        "MlpPolicy",
        _Spaces(),
        learning_rate=cfg.actor_lr,
        batch_size=BATCH,
        tau=cfg.tau,
        gamma=cfg.gamma,
        policy_kwargs={"net_arch": list(HIDDEN)},
        device="cpu",
        seed=1,
        **kwargs,
    )
    sb3.set_logger(Logger(folder=None, output_formats=[]))
    pairs = [
        (agent.actor, sb3.actor.mu),
        (agent.critic, sb3.critic.qf0),
        (agent.actor_target, sb3.actor_target.mu),
        (agent.critic_target, sb3.critic_target.qf0),
    ]
    if td3:
        pairs += [(agent.critic2, sb3.critic.qf1), (agent.critic2_target, sb3.critic_target.qf1)]
    for ours, theirs in pairs:
        _copy(ours, theirs)
    start = [[p.detach().clone() for p in _params(ours)] for ours, _ in pairs]

    rng = np.random.default_rng(2)
    batches = []
    for _ in range(UPDATES):
        obs, next_obs = (
            torch.as_tensor(rng.normal(size=(BATCH, OBS)), dtype=torch.float32) for _ in range(2)
        )
        actions = torch.as_tensor(rng.uniform(-1, 1, (BATCH, ACT)), dtype=torch.float32)
        rewards = torch.as_tensor(rng.normal(size=(BATCH, 1)), dtype=torch.float32)
        done = torch.as_tensor(rng.random((BATCH, 1)) < 0.2, dtype=torch.float32)
        batches.append((obs, actions, rewards, next_obs, done))
    served = iter(batches)
    sb3.replay_buffer.sample = lambda *_args, **_kw: ReplayBufferSamples(  # type: ignore[method-assign]
        *(lambda o, a, r, n, d: (o, a, n, d, r))(*next(served))
    )

    sb3.train(gradient_steps=UPDATES, batch_size=BATCH)
    for i, (obs, actions, rewards, next_obs, done) in enumerate(batches):
        delayed = td3 and (i + 1) % 2 != 0
        kind = StepKind(train_actor=not delayed, update_critic_targets=not delayed)
        agent.update(Batch(obs, actions, rewards, next_obs, done), kind)

    for (ours, theirs), before in zip(pairs, start, strict=True):
        moved = max(
            float((p.detach() - b).abs().max()) for p, b in zip(_params(ours), before, strict=True)
        )
        assert moved > 1e-5  # every network changed (targets by tau), 10x the tolerance below
        for p, q in zip(_params(ours), _params(theirs), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


def test_train_step_delays_the_actor_as_td3() -> None:
    """With policy_delay 2 the actor and the targets move on every 2nd update only, the critic on
    every update (SB3's count: updates 2, 4, ...)."""
    cfg = dataclasses.replace(_sb3_config(), policy_delay=2, twin_critics=True, warmup_steps=0)
    agent = DDPG(OBS, ACT, -1.0, 1.0, cfg, seed=4)
    rng = np.random.default_rng(5)
    for _ in range(BATCH):
        agent.observe(
            rng.normal(size=OBS), rng.uniform(-1, 1, ACT), 1.0, rng.normal(size=OBS), False
        )
    watched = (agent.actor, agent.actor_target, agent.critic, agent.critic_target, agent.critic2)
    moved = []
    for _ in range(4):
        before = [_params(m)[0].detach().clone() for m in watched]
        agent.train_step()
        moved.append(
            [bool((_params(m)[0] != b).any()) for m, b in zip(watched, before, strict=True)]
        )
    # actor, actor target, critic, critic target, second critic
    assert moved == [[False, False, True, False, True], [True, True, True, True, True]] * 2


def test_warmup_actions_carry_the_noise_only_with_warmup_noise() -> None:
    """SB3 adds its action noise to the uniform warm-up actions and clips: with a large sigma most
    warm-up actions then sit at a bound; without warmup_noise none does."""
    at_bound = {}
    for warmup_noise in (False, True):
        cfg = dataclasses.replace(_sb3_config(), warmup_noise=warmup_noise)
        cfg.noise.sigma = 10.0
        agent = DDPG(OBS, ACT, -2.0, 2.0, cfg, seed=3)
        actions = np.array([agent.act(np.zeros(OBS), explore=True) for _ in range(500)])
        assert agent.total_steps < cfg.warmup_steps and np.all(np.abs(actions) <= 2.0)
        at_bound[warmup_noise] = float(np.mean(np.abs(actions) == 2.0))
    assert at_bound[False] == 0.0 and at_bound[True] > 0.8
