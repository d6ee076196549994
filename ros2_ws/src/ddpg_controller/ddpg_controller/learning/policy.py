"""The deployable policy: frozen observation normalisation + actor + scaling to action bounds.

One ``nn.Module`` serves both the in-process acting copy (a control loop acting while a learner
thread trains) and the TorchScript export, so the robot runs exactly what was evaluated.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ddpg_controller.learning.normalizer import FrozenNormalizer


class PolicyModule(nn.Module):
    """obs (env units) -> action (env units); TorchScript-compatible.

    Normalisation and scaling run in float64 (raw joint readings and bounds can be large), the
    actor in float32 as trained; the result is float64, what ROS command messages carry.
    """

    def __init__(
        self,
        actor: nn.Module,
        normalizer: FrozenNormalizer,
        action_low: np.ndarray,
        action_high: np.ndarray,
    ) -> None:
        super().__init__()
        self.actor = actor
        f64 = torch.float64
        self.register_buffer("obs_mean", torch.as_tensor(normalizer.mean, dtype=f64))
        self.register_buffer("obs_std", torch.as_tensor(normalizer.std, dtype=f64))
        self.obs_clip = float(normalizer.clip)
        self.register_buffer("action_low", torch.as_tensor(action_low, dtype=f64))
        self.register_buffer("action_high", torch.as_tensor(action_high, dtype=f64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs.to(torch.float64) - self.obs_mean) / self.obs_std
        x = torch.clamp(x, -self.obs_clip, self.obs_clip)
        a = self.actor(x.to(torch.float32)).to(torch.float64)  # in [-1, 1]
        return self.action_low + (a + 1.0) * 0.5 * (self.action_high - self.action_low)


def numpy_call(module: nn.Module, obs: np.ndarray, obs_dim: int) -> np.ndarray:
    """Run ``module`` on one observation (obs_dim,) or a batch (n, obs_dim); float64 out."""
    arr = np.asarray(obs, dtype=np.float64)
    if arr.shape[-1:] != (obs_dim,) or arr.ndim not in (1, 2):
        raise ValueError(
            f"observation must have shape ({obs_dim},) or (n, {obs_dim}), got {arr.shape}"
        )
    with torch.inference_mode():
        return module(torch.from_numpy(arr)).numpy()


class ActingPolicy:
    """A CPU snapshot of the policy, independent of the training networks.

    Build it on the learner thread (``DDPG.acting_policy()``), hand the reference to the control
    thread, and swap in a new one to refresh: the control loop never touches training tensors.
    """

    def __init__(
        self,
        actor: nn.Module,
        normalizer: FrozenNormalizer,
        action_low: np.ndarray,
        action_high: np.ndarray,
    ) -> None:
        actor_copy = copy.deepcopy(actor).to("cpu").eval()
        for p in actor_copy.parameters():
            p.requires_grad_(False)
        self.module = PolicyModule(actor_copy, normalizer, action_low, action_high).eval()
        self.obs_dim = int(normalizer.mean.shape[0])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return numpy_call(self.module, obs, self.obs_dim)
