"""The deployable policy: frozen observation normalisation + actor + scaling to action bounds.

One ``nn.Module`` serves both the in-process acting copy (a control loop acting while a learner
thread trains) and the TorchScript export, so the robot runs exactly what was evaluated.
"""

from __future__ import annotations

import copy
import threading
import warnings

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
    """A CPU copy of the policy, independent of the training networks.

    Built once (``DDPG.acting_policy()``); a learner thread refreshes it in place with ``load``
    while a control thread calls it. One lock, held by a call for one forward pass and by
    ``load`` for one copy, makes every call see a whole old or a whole new policy.
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
        # TorchScript: one call from Python runs the whole forward pass with the GIL released,
        # where the eager module takes and drops the GIL at each of its ~15 ops, each a wait on a
        # learner thread holding it (measured beside a training thread on 2 busy cores, pendulum
        # actor: act p50 0.37-0.48 ms vs 0.49-0.67 ms eager, p99 0.64-0.77 ms vs 0.90-5.8 ms).
        module = PolicyModule(actor_copy, normalizer, action_low, action_high).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # as export.py: the same module
            self.module = torch.jit.script(module)
        self.obs_dim = int(normalizer.mean.shape[0])
        self._weights = list(self.module.actor.parameters())
        self._lock = threading.Lock()
        for _ in range(3):  # the profiling executor optimises on the first calls: not in the loop
            numpy_call(self.module, np.zeros(self.obs_dim), self.obs_dim)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with self._lock:
            return numpy_call(self.module, obs, self.obs_dim)

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The actor's parameters by name, in ``load`` order."""
        return {name: tuple(p.shape) for name, p in self.module.actor.named_parameters()}

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Observation statistics, then the actor's parameters by name, copied under the lock:
        the whole policy as numbers, what a fleet learner sends its actors."""
        with self._lock:
            arrays = {
                "obs_mean": self.module.obs_mean.numpy().copy(),
                "obs_std": self.module.obs_std.numpy().copy(),
            }
            for name, parameter in self.module.actor.named_parameters():
                arrays[name] = parameter.detach().numpy().copy()
        return arrays

    def load(self, weights: list[torch.Tensor], normalizer: FrozenNormalizer) -> None:
        """Copy CPU actor weights (in ``actor.parameters()`` order) and statistics in."""
        with self._lock, torch.no_grad():
            for mine, new in zip(self._weights, weights, strict=True):
                mine.copy_(new)
            self.module.obs_mean.copy_(torch.from_numpy(normalizer.mean))
            self.module.obs_std.copy_(torch.from_numpy(normalizer.std))


class PolicyRefresher:
    """Keeps one preallocated ``ActingPolicy`` in step with a training actor.

    On the CPU ``begin`` copies the weights in directly. On CUDA it starts a non-blocking copy
    into pinned host buffers and records an event; ``poll`` loads them into the policy once the
    event has completed. Only the learner thread calls either: the control thread just calls
    ``policy`` and never waits on the GPU.
    """

    def __init__(self, policy: ActingPolicy, actor: nn.Module) -> None:
        self.policy = policy
        self._source = list(actor.parameters())
        self._cuda = self._source[0].device.type == "cuda"
        self._host = [torch.empty(p.shape, pin_memory=self._cuda) for p in self._source]
        self._copied: torch.cuda.Event | None = None  # a copy in flight
        self._normalizer: FrozenNormalizer | None = None

    def begin(self, normalizer: FrozenNormalizer) -> None:
        """Start copying the actor's current weights; skipped while the last copy is in flight."""
        if not self._cuda:
            with torch.no_grad():
                self.policy.load(self._source, normalizer)
            return
        if self._copied is not None:
            return
        with torch.no_grad():
            for host, source in zip(self._host, self._source, strict=True):
                host.copy_(source, non_blocking=True)
        self._normalizer = normalizer
        self._copied = torch.cuda.Event()
        self._copied.record()

    def poll(self, wait: bool = False) -> None:
        """Load a finished copy into the policy (``wait``: first wait for it on this thread)."""
        if self._copied is None:
            return
        if wait:
            self._copied.synchronize()
        elif not self._copied.query():
            return
        assert self._normalizer is not None
        self.policy.load(self._host, self._normalizer)
        self._copied = None
