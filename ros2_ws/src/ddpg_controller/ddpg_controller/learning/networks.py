"""Actor and critic MLPs: the paper's architecture, or the layout SB3, TD3 and CleanRL use.

Two choices separate those layouts (``DDPGConfig.critic_action_input`` and ``final_layer_init``
say which is the default and the measurements behind it):
- where the action joins the critic: at its input, concatenated with the observation ("first"),
  or at its second hidden layer ("second", paper §7);
- the final layers' initialisation: U[-3e-3, 3e-3] (paper), or U[-1/sqrt(fan_in),
  1/sqrt(fan_in)] like every hidden layer, which is also PyTorch's ``nn.Linear`` default.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from ddpg_controller.learning.config import CRITIC_ACTION_INPUTS, FINAL_LAYER_INITS

PAPER_FINAL_BOUND = 3e-3


def _uniform_init(layer: nn.Linear, bound: float, generator: torch.Generator | None) -> None:
    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _fan_in_init(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """U[-1/sqrt(fan_in), 1/sqrt(fan_in)] for weights and biases: the paper's hidden-layer init,
    the same distribution as PyTorch's default for ``nn.Linear``, but drawn from ``generator``."""
    _uniform_init(layer, 1.0 / math.sqrt(layer.in_features), generator)


def _final_init(layer: nn.Linear, scheme: str, generator: torch.Generator | None) -> None:
    if scheme == "uniform_3e-3":
        _uniform_init(layer, PAPER_FINAL_BOUND, generator)
    elif scheme == "fan_in":
        _fan_in_init(layer, generator)
    else:
        raise ValueError(f"final_layer_init must be one of {FINAL_LAYER_INITS}, got {scheme!r}")


class Actor(nn.Module):
    """Deterministic policy mu(s): ReLU MLP ending in tanh, so actions lie in [-1, 1]."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (400, 300),
        generator: torch.Generator | None = None,
        final_layer_init: str = "uniform_3e-3",
    ) -> None:
        super().__init__()
        widths = [obs_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], action_dim)
        for layer in self.hidden:
            _fan_in_init(layer, generator)
        _final_init(self.out, final_layer_init, generator)

    def pre_tanh(self, obs: torch.Tensor) -> torch.Tensor:
        """The output layer's value z, mu(s) = tanh(z): the update penalises large |z|."""
        x = obs
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pre_tanh(obs))


class Critic(nn.Module):
    """Q(s, a): a ReLU MLP whose input is the observation; the action is concatenated to the
    input of hidden layer ``action_layer`` (0 for "first", 1 for "second"). With one hidden
    layer and "second", the action joins right before the output layer."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (400, 300),
        generator: torch.Generator | None = None,
        action_input: str = "second",
        final_layer_init: str = "uniform_3e-3",
    ) -> None:
        super().__init__()
        if action_input not in CRITIC_ACTION_INPUTS:
            raise ValueError(
                f"critic action_input must be one of {CRITIC_ACTION_INPUTS}, got {action_input!r}"
            )
        self.action_layer = CRITIC_ACTION_INPUTS.index(action_input)
        in_widths = [obs_dim, *hidden]  # the input width of layer i, and the output's last
        in_widths[self.action_layer] += action_dim
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(in_widths[:-1], hidden, strict=True)
        )
        self.out = nn.Linear(in_widths[-1], 1)
        for layer in self.hidden:
            _fan_in_init(layer, generator)
        _final_init(self.out, final_layer_init, generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = obs
        for i, layer in enumerate(self.hidden):
            if i == self.action_layer:
                x = torch.cat([x, action], dim=-1)
            x = torch.relu(layer(x))
        if self.action_layer == len(self.hidden):
            x = torch.cat([x, action], dim=-1)
        return self.out(x)
