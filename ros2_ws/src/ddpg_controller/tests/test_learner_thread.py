"""The background learner: exact updates-per-step in lockstep, a fresh acting copy, and a clear
failure instead of a hang when the learning thread dies."""

from __future__ import annotations

import time

import numpy as np
import pytest

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
    agent = _agent(1.0)
    learner = BackgroundLearner(agent, lockstep=True, sync_every=1)
    first = learner.policy
    learner.start()
    rng = np.random.default_rng(1)
    try:
        for _ in range(40):
            obs = rng.normal(size=3)
            agent.observe(obs, rng.uniform(-2, 2, 1), rng.normal(), obs, False)
            learner.notify()
            assert _wait(learner.caught_up)
    finally:
        learner.stop()
    probe = np.ones(3, dtype=np.float32)
    assert learner.policy is not first
    np.testing.assert_allclose(learner.policy(probe), agent.acting_policy()(probe), atol=1e-7)
    assert not np.allclose(first(probe), learner.policy(probe))


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
