"""The background learner: exact updates-per-step in lockstep, a fresh acting copy, and a clear
failure instead of a hang when the learning thread dies."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from ddpg_controller.learner import BackgroundLearner
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG


def _agent(updates_per_step: float) -> DDPG:
    config = DDPGConfig.from_dict(
        {
            "actor_hidden": [16],
            "critic_hidden": [16, 16],
            "batch_size": 8,
            "buffer_size": 1000,
            "warmup_steps": 20,
            "actor_delay": 0,  # the actor trains from the first update: the copies must follow
            "updates_per_step": updates_per_step,
            "device": "cpu",
        }
    )
    return DDPG(3, 1, -2.0, 2.0, config, seed=0)


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def _observe_in_lockstep(agent: DDPG, learner: BackgroundLearner, steps: int) -> None:
    """Start the learner, observe ``steps`` random transitions, each time waiting until the
    learner has caught up (as the lockstep controller does), then stop it."""
    learner.start()
    rng = np.random.default_rng(1)
    try:
        for _ in range(steps):
            obs = rng.normal(size=3)
            agent.observe(obs, rng.uniform(-2, 2, 1), rng.normal(), obs, False)
            learner.notify()
            assert _wait(learner.caught_up)
    finally:
        learner.stop()


@pytest.mark.parametrize("ratio", [1.0, 0.5, 2.0])
def test_lockstep_holds_the_updates_per_step_ratio_exactly(ratio: float) -> None:
    agent = _agent(ratio)
    learner = BackgroundLearner(agent, lockstep=True, sync_every=1)
    learner.start()
    rng = np.random.default_rng(0)
    try:
        for _ in range(120):
            obs = rng.normal(size=3)
            agent.observe(obs, rng.uniform(-2, 2, 1), 1.0, obs + 0.1, False)
            learner.notify()
            assert _wait(learner.caught_up)  # the control loop would publish now
            assert agent.updates_due() == 0
    finally:
        learner.stop()
    # 120 steps, learning from step 20 on (warm-up): (120 - 20 + 1) steps owe ratio each.
    assert agent.num_updates == int((120 - 20 + 1) * ratio)
    assert learner.updates_done == agent.num_updates


def test_acting_copy_follows_the_learner_and_is_independent() -> None:
    """The control loop's policy is one preallocated CPU copy, refreshed in place: it shares no
    tensor with the training actor and, after the updates, acts as the trained actor does."""
    agent = _agent(1.0)
    learner = BackgroundLearner(agent, lockstep=True, sync_every=1)
    policy = learner.policy
    probe = np.ones(3, dtype=np.float32)
    untrained = policy(probe)
    training = {p.data_ptr() for p in agent.actor.parameters()}
    assert not training & {p.data_ptr() for p in policy.module.parameters()}
    _observe_in_lockstep(agent, learner, steps=40)
    assert learner.policy is policy and agent.num_updates == 21
    np.testing.assert_allclose(policy(probe), agent.acting_policy()(probe), atol=1e-7)
    assert not np.allclose(untrained, policy(probe))
    assert set(learner.last_losses) == {"critic_loss", "actor_loss", "q_mean"}


def test_real_time_holds_the_ratio_and_bounds_the_backlog() -> None:
    """Real time: a learner that starts 81 updates behind catches up max_backlog of them, drops
    the rest, then does one update per step and never runs ahead of the ratio."""
    agent = _agent(1.0)
    learner = BackgroundLearner(agent, lockstep=False, sync_every=1, max_backlog=5)
    rng = np.random.default_rng(3)

    def step() -> None:
        obs = rng.normal(size=3)
        agent.observe(obs, rng.uniform(-2, 2, 1), rng.normal(), obs, False)
        learner.notify()

    for _ in range(100):
        step()
    assert agent.updates_due() == 81  # (100 - 20 + 1) steps owe one update each
    learner.start()
    try:
        assert _wait(lambda: agent.num_updates == 5)
        time.sleep(0.2)
        assert agent.num_updates == 5 and learner.updates_dropped == 76
        for expected in range(6, 9):
            step()
            assert _wait(lambda n=expected: agent.num_updates == n)
        time.sleep(0.2)
        assert agent.num_updates == 8  # no more than the ratio allows
        assert learner.caught_up()  # the control loop never waits in real time
    finally:
        learner.stop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_learner_refreshes_the_cpu_policy_through_pinned_copies() -> None:
    config = DDPGConfig.from_dict(
        {**_agent(1.0).config.to_dict(), "device": "cuda", "cuda_graph": "on"}
    )
    agent = DDPG(3, 1, -2.0, 2.0, config, seed=0)
    learner = BackgroundLearner(agent, lockstep=True, sync_every=1)
    policy = learner.policy
    _observe_in_lockstep(agent, learner, steps=40)
    assert learner.failure is None and agent.num_updates == 21
    assert all(p.device.type == "cpu" for p in policy.module.parameters())
    probe = np.ones(3, dtype=np.float32)
    np.testing.assert_allclose(policy(probe), agent.acting_policy()(probe), atol=1e-6)


def test_a_dead_learner_is_reported_and_never_blocks() -> None:
    agent = _agent(1.0)

    def broken_step():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    agent.train_step = broken_step
    learner = BackgroundLearner(agent, lockstep=True, sync_every=1)
    learner.start()
    rng = np.random.default_rng(2)
    for _ in range(30):
        obs = rng.normal(size=3)
        agent.observe(obs, rng.uniform(-2, 2, 1), 0.0, obs, False)
        learner.notify()
    assert _wait(lambda: learner.failure is not None)
    assert "illegal memory access" in learner.failure
    assert not learner.alive
    assert learner.caught_up()  # lockstep no longer waits for updates that will never come
    learner.stop()
