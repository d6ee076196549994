"""The DDPG update checked against the algorithm: targets, gradients, soft updates, init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG, Batch, soft_update
from ddpg_controller.learning.networks import Actor, Critic

OBS, ACT = 3, 2


def small_agent(**overrides: object) -> DDPG:
    cfg = DDPGConfig.from_dict(
        {"actor_hidden": [5, 4], "critic_hidden": [6, 4], "device": "cpu", "tau": 0.1, **overrides}
    )
    return DDPG(OBS, ACT, -2.0, 2.0, cfg, seed=0)


def random_batch(n: int, seed: int = 0, terminated: list[float] | None = None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    term = torch.tensor(terminated).reshape(n, 1) if terminated else torch.zeros(n, 1)
    return Batch(
        torch.randn(n, OBS, generator=g),
        torch.rand(n, ACT, generator=g) * 2 - 1,
        torch.randn(n, 1, generator=g),
        torch.randn(n, OBS, generator=g),
        term,
    )


def perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


def np_params(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


def np_actor(p: dict[str, np.ndarray], s: np.ndarray) -> np.ndarray:
    h = np.maximum(s @ p["hidden.0.weight"].T + p["hidden.0.bias"], 0)
    h = np.maximum(h @ p["hidden.1.weight"].T + p["hidden.1.bias"], 0)
    return np.tanh(h @ p["out.weight"].T + p["out.bias"])


def np_critic(
    p: dict[str, np.ndarray], s: np.ndarray, a: np.ndarray, action_layer: int
) -> np.ndarray:
    h = s
    for i in range(2):
        if i == action_layer:
            h = np.concatenate([h, a], axis=1)  # the action joins the input of this layer
        h = np.maximum(h @ p[f"hidden.{i}.weight"].T + p[f"hidden.{i}.bias"], 0)
    return h @ p["out.weight"].T + p["out.bias"]


@pytest.mark.parametrize(("action_input", "action_layer"), [("first", 0), ("second", 1)])
def test_critic_takes_the_action_at_the_configured_layer(
    action_input: str, action_layer: int
) -> None:
    critic = Critic(OBS, ACT, (400, 300), action_input=action_input)
    assert [layer.in_features for layer in critic.hidden] == [
        OBS + ACT * (action_layer == 0),
        400 + ACT * (action_layer == 1),
    ]
    obs, action = torch.randn(7, OBS), (torch.rand(7, ACT) * 2 - 1).requires_grad_(True)
    q = critic(obs, action)
    assert q.shape == (7, 1)
    (dq_da,) = torch.autograd.grad(q.sum(), action)
    assert dq_da.abs().min() > 0  # Q depends on the action...
    with torch.no_grad():  # ...only through the action columns of the layer it joins
        critic.hidden[action_layer].weight[:, -ACT:] = 0.0
    (dq_da,) = torch.autograd.grad(critic(obs, action).sum(), action)
    assert torch.equal(dq_da, torch.zeros_like(dq_da))


def test_critic_with_one_hidden_layer_takes_the_action_before_its_output() -> None:
    critic = Critic(OBS, ACT, (16,), action_input="second")
    assert critic.hidden[0].in_features == OBS and critic.out.in_features == 16 + ACT
    assert critic(torch.randn(5, OBS), torch.rand(5, ACT)).shape == (5, 1)
    assert Critic(OBS, ACT, (16,), action_input="first").hidden[0].in_features == OBS + ACT


@pytest.mark.parametrize("final_layer_init", ["uniform_3e-3", "fan_in"])
def test_init_ranges(final_layer_init: str) -> None:
    actor = Actor(OBS, ACT, (400, 300), final_layer_init=final_layer_init)
    critics = [
        Critic(OBS, ACT, (400, 300), action_input=a, final_layer_init=final_layer_init)
        for a in ("first", "second")
    ]
    hidden = [*actor.hidden, *(layer for c in critics for layer in c.hidden)]
    finals = [actor.out, *(c.out for c in critics)]
    for layer in hidden + (finals if final_layer_init == "fan_in" else []):
        bound = 1 / math.sqrt(layer.in_features)  # the paper's hidden init, PyTorch's default
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound  # really spread over the range
    if final_layer_init == "uniform_3e-3":
        for layer in finals:
            assert layer.weight.abs().max() <= 3e-3 and layer.bias.abs().max() <= 3e-3
            assert layer.weight.abs().max() > 0.9 * 3e-3
    assert actor(1e3 * torch.randn(100, OBS)).abs().max() <= 1.0


def test_agent_builds_the_configured_networks() -> None:
    agent = small_agent(critic_action_input="first", final_layer_init="fan_in")
    assert agent.critic.hidden[0].in_features == OBS + ACT
    assert agent.critic_target.hidden[0].in_features == OBS + ACT
    assert agent.actor.out.weight.abs().max() > 3e-3  # the fan_in bound is 1/sqrt(4) here
    agent = small_agent(critic_action_input="second", final_layer_init="uniform_3e-3")
    assert agent.critic.hidden[1].in_features == 6 + ACT
    assert agent.actor.out.weight.abs().max() <= 3e-3


def test_targets_start_equal_to_online() -> None:
    agent = small_agent()
    for a, b in [(agent.actor, agent.actor_target), (agent.critic, agent.critic_target)]:
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()


@pytest.mark.parametrize(("action_input", "action_layer"), [("first", 0), ("second", 1)])
def test_critic_target_worked_by_hand(action_input: str, action_layer: int) -> None:
    """y = r + gamma (1 - terminated) Q'(s', mu'(s')), with Q', mu' evaluated independently in
    float64 numpy from the *target* networks (made different from the online ones)."""
    agent = small_agent(gamma=0.9, critic_action_input=action_input)
    perturb(agent.actor_target, 1)
    perturb(agent.critic_target, 2)
    batch = random_batch(4, terminated=[0.0, 1.0, 0.0, 1.0])
    s, a = batch.obs.double().numpy(), batch.actions.double().numpy()
    r, s2 = batch.rewards.double().numpy(), batch.next_obs.double().numpy()
    done = batch.terminated.double().numpy()
    q_next = np_critic(
        np_params(agent.critic_target),
        s2,
        np_actor(np_params(agent.actor_target), s2),
        action_layer,
    )
    y = r + 0.9 * (1 - done) * q_next
    assert np.allclose(y[[1, 3]], r[[1, 3]])  # terminal rows do not bootstrap
    q = np_critic(np_params(agent.critic), s, a, action_layer)
    expected_loss = float(np.mean((q - y) ** 2))

    stats = agent.update(batch)
    assert float(stats["critic_loss"]) == pytest.approx(expected_loss, rel=1e-5)
    # And a hand-made number: one row, zero next-state value, known reward.
    with torch.no_grad():
        for p in agent.critic_target.out.parameters():
            p.zero_()
    q_online = agent.critic(batch.obs[:1], batch.actions[:1]).item()
    one = Batch(
        batch.obs[:1],
        batch.actions[:1],
        torch.tensor([[2.5]]),
        batch.next_obs[:1],
        torch.zeros(1, 1),
    )
    assert float(agent.update(one)["critic_loss"]) == pytest.approx((q_online - 2.5) ** 2, rel=1e-5)


def test_actor_gradient_is_chain_rule_through_online_critic() -> None:
    agent = small_agent()
    perturb(agent.critic_target, 3)  # the actor must not use the target critic
    batch = random_batch(16, seed=1)
    seen: dict[str, object] = {}
    real_step = agent.actor_optimizer.step

    def checking_step(*args: object, **kwargs: object) -> object:
        # Called after the critic step: the critic here is the one the actor loss used.
        s = batch.obs
        mu = agent.actor(s)
        a = mu.detach().requires_grad_(True)
        q = agent.critic(s, a)
        (grad_a,) = torch.autograd.grad(-q.mean(), a)  # dJ/da for J = -mean Q
        expected = torch.autograd.grad(mu, list(agent.actor.parameters()), grad_outputs=grad_a)
        for p, e in zip(agent.actor.parameters(), expected, strict=True):
            torch.testing.assert_close(p.grad, e, rtol=1e-5, atol=1e-7)
        seen["critic"] = [p.detach().clone() for p in agent.critic.parameters()]
        seen["critic_grads"] = [p.grad.clone() for p in agent.critic.parameters()]
        return real_step(*args, **kwargs)

    agent.actor_optimizer.step = checking_step  # type: ignore[method-assign]
    critic_grads_after_critic_step: list[torch.Tensor] = []
    real_critic_step = agent.critic_optimizer.step

    def record_critic_step(*args: object, **kwargs: object) -> object:
        critic_grads_after_critic_step.extend(p.grad.clone() for p in agent.critic.parameters())
        return real_critic_step(*args, **kwargs)

    agent.critic_optimizer.step = record_critic_step  # type: ignore[method-assign]
    agent.update(batch)
    assert "critic" in seen
    # The actor loss put no gradient into the critic and the actor step did not move it.
    for g_before, g_at_actor in zip(
        critic_grads_after_critic_step, seen["critic_grads"], strict=True
    ):
        assert torch.equal(g_before, g_at_actor)
    for p, p_seen in zip(agent.critic.parameters(), seen["critic"], strict=True):
        assert torch.equal(p, p_seen)


def test_soft_update_formula() -> None:
    target, online = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    soft_update(target, online, 0.25)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.25 * o + 0.75 * b, rtol=0, atol=1e-7)


def test_update_changes_targets_only_by_soft_update() -> None:
    agent = small_agent(tau=0.05)
    perturb(agent.actor_target, 4)
    perturb(agent.critic_target, 5)
    targets_before = [
        [p.detach().clone() for p in m.parameters()]
        for m in (agent.actor_target, agent.critic_target)
    ]
    online_before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update(random_batch(8, seed=2))
    assert any(
        not torch.equal(p, b) for p, b in zip(agent.critic.parameters(), online_before, strict=True)
    )
    for target, online, before in zip(
        (agent.actor_target, agent.critic_target),
        (agent.actor, agent.critic),
        targets_before,
        strict=True,
    ):
        for t, o, b in zip(target.parameters(), online.parameters(), before, strict=True):
            torch.testing.assert_close(t, 0.05 * o + 0.95 * b, rtol=0, atol=1e-6)
            assert t.grad is None


def test_critic_weight_decay_is_applied() -> None:
    assert (
        small_agent(critic_weight_decay=0.01).critic_optimizer.param_groups[0]["weight_decay"]
        == 0.01
    )
    assert small_agent().actor_optimizer.param_groups[0]["weight_decay"] == 0.0


def test_actor_waits_for_actor_delay_critic_updates() -> None:
    """The first ``actor_delay`` training steps move the critic and its target only; the next
    one moves the actor too."""
    agent = filled_agent(actor_delay=3)
    actor_before = [
        p.detach().clone() for m in (agent.actor, agent.actor_target) for p in m.parameters()
    ]
    critic_before = [p.detach().clone() for p in agent.critic.parameters()]

    def actor_unchanged() -> bool:
        now = [p for m in (agent.actor, agent.actor_target) for p in m.parameters()]
        return all(torch.equal(p, b) for p, b in zip(now, actor_before, strict=True))

    for _ in range(3):
        losses = agent.train_step()
        assert losses is not None and math.isfinite(float(losses["actor_loss"]))
    assert actor_unchanged()
    assert not any(
        torch.equal(p, b) for p, b in zip(agent.critic.parameters(), critic_before, strict=True)
    )
    agent.train_step()
    assert not actor_unchanged()
    assert agent.num_updates == 4


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_saturation_penalty_brings_back_an_actor_stuck_at_a_bound(penalty: float) -> None:
    """An actor whose pre-tanh output z is past float32 tanh's range (|z| > 9.1: tanh is exactly
    +-1, its gradient exactly 0) never moves on the critic's gradient alone; the penalty on
    |z| > 3 brings it back to where tanh passes the critic's gradient again."""
    agent = small_agent(actor_lr=0.05, actor_saturation_penalty=penalty)
    with torch.no_grad():
        agent.actor.out.bias.fill_(12.0)
    batch = random_batch(32, seed=3)
    z_before = agent.actor.pre_tanh(batch.obs).detach()
    assert bool((agent.actor(batch.obs) == 1.0).all())
    for _ in range(200):
        agent.update(batch)
    z_after = agent.actor.pre_tanh(batch.obs).detach()
    if penalty == 0.0:
        assert torch.equal(z_after, z_before)
    else:
        assert float(z_before.min()) > 10.0 and float(z_after.max()) < 3.5


