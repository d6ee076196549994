"""DDPG hyperparameters as dataclasses, validated once, loadable from a ROS 2 parameter file.

Every field carries ``metadata["description"]`` so a ROS node can declare one parameter per field
(``ddpg.<field>``, ``ddpg.noise.<field>``) with the same text a reader sees here. Defaults are the
paper's (Lillicrap et al. 2015, §7) wherever the paper states a value, except the output layers'
init (SB3's, TD3's and CleanRL's) and the actor's saturation penalty (not in the paper). A
description says what the field does in a line or two (``ros2 param describe`` prints it, at most
``MAX_DESCRIPTION_CHARS``); the measurements behind a default are in the bench findings it names.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOISE_TYPES = ("ou", "gaussian", "none")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")
CUDA_GRAPH_SETTINGS = ("auto", "on", "off")
CRITIC_ACTION_INPUTS = ("first", "second")
FINAL_LAYER_INITS = ("uniform_3e-3", "fan_in")
# A parameter's description (every node's, these fields' too) is what it does, its unit and the
# paper's value; longer text is evidence, which belongs in bench/results/*-findings.md.
MAX_DESCRIPTION_CHARS = 300


def _desc(text: str) -> dict[str, str]:
    return {"description": text}


@dataclass
class NoiseConfig:
    """Exploration noise added to the actor's [-1, 1] output while training."""

    type: str = field(
        default="ou",
        metadata=_desc(
            "Exploration noise: 'ou' (Ornstein-Uhlenbeck, paper), 'gaussian' or 'none'."
        ),
    )
    theta: float = field(
        default=0.15, metadata=_desc("OU mean-reversion rate theta (paper 0.15); >= 0.")
    )
    sigma: float = field(
        default=0.2,
        metadata=_desc("Noise scale sigma in [-1,1] action units: OU diffusion or Gaussian std."),
    )
    mu: float = field(
        default=0.0, metadata=_desc("Mean the noise reverts to (OU) or is centred on.")
    )
    dt: float = field(
        default=1.0,
        metadata=_desc("OU time step of the discrete update (1.0 = one env step); > 0."),
    )
    scale_initial: float = field(
        default=1.0,
        metadata=_desc("Noise multiplier at step 0 of the linear noise-scale schedule."),
    )
    scale_final: float = field(
        default=1.0, metadata=_desc("Noise multiplier reached after schedule_steps env steps.")
    )
    schedule_steps: int = field(
        default=0,
        metadata=_desc("Env steps to go linearly from scale_initial to scale_final; 0 = constant."),
    )

    def __post_init__(self) -> None:
        _check(self.type in NOISE_TYPES, "noise.type", self.type, f"one of {NOISE_TYPES}")
        _check(self.theta >= 0.0, "noise.theta", self.theta, ">= 0")
        _check(self.sigma >= 0.0, "noise.sigma", self.sigma, ">= 0")
        _check(self.dt > 0.0, "noise.dt", self.dt, "> 0")
        _check(self.theta * self.dt <= 2.0, "noise.theta*dt", self.theta * self.dt, "<= 2 (stable)")
        _check(self.scale_initial >= 0.0, "noise.scale_initial", self.scale_initial, ">= 0")
        _check(self.scale_final >= 0.0, "noise.scale_final", self.scale_final, ">= 0")
        _check(self.schedule_steps >= 0, "noise.schedule_steps", self.schedule_steps, ">= 0")


