"""The DDPG agent: networks, targets, optimisers, replay, normaliser, noise and the update step.

Lillicrap et al. 2015 (arXiv 1509.02971), Algorithm 1. ``update`` is written to be read line by
line against the algorithm; everything else is plumbing around it.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.networks import Actor, Critic
from ddpg_controller.learning.noise import LinearSchedule, make_noise
from ddpg_controller.learning.normalizer import FrozenNormalizer, RunningNormalizer
from ddpg_controller.learning.policy import ActingPolicy
from ddpg_controller.learning.replay import ReplayBuffer, ReplaySample

STATE_FORMAT = 1


class Batch(NamedTuple):
    """Tensors for one update; ``obs``/``next_obs`` already normalised, actions in [-1, 1]."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor  # (B, 1)
    next_obs: torch.Tensor
    terminated: torch.Tensor  # (B, 1), 1.0 where the episode ended in a terminal state


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; asking for an unavailable cuda is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use device 'cpu' or 'auto'"
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta' <- tau * theta + (1 - tau) * theta' for every parameter.

    That is theta' + tau * (theta - theta'): one fused lerp over all tensors at once.
    """
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


class DDPG:
    """A DDPG learner for a Box action space with bounds ``action_low``..``action_high``."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        action_low: np.ndarray | float,
        action_high: np.ndarray | float,
        config: DDPGConfig | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = cfg = config if config is not None else DDPGConfig()
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.action_low = np.broadcast_to(np.asarray(action_low, np.float64), (action_dim,)).copy()
        self.action_high = np.broadcast_to(
            np.asarray(action_high, np.float64), (action_dim,)
        ).copy()
        if not np.all(np.isfinite(self.action_low) & np.isfinite(self.action_high)) or np.any(
            self.action_high <= self.action_low
        ):
            raise ValueError(
                f"action bounds must be finite with high > low, got {self.action_low}, "
                f"{self.action_high}"
            )
        self.device = resolve_device(cfg.device)

        # Seeds of the independent random streams derive from one seed, so runs are reproducible
        # without touching torch's or numpy's global generators.
        seeds = np.random.SeedSequence(seed).generate_state(4)
        init_gen = torch.Generator().manual_seed(int(seeds[0]))
        self.actor = Actor(
            obs_dim, action_dim, cfg.actor_hidden, init_gen, cfg.final_layer_init
        ).to(self.device)
        self.critic = Critic(
            obs_dim,
            action_dim,
            cfg.critic_hidden,
            init_gen,
            cfg.critic_action_input,
            cfg.final_layer_init,
        ).to(self.device)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        for p in (*self.actor_target.parameters(), *self.critic_target.parameters()):
            p.requires_grad_(False)
        # fused: one kernel for all parameters (measured x1.19 updates/s at batch 64 on CPU).
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.actor_lr, fused=True
        )
        self.critic_optimizer = torch.optim.Adam(
            self.critic.parameters(),
            lr=cfg.critic_lr,
            weight_decay=cfg.critic_weight_decay,
            fused=True,
        )
        self._actor_parameters = list(self.actor.parameters())

        self.replay = ReplayBuffer(obs_dim, action_dim, cfg.buffer_size, seed=int(seeds[1]))
        self.normalizer = RunningNormalizer(obs_dim, clip=cfg.observation_clip)
        self.noise = make_noise(cfg.noise, action_dim, seed=int(seeds[2]))
        self.noise_schedule = LinearSchedule(
            cfg.noise.scale_initial, cfg.noise.scale_final, cfg.noise.schedule_steps
        )
        self.rng = np.random.default_rng(int(seeds[3]))  # warm-up actions
        self.total_steps = 0  # transitions observed
        self.num_updates = 0  # gradient updates done by train_step/update

    # ----------------------------------------------------------------- action-space conversions
    def to_env_action(self, a: np.ndarray) -> np.ndarray:
        """[-1, 1] -> [action_low, action_high]."""
        return self.action_low + (np.asarray(a) + 1.0) * 0.5 * (self.action_high - self.action_low)

    def to_unit_action(self, action: np.ndarray) -> np.ndarray:
        """[action_low, action_high] -> [-1, 1] (clipped), the space replay and critic use."""
        a = (
            2.0
            * (np.asarray(action, np.float64) - self.action_low)
            / (self.action_high - self.action_low)
            - 1.0
        )
        return np.clip(a, -1.0, 1.0)

    def frozen_normalizer(self) -> FrozenNormalizer:
        if self.config.normalize_observations:
            return self.normalizer.frozen()
        return FrozenNormalizer.identity(self.obs_dim)

    @property
    def learning_starts(self) -> int:
        """Env steps before the first update: after warm-up and once a batch can be drawn."""
        return max(self.config.warmup_steps, self.config.batch_size)

    # ------------------------------------------------------------------------------- acting
    def act(self, obs: np.ndarray, explore: bool, policy: ActingPolicy | None = None) -> np.ndarray:
        """Action in env units for one observation; random during warm-up when exploring.

        With ``policy`` (an ``acting_policy()`` snapshot) μ(s) comes from that copy instead of the
        training actor, so a control thread can act while another thread trains.
        """
        if explore and self.total_steps < self.config.warmup_steps:
            return self.to_env_action(self.rng.uniform(-1.0, 1.0, self.action_dim))
        if policy is not None:
            a = self.to_unit_action(policy(obs))
        else:
            x = self.frozen_normalizer().normalize(np.asarray(obs).reshape(self.obs_dim))
            with torch.no_grad():
                x = torch.from_numpy(x).to(self.device)
                a = self.actor(x).cpu().numpy().astype(np.float64)
        if explore and self.noise is not None:
            a = np.clip(a + self.noise_schedule(self.total_steps) * self.noise(), -1.0, 1.0)
        return self.to_env_action(a)

    def observe(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store a transition (action in env units). ``terminated`` only for true terminal
        states: a time-limit truncation must pass False so the target still bootstraps."""
        self.replay.add(obs, self.to_unit_action(action), reward, next_obs, terminated)
        if self.config.normalize_observations:
            self.normalizer.update(obs)
        self.total_steps += 1

    def reset_noise(self) -> None:
        """Call at every episode start."""
        if self.noise is not None:
            self.noise.reset()

    def acting_policy(self) -> ActingPolicy:
        """CPU snapshot (actor + frozen normaliser + scaling) for another thread to act with."""
        return ActingPolicy(self.actor, self.frozen_normalizer(), self.action_low, self.action_high)

    # ----------------------------------------------------------------------------- learning
    def updates_due(self) -> int:
        """Updates owed by the ``updates_per_step`` ratio (fractional ratios accumulate).

        None are owed while the replay buffer cannot fill a batch (e.g. resumed without its
        replay file), so a caller that waits for the owed updates never waits forever.
        """
        if self.total_steps < self.learning_starts or len(self.replay) < self.config.batch_size:
            return 0
        owed = int((self.total_steps - self.learning_starts + 1) * self.config.updates_per_step)
        return max(0, owed - self.num_updates)

    def make_batch(self, sample: ReplaySample) -> Batch:
        """Normalise observations with the current statistics and move to the device."""
        norm = self.frozen_normalizer()

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

        return Batch(
            t(norm.normalize(sample.obs)),
            t(sample.actions),
            t(sample.rewards),
            t(norm.normalize(sample.next_obs)),
            t(sample.terminated),
        )

    def train_step(self) -> dict[str, float] | None:
        """Sample a batch and update; None while warming up or with too little data."""
        if self.total_steps < self.learning_starts or len(self.replay) < self.config.batch_size:
            return None
        batch = self.make_batch(self.replay.sample(self.config.batch_size))
        bfloat16 = self.config.precision == "bfloat16"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bfloat16):
            return self.update(batch)

    def update(self, batch: Batch) -> dict[str, float]:
        """One DDPG update (Algorithm 1, inner loop)."""
        gamma, tau = self.config.gamma, self.config.tau

        # Critic target: y = r + gamma * (1 - terminated) * Q'(s', mu'(s')), no gradient.
        with torch.no_grad():
            next_q = self.critic_target(batch.next_obs, self.actor_target(batch.next_obs))
            y = batch.rewards + gamma * (1.0 - batch.terminated) * next_q

        # Critic: minimise MSE(Q(s, a), y).
        q = self.critic(batch.obs, batch.actions)
        critic_loss = functional.mse_loss(q, y)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # Actor: ascend Q(s, mu(s)) through the online critic. Gradients flow only into the
        # actor's parameters (backward inputs=), so the critic is not changed by this step.
        actor_loss = -self.critic(batch.obs, self.actor(batch.obs)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self._actor_parameters)
        self.actor_optimizer.step()

        # Targets track the online networks slowly.
        soft_update(self.actor_target, self.actor, tau)
        soft_update(self.critic_target, self.critic, tau)

        self.num_updates += 1
        return {
            "critic_loss": critic_loss.item(),
            "actor_loss": actor_loss.item(),
            "q_mean": q.detach().mean().item(),
        }

    # -------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume this agent exactly (replay excluded: it is large)."""
        return {
            "format": STATE_FORMAT,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "config": self.config.to_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "noise": None if self.noise is None else self.noise.state_dict(),
            "rng": self.rng.bit_generator.state,
            "replay_rng": self.replay.rng.bit_generator.state,
            "total_steps": self.total_steps,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output into an agent built with the same dimensions."""
        if (state["obs_dim"], state["action_dim"]) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"checkpoint is for obs/action dims {state['obs_dim']}/{state['action_dim']}, "
                f"agent has {self.obs_dim}/{self.action_dim}"
            )
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        if self.noise is not None and state["noise"] is not None:
            self.noise.load_state_dict(state["noise"])
        self.rng.bit_generator.state = state["rng"]
        self.replay.rng.bit_generator.state = state["replay_rng"]
        self.total_steps = int(state["total_steps"])
        self.num_updates = int(state["num_updates"])
