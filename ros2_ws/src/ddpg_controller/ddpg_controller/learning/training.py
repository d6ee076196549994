"""An environment-agnostic DDPG training loop over any gymnasium env with Box spaces.

Used by benchmarks and simulation tests; the ROS controller node runs its own loop with the same
agent methods (act / observe / reset_noise / train_step) and the same ``TrainingSchedule``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.schedule import TrainingSchedule

PolicyFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class TrainResult:
    """What a training run produced, for reports and assertions."""

    agent: DDPG
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)  # env step of each evaluation
    eval_returns: list[list[float]] = field(default_factory=list)  # per evaluation, per episode
    total_steps: int = 0
    num_updates: int = 0
    wall_time_s: float = 0.0

    @property
    def final_eval_mean(self) -> float | None:
        return float(np.mean(self.eval_returns[-1])) if self.eval_returns else None


def episode_rewards(
    policy_fn: PolicyFn, env: gym.Env, episodes: int, seed: int
) -> list[list[float]]:
    """Every reward of ``episodes`` episodes; episode i resets with seed ``seed + i`` so the result
    depends only on the policy and the seed."""
    rewards = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        episode, done = [], False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy_fn(obs))
            episode.append(float(reward))
            done = terminated or truncated
        rewards.append(episode)
    return rewards


def evaluate(policy_fn: PolicyFn, env: gym.Env, episodes: int, seed: int) -> list[float]:
    """Undiscounted returns of ``episode_rewards``' episodes."""
    return [sum(episode) for episode in episode_rewards(policy_fn, env, episodes, seed)]


def train(
    env: gym.Env,
    config: DDPGConfig,
    total_steps: int,
    seed: int,
    eval_env: gym.Env | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 10,
    callback: Callable[[int, DDPG, dict[str, Any]], bool | None] | None = None,
) -> TrainResult:
    """Train a fresh DDPG agent for ``total_steps`` env steps.

    With ``eval_env``, deterministic evaluations run every ``eval_every`` steps (if given) and
    once at the end. ``callback(step, agent, info)`` runs after every env step; returning False
    stops training early. ``info`` holds the step's reward, done flags and update losses.
    """
    space, obs_space = env.action_space, env.observation_space
    if not (isinstance(space, gym.spaces.Box) and isinstance(obs_space, gym.spaces.Box)):
        raise ValueError("train() needs Box observation and action spaces")
    obs_dim = int(np.prod(env.observation_space.shape))
    agent = DDPG(obs_dim, int(np.prod(space.shape)), space.low, space.high, config, seed=seed)
    result = TrainResult(agent)
    start = time.perf_counter()
    eval_seed = seed + 1_000_000
    schedule = TrainingSchedule(total_steps, eval_every or 0)

    def run_eval(step: int) -> None:
        assert eval_env is not None
        result.eval_steps.append(step)
        result.eval_returns.append(
            evaluate(agent.acting_policy(), eval_env, eval_episodes, eval_seed)
        )

    obs, _ = env.reset(seed=seed)
    agent.reset_noise()
    ep_return, ep_len = 0.0, 0
    for step in range(1, total_steps + 1):
        action = agent.act(obs, explore=True)
        next_obs, reward, terminated, truncated, _ = env.step(action.astype(space.dtype))
        # Only a true terminal state stops bootstrapping; a time limit (truncated) does not.
        agent.observe(obs, action, float(reward), next_obs, bool(terminated))
        ep_return += float(reward)
        ep_len += 1
        losses = None
        for _ in range(agent.updates_due()):
            losses = agent.train_step()
        if terminated or truncated:
            result.episode_returns.append(ep_return)
            result.episode_lengths.append(ep_len)
            obs, _ = env.reset()
            agent.reset_noise()
            ep_return, ep_len = 0.0, 0
        else:
            obs = next_obs
        if eval_env is not None and schedule.due(step).evaluation:
            run_eval(step)
        if callback is not None:
            info = {
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "losses": losses,
            }
            if callback(step, agent, info) is False:
                break
    if eval_env is not None:
        run_eval(agent.total_steps)
    result.total_steps = agent.total_steps
    result.num_updates = agent.num_updates
    result.wall_time_s = time.perf_counter() - start
    return result