@dataclass
class DDPGConfig:
    """Every DDPG hyperparameter; defaults follow the paper unless noted in the description."""

    actor_hidden: tuple[int, ...] = field(
        default=(400, 300), metadata=_desc("Actor hidden layer widths (paper 400, 300).")
    )
    critic_hidden: tuple[int, ...] = field(
        default=(400, 300),
        metadata=_desc("Critic hidden layer widths (paper 400, 300)."),
    )
    critic_action_input: str = field(
        default="second",
        metadata=_desc(
            "Critic layer the action joins: 'first' (with the observation at the input, as SB3 and "
            "TD3) or 'second' (after one observation-only layer, the paper's §7). Why 'second': "
            "bench/results/2026-11-26-guards-findings.md."
        ),
    )
    final_layer_init: str = field(
        default="fan_in",
        metadata=_desc(
            "Init of the actor's and critic's output layers: 'uniform_3e-3' (the paper's "
            "U[-3e-3, 3e-3]) or 'fan_in' (U[+-1/sqrt(fan_in)], as the hidden layers and SB3). Why "
            "fan_in: bench/results/2026-11-26-guards-findings.md."
        ),
    )
    actor_delay: int = field(
        default=0,
        metadata=_desc(
            "Updates after learning starts in which only the critic trains and the actor "
            "waits (paper: none; 0 disables). Off: actor_saturation_penalty frees stuck seeds "
            "without its cost on ReacherBullet (bench/results/2026-11-26-guards-findings.md)."
        ),
    )
    actor_saturation_penalty: float = field(
        default=1.0,
        metadata=_desc(
            "Weight of mean(max(|z| - 3, 0)^2) in the actor's loss, z its pre-tanh output: "
            "keeps |mu(s)| <= 0.995, where tanh passes a gradient, so a saturated actor comes "
            "back (paper: none; 0 disables). Why 1: bench/results/2026-11-26-guards-findings.md."
        ),
    )
    actor_lr: float = field(default=1e-4, metadata=_desc("Actor Adam learning rate (paper 1e-4)."))
    critic_lr: float = field(
        default=1e-3, metadata=_desc("Critic Adam learning rate (paper 1e-3).")
    )
    critic_weight_decay: float = field(
        default=1e-2, metadata=_desc("L2 weight decay on the critic (paper 1e-2; 0 disables).")
    )
    gamma: float = field(default=0.99, metadata=_desc("Discount factor in [0, 1] (paper 0.99)."))
    tau: float = field(
        default=0.001, metadata=_desc("Soft target update rate in (0, 1] (paper 0.001).")
    )
    batch_size: int = field(default=64, metadata=_desc("Minibatch size per update (paper 64)."))
    buffer_size: int = field(
        default=1_000_000, metadata=_desc("Replay buffer capacity in transitions (paper 1e6).")
    )
    warmup_steps: int = field(
        default=0,
        metadata=_desc("Env steps of uniform random actions before learning starts (paper: none)."),
    )
    twin_critics: bool = field(
        default=False,
        metadata=_desc(
            "TD3 (Fujimoto et al. 2018): two critics, the target takes their minimum; the actor "
            "follows the first. Off: DDPG's one critic."
        ),
    )
    target_policy_noise: float = field(
        default=0.0,
        metadata=_desc(
            "TD3: std of Gaussian noise on the target actor's action, [-1, 1] units (TD3 0.2), "
            "clipped to +-target_noise_clip; 0 = off, as DDPG."
        ),
    )
    target_noise_clip: float = field(
        default=0.5, metadata=_desc("TD3: clip of target_policy_noise (TD3 0.5); >= 0.")
    )
    policy_delay: int = field(
        default=1,
        metadata=_desc(
            "TD3: the actor and the targets update once every this many critic updates (TD3 2); "
            "1 = every update, as DDPG."
        ),
    )
    warmup_noise: bool = field(
        default=False,
        metadata=_desc(
            "Add the exploration noise to the warm-up's uniform actions, then clip to [-1, 1], as "
            "SB3 does (off: warm-up actions are uniform only, the package's behaviour so far)."
        ),
    )
    updates_per_step: float = field(
        default=1.0,
        metadata=_desc("Gradient updates per env step; fractional allowed (0.5 = every 2 steps)."),
    )
    normalize_observations: bool = field(
        default=True,
        metadata=_desc("Normalise observations with running mean/std (stands in for paper's BN)."),
    )
    observation_clip: float = field(
        default=10.0, metadata=_desc("Clip normalised observations to +-this value; > 0.")
    )
    device: str = field(
        default="auto", metadata=_desc("Torch device: 'auto' (cuda if available), 'cpu', 'cuda'.")
    )
    precision: str = field(
        default="float32",
        metadata=_desc(
            "Arithmetic of the update step: 'float32' (paper) or 'bfloat16' autocast, "
            "experimental: faster on CPUs with AVX512-BF16, other numerics "
            "(bench/results/2026-11-25-findings.md)."
        ),
    )
    cuda_graph: str = field(
        default="auto",
        metadata=_desc(
            "Run each training step (replay sampling + update + soft updates) as one captured "
            "CUDA graph: 'auto' (on when the device is cuda), 'on' (an error without cuda) or "
            "'off' (eager kernel launches, for debugging)."
        ),
    )
    noise: NoiseConfig = field(
        default_factory=NoiseConfig, metadata=_desc("Exploration noise settings.")
    )

    def __post_init__(self) -> None:
        self.actor_hidden = tuple(self.actor_hidden)
        self.critic_hidden = tuple(self.critic_hidden)
        for name in ("actor_hidden", "critic_hidden"):
            widths = getattr(self, name)
            _check(len(widths) >= 1 and all(w >= 1 for w in widths), name, widths, "widths >= 1")
        _check(
            self.critic_action_input in CRITIC_ACTION_INPUTS,
            "critic_action_input",
            self.critic_action_input,
            f"one of {CRITIC_ACTION_INPUTS}",
        )
        _check(
            self.final_layer_init in FINAL_LAYER_INITS,
            "final_layer_init",
            self.final_layer_init,
            f"one of {FINAL_LAYER_INITS}",
        )
        _check(self.actor_delay >= 0, "actor_delay", self.actor_delay, ">= 0")
        _check(
            self.actor_saturation_penalty >= 0.0,
            "actor_saturation_penalty",
            self.actor_saturation_penalty,
            ">= 0",
        )
        _check(
            self.target_policy_noise >= 0.0,
            "target_policy_noise",
            self.target_policy_noise,
            ">= 0",
        )
        _check(self.target_noise_clip >= 0.0, "target_noise_clip", self.target_noise_clip, ">= 0")
        _check(self.policy_delay >= 1, "policy_delay", self.policy_delay, ">= 1")
        _check(self.actor_lr > 0.0, "actor_lr", self.actor_lr, "> 0")
        _check(self.critic_lr > 0.0, "critic_lr", self.critic_lr, "> 0")
        _check(
            self.critic_weight_decay >= 0.0, "critic_weight_decay", self.critic_weight_decay, ">= 0"
        )
        _check(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        _check(0.0 < self.tau <= 1.0, "tau", self.tau, "in (0, 1]")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, ">= 1")
        _check(
            self.buffer_size >= self.batch_size, "buffer_size", self.buffer_size, ">= batch_size"
        )
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, ">= 0")
        _check(self.updates_per_step >= 0.0, "updates_per_step", self.updates_per_step, ">= 0")
        _check(self.observation_clip > 0.0, "observation_clip", self.observation_clip, "> 0")
        _check(self.device in DEVICES, "device", self.device, f"one of {DEVICES}")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {PRECISIONS}")
        _check(
            self.cuda_graph in CUDA_GRAPH_SETTINGS,
            "cuda_graph",
            self.cuda_graph,
            f"one of {CUDA_GRAPH_SETTINGS}",
        )
        _check(
            not (self.cuda_graph == "on" and self.device == "cpu"),
            "cuda_graph",
            self.cuda_graph,
            "'auto' or 'off' with device 'cpu' (a CUDA graph needs the cuda device)",
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DDPGConfig:
        """Build from a nested dict (as parsed from YAML / ROS parameters), strictly.

        Unknown keys, wrong types and out-of-range values raise ValueError naming the key, so a
        typo in a parameter file fails loudly instead of silently training with a default.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"DDPG config must be a mapping, got {type(d).__name__}")
        kwargs = _convert_fields(cls, d, prefix="")
        if "noise" in d:
            if not isinstance(d["noise"], Mapping):
                raise ValueError(f"noise: expected a mapping, got {type(d['noise']).__name__}")
            kwargs["noise"] = NoiseConfig(**_convert_fields(NoiseConfig, d["noise"], "noise."))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists) that ``from_dict`` and YAML round-trip."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out


def _check(ok: bool, name: str, value: Any, requirement: str) -> None:
    if not ok:
        raise ValueError(f"DDPG config: {name}={value!r} is invalid: must be {requirement}")


def _convert_fields(cls: type, d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Type-check and coerce the scalar fields of dataclass ``cls`` found in ``d``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(
            f"DDPG config: unknown key(s) {[prefix + k for k in unknown]}; "
            f"known: {sorted(prefix + n for n in names)}"
        )
    out: dict[str, Any] = {}
    for name, value in d.items():
        hint = hints[name]
        if hint is NoiseConfig:
            continue
        out[name] = _coerce(prefix + name, hint, value)
    return out


def _coerce(name: str, hint: Any, value: Any) -> Any:
    def fail(expected: str) -> typing.NoReturn:
        raise ValueError(
            f"DDPG config: {name} must be {expected}, got {value!r} ({type(value).__name__})"
        )

    if hint is bool:
        if not isinstance(value, bool):
            fail("a bool")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an int")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            fail("a list of ints")
        return tuple(value)
    raise TypeError(f"unsupported config field type {hint!r} for {name}")  # programming error


def load_ddpg_config(yaml_path: str | Path, node_name: str = "controller") -> DDPGConfig:
    """Read ``yaml[node_name]["ros__parameters"]["ddpg"]`` from a ROS 2 parameter file.

    The same file then serves ``ros2 run ... --params-file`` and plain-Python benchmarks.
    """
    from ddpg_controller.yaml_numbers import load_yaml

    path = Path(yaml_path)
    if not path.is_file():
        raise FileNotFoundError(f"DDPG parameter file not found: {path}")
    data = load_yaml(path.read_text())
    try:
        section = data[node_name]["ros__parameters"]["ddpg"]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: expected a '{node_name}: ros__parameters: ddpg:' section ({exc!r} missing)"
        ) from None
    try:
        return DDPGConfig.from_dict(section)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
