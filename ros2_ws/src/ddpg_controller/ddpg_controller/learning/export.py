"""Export a trained policy as one self-contained TorchScript file, and load it with torch only.

The archive holds frozen observation normalisation, the actor and the scaling to the action
bounds (the actor outputs [-1, 1]; a robot needs joint units), plus a JSON metadata file so a
deploy node can check observation layout, joint names, bounds and control rate before acting.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpg_controller.learning.atomic import atomic_write
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.policy import PolicyModule, numpy_call

POLICY_FORMAT = "ddpg_controller.policy"
POLICY_FORMAT_VERSION = 1
METADATA_FILE = "ddpg_policy_metadata.json"


class PolicyFileError(ValueError):
    """A policy file is missing, corrupt, or not a ddpg_controller policy."""


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("ddpg_controller")
    except Exception:  # not installed (e.g. run from a source tree)
        return "unknown"


def export_policy(path: str | Path, agent: DDPG, metadata: dict[str, Any]) -> dict[str, Any]:
    """Script the agent's current policy to ``path`` (atomic write); returns the metadata stored.

    ``metadata`` is the caller's description (observation names/layout, joint names, control
    rate...); it must be JSON-serialisable. Format, dimensions, bounds and versions are added.
    """
    actor = copy.deepcopy(agent.actor).to("cpu").eval()
    for p in actor.parameters():
        p.requires_grad_(False)
    module = PolicyModule(actor, agent.frozen_normalizer(), agent.action_low, agent.action_high)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream
        scripted = torch.jit.script(module.eval())
    meta = {
        **metadata,
        "format": POLICY_FORMAT,
        "format_version": POLICY_FORMAT_VERSION,
        "obs_dim": agent.obs_dim,
        "action_dim": agent.action_dim,
        "action_low": agent.action_low.tolist(),
        "action_high": agent.action_high.tolist(),
        "normalize_observations": agent.config.normalize_observations,
        "torch_version": torch.__version__,
        "package_version": _package_version(),
    }
    try:
        meta_json = json.dumps(meta, sort_keys=True)
    except TypeError as exc:
        raise ValueError(f"policy metadata must be JSON-serialisable: {exc}") from exc
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, buffer, _extra_files={METADATA_FILE: meta_json})
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return meta


class ExportedPolicy:
    """A loaded policy: ``policy(obs) -> action`` in env units, ``policy.metadata``."""

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict[str, Any]) -> None:
        self.module = module
        self.metadata = metadata
        self.obs_dim = int(metadata["obs_dim"])
        self.action_dim = int(metadata["action_dim"])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """One observation (obs_dim,) or a batch (n, obs_dim) -> float64 action(s)."""
        return numpy_call(self.module, obs, self.obs_dim)


def load_policy(path: str | Path) -> ExportedPolicy:
    """Load a file written by ``export_policy``; raises PolicyFileError when it cannot."""
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(f"policy file not found: {path}")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise PolicyFileError(f"{path} is not a readable TorchScript policy: {exc}") from exc
    try:
        metadata = json.loads(extra[METADATA_FILE])
    except (json.JSONDecodeError, TypeError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != POLICY_FORMAT:
        raise PolicyFileError(f"{path} is TorchScript but not a ddpg_controller policy")
    if metadata.get("format_version") != POLICY_FORMAT_VERSION:
        raise PolicyFileError(
            f"{path}: policy format version {metadata.get('format_version')} is not supported "
            f"(this package reads {POLICY_FORMAT_VERSION})"
        )
    module.eval()
    return ExportedPolicy(module, metadata)
