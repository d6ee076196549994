"""Uniform experience replay: a preallocated numpy ring buffer shared by two threads.

A control thread ``add()``s while a learner thread ``sample()``s. One lock guards the write of a
row and the gather of a batch; both are a few microseconds of numpy copying, so neither thread
waits long. Actions are stored in the actor's [-1, 1] space so updates never rescale.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np


class ReplaySample(NamedTuple):
    """A batch of transitions as float32 arrays; rewards/terminated have shape (batch, 1)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray


class ReplayBuffer:
    """Fixed-capacity ring buffer of (obs, action, reward, next_obs, terminated)."""

    def __init__(self, obs_dim: int, action_dim: int, capacity: int, seed: int | None = None):
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, action_dim), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.terminated = np.zeros((capacity, 1), dtype=np.float32)
        self.pos = 0  # next row to write
        self.size = 0
        self.total_added = 0
        self.rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store one transition, overwriting the oldest once full."""
        with self._lock:
            i = self.pos
            self.obs[i] = obs
            self.actions[i] = action
            self.rewards[i, 0] = reward
            self.next_obs[i] = next_obs
            self.terminated[i, 0] = float(terminated)
            self.pos = (i + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
            self.total_added += 1

    def sample(self, batch_size: int) -> ReplaySample:
        """Uniformly sample ``batch_size`` stored transitions (with replacement)."""
        with self._lock:
            if self.size == 0:
                raise ValueError("cannot sample from an empty replay buffer")
            idx = self.rng.integers(0, self.size, size=batch_size)
            return ReplaySample(
                self.obs[idx],
                self.actions[idx],
                self.rewards[idx],
                self.next_obs[idx],
                self.terminated[idx],
            )

    def state_dict(self) -> dict[str, Any]:
        """Stored rows in their physical layout, the write position and the sampler RNG state,
        so a restored buffer samples exactly the same batches."""
        with self._lock:
            n = self.size
            return {
                "capacity": self.capacity,
                "obs_dim": self.obs_dim,
                "action_dim": self.action_dim,
                "pos": self.pos,
                "total_added": self.total_added,
                "obs": self.obs[:n].copy(),
                "actions": self.actions[:n].copy(),
                "rewards": self.rewards[:n].copy(),
                "next_obs": self.next_obs[:n].copy(),
                "terminated": self.terminated[:n].copy(),
                "rng": self.rng.bit_generator.state,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output. With another capacity the newest rows that fit are
        kept, oldest first (sampling then no longer repeats the saved run exactly)."""
        if (int(state["obs_dim"]), int(state["action_dim"])) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"replay state has obs/action dims {state['obs_dim']}/{state['action_dim']}, "
                f"buffer has {self.obs_dim}/{self.action_dim}"
            )
        names = ("obs", "actions", "rewards", "next_obs", "terminated")
        n, pos = len(state["obs"]), int(state["pos"])
        if int(state["capacity"]) == self.capacity:
            rows, new_pos = np.arange(n), pos
        else:
            order = (np.arange(n) + (pos - n)) % n  # oldest to newest
            rows = order[-self.capacity :]
            new_pos = len(rows) % self.capacity
        with self._lock:
            for name in names:
                getattr(self, name)[: len(rows)] = np.asarray(state[name])[rows]
            self.size = len(rows)
            self.pos = new_pos
            self.total_added = int(state["total_added"])
            self.rng.bit_generator.state = state["rng"]
