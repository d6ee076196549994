"""Running observation mean/std, so networks see inputs of unit scale whatever the robot's units.

Statistics are merged with the parallel (Chan et al.) form of Welford's update, which is exact for
batches and numerically stable. A lock makes ``update`` safe beside readers on another thread;
``frozen()`` takes the snapshot that an exported or acting policy uses, and ``DeviceNormalizer``
holds one on the learner's device, where replay batches are normalised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

EPS = 1e-8


@dataclass(frozen=True)
class FrozenNormalizer:
    """Fixed statistics: normalize(x) = clip((x - mean) / std, -clip, clip)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float

    def normalize(self, x: np.ndarray) -> np.ndarray:
        out = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    @classmethod
    def identity(cls, dim: int) -> FrozenNormalizer:
        """No normalisation (used when ``normalize_observations`` is off)."""
        return cls(np.zeros(dim), np.ones(dim), float("inf"))


class DeviceNormalizer:
    """A ``FrozenNormalizer`` as static float64 tensors on a device, refreshed in place.

    The statistics keep their storage, so a CUDA graph that normalises with them sees every
    refresh. Arithmetic is float64 like ``FrozenNormalizer.normalize``: the same numbers.
    """

    def __init__(self, frozen: FrozenNormalizer, device: torch.device) -> None:
        self.mean = torch.as_tensor(frozen.mean, dtype=torch.float64, device=device).clone()
        self.std = torch.as_tensor(frozen.std, dtype=torch.float64, device=device).clone()
        self.clip = float(frozen.clip)  # fixed by the config: a constant inside a graph

    def refresh(self, frozen: FrozenNormalizer) -> None:
        self.mean.copy_(torch.from_numpy(frozen.mean), non_blocking=True)
        self.std.copy_(torch.from_numpy(frozen.std), non_blocking=True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (n, dim) -> clip((x - mean) / std, -clip, clip), float32."""
        out = (x.to(torch.float64) - self.mean) / self.std
        return torch.clamp(out, -self.clip, self.clip).to(torch.float32)


class RunningNormalizer:
    """Running mean and (population) variance of observations, float64."""

    def __init__(self, dim: int, clip: float = 10.0) -> None:
        self.dim = dim
        self.clip = clip
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)  # sum of squared deviations from the mean
        self._lock = threading.Lock()

    @property
    def var(self) -> np.ndarray:
        return self.m2 / self.count if self.count > 0 else np.ones(self.dim)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var + EPS)

    def update(self, x: np.ndarray) -> None:
        """Merge one observation (dim,) or a batch (n, dim) into the statistics."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        with self._lock:
            n_a = self.count
            n = n_a + n_b
            delta = mean_b - self.mean
            self.mean = self.mean + delta * (n_b / n)
            self.m2 = self.m2 + m2_b + delta**2 * (n_a * n_b / n)
            self.count = n

    def frozen(self) -> FrozenNormalizer:
        """A consistent snapshot for inference; later updates do not change it."""
        with self._lock:
            return FrozenNormalizer(self.mean.copy(), self.std.copy(), self.clip)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return self.frozen().normalize(x)

    def state_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"count": self.count, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.count = int(state["count"])
            self.mean = np.asarray(state["mean"], dtype=np.float64)
            self.m2 = np.asarray(state["m2"], dtype=np.float64)
