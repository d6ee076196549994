"""Uniform experience replay stored on the learner's device, filled from a host staging ring.

Two threads share it. The control thread ``add()``s a transition into a small numpy staging ring
under a lock held for one row copy; it never touches a device tensor. The learner thread
``flush()``es the staged rows into the device storage in one copy and samples there with its own
``torch.Generator``: indices come from ``torch.randint`` on the device and a device-resident size,
so a sample needs no host sync and can be captured into a CUDA graph.

A transition is one packed float32 row ``[obs, action, reward, next_obs, terminated]``, so a batch
is one gather and a staged row can never be torn. Actions are stored in the actor's [-1, 1] space.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np
import torch

# Random 62-bit integers reduced modulo the stored size: uniform to within size / 2**62.
_RANDOM_HIGH = 2**62
_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")


class ReplaySample(NamedTuple):
    """A batch of transitions as float32 tensors; rewards/terminated have shape (batch, 1)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """Fixed-capacity ring buffer of (obs, action, reward, next_obs, terminated) on ``device``."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        capacity: int,
        seed: int | None = None,
        device: torch.device | str = "cpu",
        staging_rows: int = 1024,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.capacity = capacity
        self.device = torch.device(device)
        widths = (obs_dim, action_dim, 1, obs_dim, 1)
        edges = np.cumsum((0, *widths))
        self._columns = {name: slice(edges[i], edges[i + 1]) for i, name in enumerate(_FIELDS)}
        self.row_width = int(edges[-1])
        self.storage = torch.zeros(capacity, self.row_width, device=self.device)
        self.pos = 0  # next row of storage to write
        self.size = 0  # rows in storage (flushed)
        self.total_added = 0  # transitions ever add()ed, staged ones included
        # The stored size as a device tensor: sampling reads it there, inside a graph too.
        self.size_tensor = torch.zeros((), dtype=torch.int64, device=self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))

        self._staging = np.zeros((max(1, staging_rows), self.row_width), dtype=np.float32)
        self._staged = 0
        self._lock = threading.Lock()  # guards the staging ring only
        # CUDA: staged rows go through pinned memory; the event says when that copy is done.
        self._pinned: torch.Tensor | None = None
        self._copied: torch.cuda.Event | None = None

    def __len__(self) -> int:
        """Transitions stored, staged ones included (the learner flushes before it samples)."""
        return min(self.size + self._staged, self.capacity)

    # ---- control thread ----------------------------------------------------------------------
    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Stage one transition; the learner moves it to the device at its next ``flush()``."""
        c = self._columns
        with self._lock:
            if self._staged == len(self._staging):  # the learner fell behind: grow, never drop
                self._staging = np.concatenate([self._staging, np.zeros_like(self._staging)])
            row = self._staging[self._staged]
            row[c["obs"]] = obs
            row[c["actions"]] = action
            row[c["rewards"]] = reward
            row[c["next_obs"]] = next_obs
            row[c["terminated"]] = float(terminated)
            self._staged += 1
            self.total_added += 1

    # ---- learner thread ----------------------------------------------------------------------
    def flush(self) -> int:
        """Move the staged rows into device storage (one host copy under the lock, one device
        copy outside it); returns how many rows came."""
        with self._lock:
            n = self._staged
            if n == 0:
                return 0
            keep = min(n, self.capacity)  # more than a whole buffer: only the newest survive
            staged = torch.from_numpy(self._staging[n - keep : n].copy())
            self._staged = 0
        rows = self._to_device(staged)
        self.pos = (self.pos + n - keep) % self.capacity  # rows overwritten in staging already
        first = min(keep, self.capacity - self.pos)
        self.storage[self.pos : self.pos + first] = rows[:first]
        self.storage[: keep - first] = rows[first:]
        self.pos = (self.pos + keep) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.size_tensor.fill_(self.size)
        return n

    def _to_device(self, rows: torch.Tensor) -> torch.Tensor:
        """On CUDA through pinned memory, asynchronously; the learner (never the control thread)
        waits for the previous copy before it reuses the pinned rows."""
        if self.device.type != "cuda":
            return rows
        if self._copied is not None:
            self._copied.synchronize()
        if self._pinned is None or len(self._pinned) < len(rows):
            self._pinned = torch.empty(max(len(rows), len(self._staging)), self.row_width)
            self._pinned = self._pinned.pin_memory()
        pinned = self._pinned[: len(rows)]
        pinned.copy_(rows)
        on_device = pinned.to(self.device, non_blocking=True)
        self._copied = torch.cuda.Event()
        self._copied.record()
        return on_device

    def sample_indices(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` uniform row indices in [0, size) on the device, with replacement.

        No host sync: the size is read on the device, so the call can be captured into a graph.
        """
        draws = torch.randint(
            0, _RANDOM_HIGH, (batch_size,), device=self.device, generator=self.generator
        )
        return torch.remainder(draws, self.size_tensor)

    def gather(self, indices: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The packed rows at ``indices`` (into ``out`` when given)."""
        return torch.index_select(self.storage, 0, indices, out=out)

    def split(self, rows: torch.Tensor) -> ReplaySample:
        """Views of packed rows as the five fields."""
        return ReplaySample(*(rows[:, self._columns[name]] for name in _FIELDS))

    def sample(self, batch_size: int) -> ReplaySample:
        """Flush, then uniformly sample ``batch_size`` stored transitions (with replacement)."""
        self.flush()
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.split(self.gather(self.sample_indices(batch_size)))

    def field(self, name: str) -> torch.Tensor:
        """All stored rows of one field (flushed first), physical layout; for inspection."""
        self.flush()
        return self.storage[: self.size, self._columns[name]]

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Stored rows in their physical layout, the write position and the sampler's generator
        state, so a restored buffer samples exactly the same batches."""
        self.flush()
        rows = self.storage[: self.size].cpu().numpy()
        return {
            "capacity": self.capacity,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "pos": self.pos,
            "total_added": self.total_added,
            **{name: rows[:, self._columns[name]].copy() for name in _FIELDS},
            "generator": self.generator.get_state().numpy().copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output. With another capacity the newest rows that fit are
        kept, oldest first (sampling then no longer repeats the saved run exactly)."""
        if (int(state["obs_dim"]), int(state["action_dim"])) != (self.obs_dim, self.action_dim):
            raise ValueError(
                f"replay state has obs/action dims {state['obs_dim']}/{state['action_dim']}, "
                f"buffer has {self.obs_dim}/{self.action_dim}"
            )
        n = len(state["obs"])
        columns = [np.asarray(state[name], np.float32).reshape(n, -1) for name in _FIELDS]
        saved = np.concatenate(columns, axis=1)
        pos = int(state["pos"])
        if int(state["capacity"]) == self.capacity:
            rows, new_pos = np.arange(n), pos
        else:
            order = (np.arange(n) + (pos - n)) % n  # oldest to newest
            rows = order[-self.capacity :]
            new_pos = len(rows) % self.capacity
        with self._lock:
            self._staged = 0
        self.storage[: len(rows)] = torch.from_numpy(saved[rows]).to(self.device)
        self.size = len(rows)
        self.pos = new_pos
        self.size_tensor.fill_(self.size)
        self.total_added = int(state["total_added"])
        self.generator.set_state(torch.from_numpy(np.asarray(state["generator"], np.uint8)))