def filled_agent(device: str = "cpu", **overrides: object) -> DDPG:
    """An agent with 300 observed transitions and non-trivial normalisation statistics."""
    cfg = DDPGConfig.from_dict(
        {
            "actor_hidden": [32, 16],
            "critic_hidden": [32, 16],
            "batch_size": 16,
            "buffer_size": 500,
            "warmup_steps": 0,
            "tau": 0.05,
            "device": device,
            **overrides,
        }
    )
    agent = DDPG(OBS, ACT, -2.0, 2.0, cfg, seed=7)
    rng = np.random.default_rng(0)
    for t in range(300):
        obs = rng.normal([1.0, -3.0, 20.0], [0.5, 2.0, 8.0])
        agent.observe(obs, rng.uniform(-2, 2, ACT), rng.normal(), obs * 0.9, t % 50 == 49)
    return agent


def reference_step(agent: DDPG, indices: torch.Tensor) -> dict[str, float]:
    """The training step as it was before replay moved to the device: rows gathered and
    normalised on the host in float64 numpy, then the update's equations written out again."""
    rows = agent.replay.split(agent.replay.storage[indices])
    norm = agent.frozen_normalizer()

    def host(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    obs, next_obs = host(norm.normalize(rows.obs.numpy())), host(norm.normalize(rows.next_obs))
    actions, rewards, terminated = (host(x.numpy()) for x in rows[1:3] + rows[4:])
    gamma, tau = agent.config.gamma, agent.config.tau
    with torch.no_grad():
        next_q = agent.critic_target(next_obs, agent.actor_target(next_obs))
        y = rewards + gamma * (1.0 - terminated) * next_q
    q = agent.critic(obs, actions)
    critic_loss = torch.nn.functional.mse_loss(q, y)
    agent.critic_optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()
    agent.critic_optimizer.step()
    actor_loss = -agent.critic(obs, agent.actor(obs)).mean()
    agent.actor_optimizer.zero_grad(set_to_none=True)
    actor_loss.backward(inputs=list(agent.actor.parameters()))
    agent.actor_optimizer.step()
    soft_update(agent.actor_target, agent.actor, tau)
    soft_update(agent.critic_target, agent.critic, tau)
    return {
        "critic_loss": critic_loss.item(),
        "actor_loss": actor_loss.item(),
        "q_mean": q.detach().mean().item(),
    }


def all_weights(agent: DDPG) -> list[torch.Tensor]:
    modules = (agent.actor, agent.critic, agent.actor_target, agent.critic_target)
    modules += (agent.critic2, agent.critic2_target) if agent.critic2 is not None else ()
    return [p.detach().cpu() for m in modules for p in m.parameters()]


def test_device_step_gives_the_numbers_of_the_host_step() -> None:
    """train_step (sampling and normalisation on the device, one static batch) moves every
    network exactly as the host-side step of before does on the same rows."""
    device_path, host_path = filled_agent(actor_delay=0), filled_agent(actor_delay=0)
    host_path.replay.flush()
    for _ in range(5):
        indices = host_path.replay.sample_indices(16)  # the draw train_step makes next
        expected = reference_step(host_path, indices)
        got = device_path.train_step()
        assert got is not None
        for name, value in expected.items():
            assert float(got[name]) == pytest.approx(value, abs=1e-6)
    for a, b in zip(all_weights(device_path), all_weights(host_path), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert device_path.num_updates == 5


def test_cuda_graph_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="cuda_graph"):
        DDPGConfig.from_dict({"cuda_graph": "always"})
    with pytest.raises(ValueError, match="cuda_graph"):
        DDPGConfig.from_dict({"cuda_graph": "on", "device": "cpu"})
    assert not small_agent(cuda_graph="auto").uses_cuda_graph  # the CPU runs it eagerly
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda_graph='on' needs the cuda device"):
            DDPG(OBS, ACT, -1.0, 1.0, DDPGConfig.from_dict({"cuda_graph": "on"}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "options",
    [
        {"actor_delay": 0},
        {"actor_delay": 6},
        {"actor_delay": 0, "twin_critics": True, "policy_delay": 2, "target_policy_noise": 0.2},
    ],
    ids=["ddpg", "actor_delay", "td3"],
)
def test_cuda_graph_step_equals_the_eager_step(options: dict) -> None:
    """The captured graph replays the same function: warm-up, capture and replays move the
    networks and the sampler exactly as eager steps on the same device do, for the critic-only
    steps of ``actor_delay`` and TD3's ``policy_delay`` (their own graphs) and the full steps."""
    actor_delay = options["actor_delay"]
    graph, eager = (
        filled_agent("cuda", cuda_graph=setting, **options) for setting in ("on", "off")
    )
    assert graph.uses_cuda_graph and not eager.uses_cuda_graph
    for step in range(12 + actor_delay):  # per kind of step: 3 eager warm-ups, capture, replays
        got, expected = graph.train_step(), eager.train_step()
        for name in expected:
            assert float(got[name]) == pytest.approx(float(expected[name]), abs=1e-6), step
        if step == 6:  # new transitions between replays reach the graph's replay and statistics
            for agent in (graph, eager):
                agent.observe(np.full(OBS, 50.0), np.ones(ACT), 3.0, np.zeros(OBS), False)
    for a, b in zip(all_weights(graph), all_weights(eager), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert torch.equal(graph.replay.generator.get_state(), eager.replay.generator.get_state())
