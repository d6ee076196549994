"""Exploration noise for DDPG, in the actor's [-1, 1] action space.

Each process owns a seeded numpy Generator and exposes ``state_dict()`` so a resumed run draws the
same noise sequence as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from ddpg_controller.learning.config import NoiseConfig


class ActionNoise(Protocol):
    """What the agent needs from a noise process."""

    def __call__(self) -> np.ndarray: ...

    def reset(self) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class OrnsteinUhlenbeckNoise:
    """x <- x + theta(mu - x)dt + sigma sqrt(dt) N(0, 1): temporally correlated exploration.

    The paper uses it because correlated noise explores physical systems with inertia better than
    independent samples. Stationary variance of the discrete process:
    sigma^2 dt / (1 - (1 - theta dt)^2)  (-> sigma^2 / (2 theta) as dt -> 0).
    """

    def __init__(
        self,
        size: int,
        theta: float = 0.15,
        sigma: float = 0.2,
        mu: float = 0.0,
        dt: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.size = size
        self.theta = theta
        self.sigma = sigma
        self.mu = mu
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        self.x = np.full(size, mu, dtype=np.float64)

    def reset(self) -> None:
        """Restart at the mean: called at every episode start so episodes are independent."""
        self.x = np.full(self.size, self.mu, dtype=np.float64)

    def __call__(self) -> np.ndarray:
        eps = self.rng.standard_normal(self.size)
        self.x = (
            self.x
            + self.theta * (self.mu - self.x) * self.dt
            + self.sigma * math.sqrt(self.dt) * eps
        )
        return self.x.copy()

    def stationary_variance(self) -> float:
        """Exact long-run variance of this discrete process."""
        a = 1.0 - self.theta * self.dt
        return self.sigma**2 * self.dt / (1.0 - a * a)

    def state_dict(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.x = np.asarray(state["x"], dtype=np.float64)
        self.rng.bit_generator.state = state["rng"]


class GaussianNoise:
    """Independent N(mu, sigma^2) per step: the simpler choice modern DDPG setups use."""

    def __init__(self, size: int, sigma: float = 0.1, mu: float = 0.0, seed: int | None = None):
        self.size = size
        self.sigma = sigma
        self.mu = mu
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Stateless; kept so callers can treat every noise alike."""

    def __call__(self) -> np.ndarray:
        return self.mu + self.sigma * self.rng.standard_normal(self.size)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class LinearSchedule:
    """Noise multiplier going linearly from ``initial`` to ``final`` over ``steps`` env steps.

    ``steps == 0`` disables the schedule (the multiplier stays at ``initial``).
    """

    def __init__(self, initial: float = 1.0, final: float = 1.0, steps: int = 0) -> None:
        self.initial = initial
        self.final = final
        self.steps = steps

    def __call__(self, step: int) -> float:
        if self.steps <= 0:
            return self.initial
        frac = min(max(step, 0) / self.steps, 1.0)
        return self.initial + (self.final - self.initial) * frac


def make_noise(cfg: NoiseConfig, action_dim: int, seed: int | None) -> ActionNoise | None:
    """The noise process named by ``cfg.type``; None for 'none'."""
    if cfg.type == "ou":
        return OrnsteinUhlenbeckNoise(action_dim, cfg.theta, cfg.sigma, cfg.mu, cfg.dt, seed)
    if cfg.type == "gaussian":
        return GaussianNoise(action_dim, cfg.sigma, cfg.mu, seed)
    return None
