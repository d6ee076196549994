"""Start a run from another run's networks: fine-tuning a simulator's policy on a robot.

The source is an exported policy (``policy.pt``: the actor and its observation normalisation) or
a checkpoint (``checkpoints/last.pt``: actor, critic, their targets and optimisers, the
normaliser). The new run starts at step 0 with an empty replay buffer (the robot's own
transitions fill it) and acts with the loaded actor from its first step: no uniform random
warm-up, which on a robot would throw away what the simulator taught. A policy file has no
critic, so a fresh critic first learns Q of the loaded actor on the robot's first transitions
while the actor is frozen (``actor_delay`` updates), before the actor follows its gradient.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpg_controller.learning.checkpoint import CHECKPOINT_FORMAT
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.export import PolicyFileError, load_policy
from ddpg_controller.learning.normalizer import EPS

__all__ = ["InitSource", "fine_tuning_config", "init_agent", "read_init_source"]

# The normaliser a policy file carries has no sample count: it is given this many, so the robot's
# first observations refine it instead of replacing what the actor was trained with.
POLICY_NORMALIZER_COUNT = 100_000


@dataclass(frozen=True)
class InitSource:
    """What a run starts from: ``agent_state`` (a checkpoint's, with the critic) or
    ``policy_state`` and ``metadata`` (a policy file's: actor and normaliser only)."""

    path: Path
    agent_state: dict[str, Any] | None
    policy_state: dict[str, torch.Tensor] | None
    metadata: dict[str, Any] | None

    @property
    def has_critic(self) -> bool:
        return self.agent_state is not None

    @property
    def kind(self) -> str:
        return "checkpoint" if self.has_critic else "policy"


def read_init_source(path: str | Path) -> InitSource:
    """Read a checkpoint or an exported policy; ValueError (one line naming the file) for
    anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"init_from: {path} not found")
    try:  # a policy first: torch.load would warn that it is TorchScript
        policy = load_policy(path)
    except PolicyFileError:
        policy = None
    if policy is not None:
        state = {k: v.detach().clone() for k, v in policy.module.state_dict().items()}
        return InitSource(path, None, state, policy.metadata)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        payload = None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"init_from: {path} is neither a ddpg_controller checkpoint nor an exported policy"
        )
    return InitSource(path, payload["agent"], None, None)


def fine_tuning_config(
    config: DDPGConfig, source: InitSource, critic_warmup_updates: int
) -> DDPGConfig:
    """``config`` for a run that starts from ``source``: no random warm-up actions; from a
    policy file, at least ``critic_warmup_updates`` critic-only updates before the actor's."""
    changes: dict[str, Any] = {"warmup_steps": 0}
    if not source.has_critic:
        changes["actor_delay"] = max(config.actor_delay, critic_warmup_updates)
    return dataclasses.replace(config, **changes)


def init_agent(agent: DDPG, source: InitSource) -> None:
    """Load ``source``'s networks into a new ``agent`` (built with ``fine_tuning_config``); the
    agent keeps its own step and update counts (zero) and its empty replay buffer."""
    if source.agent_state is not None:
        try:
            agent.load_state_dict(source.agent_state)
        except ValueError as exc:
            raise ValueError(f"init_from: {source.path}: {exc}") from None
        agent.total_steps = 0
        agent.num_updates = 0
        return
    meta, state = source.metadata, source.policy_state
    where = f"init_from: {source.path}"
    if (meta["obs_dim"], meta["action_dim"]) != (agent.obs_dim, agent.action_dim):
        raise ValueError(
            f"{where}: the policy is for obs/action dims {meta['obs_dim']}/{meta['action_dim']}, "
            f"this task has {agent.obs_dim}/{agent.action_dim}"
        )
    bounds = (meta["action_low"], meta["action_high"])
    if not np.allclose(bounds, (agent.action_low, agent.action_high), rtol=1e-9, atol=0.0):
        raise ValueError(
            f"{where}: the policy's action bounds {bounds[0]}..{bounds[1]} are not this task's "
            f"{agent.action_low.tolist()}..{agent.action_high.tolist()}"
        )
    if bool(meta["normalize_observations"]) != agent.config.normalize_observations:
        raise ValueError(
            f"{where}: the policy was trained with normalize_observations "
            f"{meta['normalize_observations']}; set ddpg.normalize_observations to match"
        )
    actor = {k.removeprefix("actor."): v for k, v in state.items() if k.startswith("actor.")}
    try:
        agent.actor.load_state_dict(actor)
    except RuntimeError:
        shapes = {k: tuple(v.shape) for k, v in actor.items() if k.endswith("weight")}
        raise ValueError(
            f"{where}: its actor's layers {shapes} differ from ddpg.actor_hidden "
            f"{list(agent.config.actor_hidden)}"
        ) from None
    agent.actor_target.load_state_dict(agent.actor.state_dict())
    if agent.config.normalize_observations:
        mean = state["obs_mean"].numpy().astype(np.float64)
        variance = np.maximum(state["obs_std"].numpy().astype(np.float64) ** 2 - EPS, 0.0)
        agent.normalizer.load_state_dict(
            {
                "count": POLICY_NORMALIZER_COUNT,
                "mean": mean.tolist(),
                "m2": (variance * POLICY_NORMALIZER_COUNT).tolist(),
            }
        )
        agent.batch_normalizer.refresh(agent.frozen_normalizer())
