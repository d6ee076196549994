"""Fine-tuning starts: a new run from an exported policy or another run's checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddpg_controller.learning.checkpoint import save_checkpoint
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.export import export_policy
from ddpg_controller.learning.init_from import fine_tuning_config, init_agent, read_init_source

OBS, ACT = 4, 2
LOW, HIGH = np.array([-2.0, -1.0]), np.array([2.0, 1.0])
CONFIG = DDPGConfig.from_dict(
    {
        "actor_hidden": [32, 16],
        "critic_hidden": [16, 16],
        "device": "cpu",
        "batch_size": 16,
        "warmup_steps": 1000,
    }
)


def trained_agent() -> DDPG:
    """An agent with a non-trivial actor, critic and normaliser (what a simulator run leaves)."""
    agent = DDPG(OBS, ACT, LOW, HIGH, CONFIG, seed=0)
    rng = np.random.default_rng(0)
    agent.normalizer.update(rng.normal([1, -2, 30, 0], [0.5, 2, 10, 1], size=(500, OBS)))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in [*agent.actor.parameters(), *agent.critic.parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return agent


def fill(agent: DDPG, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        obs = rng.normal(size=OBS)
        agent.observe(obs, rng.uniform(LOW, HIGH), float(rng.normal()), obs + 0.1, False)


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_from_a_policy_file_the_actor_acts_at_once_and_the_critic_warms_up_first(tmp_path):
    """From policy.pt: μ(s) is the policy's to 1e-6; exploring acts μ(s) plus noise, not
    uniform warm-up draws; the first 20 updates train the critic alone (the actor's
    weights do not move), the 21st moves the actor."""
    source_agent = trained_agent()
    export_policy(tmp_path / "policy.pt", source_agent, {})
    source = read_init_source(tmp_path / "policy.pt")
    assert source.kind == "policy" and not source.has_critic
    config = fine_tuning_config(CONFIG, source, critic_warmup_updates=20)
    assert (config.warmup_steps, config.actor_delay) == (0, 20)
    agent = DDPG(OBS, ACT, LOW, HIGH, config, seed=5)
    fresh_critic = flat(agent.critic).clone()
    init_agent(agent, source)
    obs = np.random.default_rng(2).normal([1, -2, 30, 0], [0.5, 2, 10, 1], size=(50, OBS))
    for o in obs:
        expected = source_agent.act(o, explore=False)
        assert np.allclose(agent.act(o, explore=False), expected, atol=1e-6)
    # Exploring: μ(s) plus noise, much nearer μ(s) than the uniform warm-up actions an agent
    # with the run's own warmup_steps would take.
    warming = DDPG(OBS, ACT, LOW, HIGH, CONFIG, seed=5)
    init_agent(warming, source)
    mu = np.array([source_agent.act(o, explore=False) for o in obs])
    offset = np.mean(np.abs([agent.act(o, explore=True) for o in obs] - mu) / (HIGH - LOW))
    uniform = np.mean(np.abs([warming.act(o, explore=True) for o in obs] - mu) / (HIGH - LOW))
    assert offset < 0.5 * uniform, (offset, uniform)
    assert torch.equal(flat(agent.critic), fresh_critic)  # the policy file has no critic

    fill(agent, CONFIG.batch_size)
    actor = flat(agent.actor).clone()
    for _ in range(20):
        agent.train_step()
    assert torch.equal(flat(agent.actor), actor)
    assert not torch.equal(flat(agent.critic), fresh_critic)
    agent.train_step()
    assert not torch.equal(flat(agent.actor), actor)


def test_from_a_checkpoint_actor_and_critic_come_along_and_the_run_starts_at_zero(tmp_path):
    source_agent = trained_agent()
    fill(source_agent, 40)
    for _ in range(3):
        source_agent.train_step()
    save_checkpoint(tmp_path / "last.pt", source_agent, {"env_steps": 40}, include_replay=True)
    source = read_init_source(tmp_path / "last.pt")
    assert source.kind == "checkpoint" and source.has_critic
    config = fine_tuning_config(CONFIG, source, critic_warmup_updates=20)
    assert (config.warmup_steps, config.actor_delay) == (0, CONFIG.actor_delay)
    agent = DDPG(OBS, ACT, LOW, HIGH, config, seed=5)
    init_agent(agent, source)
    assert torch.equal(flat(agent.actor), flat(source_agent.actor))
    assert torch.equal(flat(agent.critic), flat(source_agent.critic))
    assert (agent.total_steps, agent.num_updates, len(agent.replay)) == (0, 0, 0)


def test_what_cannot_start_a_run_is_named(tmp_path):
    (tmp_path / "notes.pt").write_text("not a network")
    with pytest.raises(ValueError, match=r"notes\.pt is neither a ddpg_controller checkpoint nor"):
        read_init_source(tmp_path / "notes.pt")
    with pytest.raises(ValueError, match=r"init_from: .*missing\.pt not found"):
        read_init_source(tmp_path / "missing.pt")
    export_policy(tmp_path / "policy.pt", trained_agent(), {})
    source = read_init_source(tmp_path / "policy.pt")
    wider = DDPGConfig.from_dict({**CONFIG.to_dict(), "actor_hidden": [64, 64]})
    with pytest.raises(ValueError, match=r"actor's layers .* differ from ddpg.actor_hidden"):
        init_agent(DDPG(OBS, ACT, LOW, HIGH, wider, seed=0), source)
    with pytest.raises(ValueError, match="action bounds"):
        init_agent(DDPG(OBS, ACT, LOW, 2 * HIGH, CONFIG, seed=0), source)
