"""Actor and critic MLPs with the paper's architecture and initialisation.

The critic takes the action at its second hidden layer (paper §7), and every final layer starts in
U[-3e-3, 3e-3] so initial actions and Q-values are near zero and tanh is not saturated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

FINAL_LAYER_INIT = 3e-3


def _fan_in_init(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """U[-1/sqrt(fan_in), 1/sqrt(fan_in)] for weights and biases (paper's hidden-layer init)."""
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _final_init(layer: nn.Linear, generator: torch.Generator | None) -> None:
    nn.init.uniform_(layer.weight, -FINAL_LAYER_INIT, FINAL_LAYER_INIT, generator=generator)
    nn.init.uniform_(layer.bias, -FINAL_LAYER_INIT, FINAL_LAYER_INIT, generator=generator)


class Actor(nn.Module):
    """Deterministic policy mu(s): ReLU MLP ending in tanh, so actions lie in [-1, 1]."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (400, 300),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [obs_dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], action_dim)
        for layer in self.hidden:
            _fan_in_init(layer, generator)
        _final_init(self.out, generator)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return torch.tanh(self.out(x))


class Critic(nn.Module):
    """Q(s, a): the state passes one hidden layer alone, then the action joins (paper §7)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (400, 300),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        # Input widths: obs -> h0, then [h0 + action] -> h1, h1 -> h2, ...; with a single hidden
        # layer the action joins right before the output layer.
        self.first = nn.Linear(obs_dim, hidden[0])
        widths = [hidden[0] + action_dim, *hidden[1:]]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.out = nn.Linear(widths[-1], 1)
        _fan_in_init(self.first, generator)
        for layer in self.hidden:
            _fan_in_init(layer, generator)
        _final_init(self.out, generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.first(obs))
        x = torch.cat([x, action], dim=-1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)
