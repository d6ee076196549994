"""The DDPG agent: networks, targets, optimisers, replay, normaliser, noise and the update step.

Lillicrap et al. 2015 (arXiv 1509.02971), Algorithm 1. ``update`` is written to be read line by
line against the algorithm; everything else is plumbing around it.

One training step is ``sample_and_update``: sample replay rows on the learner's device into static
batch tensors, normalise them there, ``update``. It reads no value back to the host, so on CUDA
it is captured once into a CUDA graph and replayed per step (a launch-bound eager step holds the
GIL for ~100 kernel launches and starves a control thread beside it); on the CPU it runs eagerly.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.networks import Actor, Critic
from ddpg_controller.learning.noise import LinearSchedule, make_noise
from ddpg_controller.learning.normalizer import (
    DeviceNormalizer,
    FrozenNormalizer,
    RunningNormalizer,
)
from ddpg_controller.learning.policy import ActingPolicy
from ddpg_controller.learning.replay import ReplayBuffer

STATE_FORMAT = 2
# The settings that shape the networks' tensors: a checkpoint loads only into the same.
NETWORK_FIELDS = ("actor_hidden", "critic_hidden", "critic_action_input", "twin_critics")
# Eager steps on a side stream before the CUDA graph is captured (PyTorch's whole-network capture
# recipe: lazy state such as Adam's moments and cuBLAS workspaces exists before capture).
GRAPH_WARMUP_STEPS = 3
# |pre-tanh| beyond which ``actor_saturation_penalty`` acts: tanh(3) = 0.995, slope 0.01; at
# |z| > 9.1 float32 tanh is exactly +-1 and its gradient exactly 0.
SATURATION_START = 3.0


class StepKind(NamedTuple):
    """What one training step updates besides the critic(s)."""

    train_actor: bool = True  # the actor and its target
    update_critic_targets: bool = True  # the critics' targets


FULL_STEP = StepKind()


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


def resolve_cuda_graph(setting: str, device: torch.device) -> bool:
    """'auto' -> on for cuda; 'on' without cuda is an error, not a silent eager run."""
    if setting == "on" and device.type != "cuda":
        raise ValueError(
            f"DDPG config: cuda_graph='on' needs the cuda device, but the learner runs on "
            f"{device.type}; use cuda_graph 'auto' or 'off'"
        )
    return device.type == "cuda" and setting != "off"


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
        self.uses_cuda_graph = resolve_cuda_graph(cfg.cuda_graph, self.device)

        # Seeds of the independent random streams derive from one seed, so runs are reproducible
        # without touching torch's or numpy's global generators.
        seeds = np.random.SeedSequence(seed).generate_state(4)
        init_gen = torch.Generator().manual_seed(int(seeds[0]))
        self.actor = Actor(
            obs_dim, action_dim, cfg.actor_hidden, init_gen, cfg.final_layer_init
        ).to(self.device)

        def new_critic() -> Critic:
            return Critic(
                obs_dim,
                action_dim,
                cfg.critic_hidden,
                init_gen,
                cfg.critic_action_input,
                cfg.final_layer_init,
            ).to(self.device)

        self.critic = new_critic()
        # TD3's second critic (``twin_critics``), drawn after the others: the one-critic
        # default's networks are the same with or without the option in the code.
        self.critic2 = new_critic() if cfg.twin_critics else None
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic2_target = copy.deepcopy(self.critic2)
        for target in (self.actor_target, self.critic_target, self.critic2_target):
            for p in target.parameters() if target is not None else ():
                p.requires_grad_(False)
        # fused: one kernel for all parameters (measured x1.19 updates/s at batch 64 on CPU).
        # capturable on cuda: the step count stays on the device, so a CUDA graph can replay it.
        capturable = self.device.type == "cuda"
        self.actor_optimizer = torch.optim.Adam(
            self.actor.parameters(), lr=cfg.actor_lr, fused=True, capturable=capturable
        )
        self.critic_optimizer = torch.optim.Adam(
            [*self.critic.parameters(), *(self.critic2.parameters() if self.critic2 else ())],
            lr=cfg.critic_lr,
            weight_decay=cfg.critic_weight_decay,
            fused=True,
            capturable=capturable,
        )
        self._actor_parameters = list(self.actor.parameters())

        self.replay = ReplayBuffer(
            obs_dim, action_dim, cfg.buffer_size, seed=int(seeds[1]), device=self.device
        )
        self.normalizer = RunningNormalizer(obs_dim, clip=cfg.observation_clip)
        # Replay holds raw observations; batches are normalised on the device with these.
        self.batch_normalizer = DeviceNormalizer(self.frozen_normalizer(), self.device)
        # The static batch one training step fills: the packed replay rows it gathers, and
        # actions/rewards/terminated as views of them, obs/next_obs normalised.
        n = cfg.batch_size
        self._batch_rows = torch.zeros(n, self.replay.row_width, device=self.device)
        rows = self.replay.split(self._batch_rows)
        self.batch = Batch(
            torch.zeros(n, obs_dim, device=self.device),
            rows.actions,
            rows.rewards,
            torch.zeros(n, obs_dim, device=self.device),
            rows.terminated,
        )
        # One CUDA graph per kind of step, keyed by ``StepKind``: the critic-only steps of
        # ``actor_delay`` and ``policy_delay`` and the full step are different kernel sequences.
        self._graphs: dict[StepKind, torch.cuda.CUDAGraph] = {}
        self._graph_losses: dict[StepKind, dict[str, torch.Tensor]] = {}
        self._graph_warmups: Counter[StepKind] = Counter()
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
        """Action in env units for one observation; uniform random during warm-up when exploring
        (plus the exploration noise with ``warmup_noise``, as SB3).

        With ``policy`` (an ``acting_policy()`` snapshot) μ(s) comes from that copy instead of the
        training actor, so a control thread can act while another thread trains.
        """
        if explore and self.total_steps < self.config.warmup_steps:
            a = self.rng.uniform(-1.0, 1.0, self.action_dim)
            if not self.config.warmup_noise:
                return self.to_env_action(a)
        elif policy is not None:
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

    def train_step(self) -> dict[str, torch.Tensor] | None:
        """Move newly observed transitions to the device, then one training step; None while
        warming up or with too little data.

        The losses are device tensors (in graph mode overwritten by the next step): read them
        with ``float()`` only as often as they are logged, since each read waits for the device.
        The first ``actor_delay`` updates train the critic alone: the host's update count
        decides, so no step reads a device value; on CUDA each kind of step has its own graph.
        """
        if self.replay.flush() and self.config.normalize_observations:
            self.batch_normalizer.refresh(self.normalizer.frozen())
        if self.total_steps < self.learning_starts or len(self.replay) < self.config.batch_size:
            return None
        cfg = self.config
        delayed = (self.num_updates + 1) % cfg.policy_delay != 0  # TD3: SB3's count, from 1
        kind = StepKind(
            train_actor=self.num_updates >= cfg.actor_delay and not delayed,
            update_critic_targets=not delayed,
        )
        losses = self._graph_step(kind) if self.uses_cuda_graph else self.sample_and_update(kind)
        self.num_updates += 1
        return losses

    def sample_and_update(self, kind: StepKind = FULL_STEP) -> dict[str, torch.Tensor]:
        """Sample a batch into the static batch tensors on the device, then ``update``.

        Fixed shapes, device-side sampling (the learner's own generator), no host sync: this is
        the function the CUDA graph captures; on the CPU it is the training step itself.
        """
        indices = self.replay.sample_indices(self.config.batch_size)
        raw = self.replay.split(self.replay.gather(indices, out=self._batch_rows))
        self.batch.obs.copy_(self.batch_normalizer.normalize(raw.obs))
        self.batch.next_obs.copy_(self.batch_normalizer.normalize(raw.next_obs))
        bfloat16 = self.config.precision == "bfloat16"
        with torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=bfloat16,
            cache_enabled=not self.uses_cuda_graph,  # a graph must not capture the cast cache
        ):
            return self.update(self.batch, kind)

    def _graph_step(self, kind: StepKind) -> dict[str, torch.Tensor]:
        """``sample_and_update(kind)`` as a CUDA graph: a few eager warm-up steps on a side
        stream, then one capture, then one replay per step (every step a real update)."""
        graph = self._graphs.get(kind)
        if graph is None and self._graph_warmups[kind] < GRAPH_WARMUP_STEPS:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                losses = self.sample_and_update(kind)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph_warmups[kind] += 1
            return losses
        if graph is None:
            graph = torch.cuda.CUDAGraph()
            graph.register_generator_state(self.replay.generator)  # replay advances its stream
            # thread_local: the control thread goes on acting (CPU only) during the capture.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._graph_losses[kind] = self.sample_and_update(kind)
            self._graphs[kind] = graph
        graph.replay()
        return self._graph_losses[kind]

    def update(self, batch: Batch, kind: StepKind = FULL_STEP) -> dict[str, torch.Tensor]:
        """One DDPG update (Algorithm 1, inner loop); losses and mean Q stay on the device.

        With ``kind.train_actor`` False (the first ``actor_delay`` updates, TD3's delayed ones)
        the actor and its target stay as they are; the actor's loss is still computed, to be
        logged. With ``kind.update_critic_targets`` False (TD3's delayed updates) the critics'
        targets stay too. The TD3 options (twin critics, target noise) act where set."""
        cfg = self.config

        # Critic target: y = r + gamma * (1 - terminated) * Q'(s', mu'(s')), no gradient.
        with torch.no_grad():
            next_actions = self.actor_target(batch.next_obs)
            if cfg.target_policy_noise > 0.0:  # TD3's target policy smoothing
                noise = torch.randn(
                    next_actions.shape, generator=self.replay.generator, device=self.device
                )
                noise = (noise * cfg.target_policy_noise).clamp(
                    -cfg.target_noise_clip, cfg.target_noise_clip
                )
                next_actions = (next_actions + noise).clamp(-1.0, 1.0)
            next_q = self.critic_target(batch.next_obs, next_actions)
            if self.critic2_target is not None:  # TD3: the smaller of the two critics' targets
                next_q = torch.minimum(next_q, self.critic2_target(batch.next_obs, next_actions))
            y = batch.rewards + cfg.gamma * (1.0 - batch.terminated) * next_q

        # Critic: minimise MSE(Q(s, a), y) (summed over both critics with ``twin_critics``).
        q = self.critic(batch.obs, batch.actions)
        critic_loss = functional.mse_loss(q, y)
        if self.critic2 is not None:
            critic_loss = critic_loss + functional.mse_loss(
                self.critic2(batch.obs, batch.actions), y
            )
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # Actor: ascend Q(s, mu(s)) through the online critic, mu(s) = tanh(z), while keeping
        # |z| <= SATURATION_START, where tanh still passes the critic's gradient. Gradients flow
        # only into the actor's parameters (backward inputs=): the critic is not changed here.
        z = self.actor.pre_tanh(batch.obs)
        saturation = functional.relu(z.abs() - SATURATION_START).square().mean()
        actor_loss = (
            -self.critic(batch.obs, torch.tanh(z)).mean()
            + cfg.actor_saturation_penalty * saturation
        )
        if kind.train_actor:
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward(inputs=self._actor_parameters)
            self.actor_optimizer.step()
            soft_update(self.actor_target, self.actor, cfg.tau)  # targets track slowly

        if kind.update_critic_targets:
            soft_update(self.critic_target, self.critic, cfg.tau)
            if self.critic2_target is not None:
                soft_update(self.critic2_target, self.critic2, cfg.tau)

        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q_mean": q.detach().mean(),
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
            **(
                {
                    "critic2": self.critic2.state_dict(),
                    "critic2_target": self.critic2_target.state_dict(),
                }
                if self.critic2 is not None and self.critic2_target is not None
                else {}
            ),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "noise": None if self.noise is None else self.noise.state_dict(),
            "rng": self.rng.bit_generator.state,
            "replay_generator": self.replay.generator.get_state(),
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
        # A run started under other network settings (e.g. before critic_action_input's default
        # changed) would otherwise fail in torch with a tensor size mismatch naming no parameter.
        saved, current = state["config"], self.config.to_dict()
        differing = [
            f"ddpg.{name}: {saved[name]!r} in the checkpoint, {current[name]!r} here"
            for name in NETWORK_FIELDS
            if saved.get(name, current[name]) != current[name]
        ]
        if differing:
            raise ValueError(
                "checkpoint's networks were built with other settings; set these in the parameter "
                "file to resume it: " + "; ".join(differing)
            )
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_target.load_state_dict(state["critic_target"])
        if self.critic2 is not None and self.critic2_target is not None:
            self.critic2.load_state_dict(state["critic2"])
            self.critic2_target.load_state_dict(state["critic2_target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        # The optimisers' state tensors are new: capture again.
        self._graphs, self._graph_losses = {}, {}
        self._graph_warmups = Counter()
        self.normalizer.load_state_dict(state["normalizer"])
        self.batch_normalizer.refresh(self.frozen_normalizer())
        if self.noise is not None and state["noise"] is not None:
            self.noise.load_state_dict(state["noise"])
        self.rng.bit_generator.state = state["rng"]
        self.replay.generator.set_state(state["replay_generator"].cpu())
        self.total_steps = int(state["total_steps"])
        self.num_updates = int(state["num_updates"])
