"""Exported TorchScript policy: parity with the in-memory policy, metadata, bad files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.export import (
    METADATA_FILE,
    PolicyFileError,
    export_policy,
    load_policy,
)

OBS, ACT = 5, 3
LOW, HIGH = np.array([-2.0, 0.0, -0.5]), np.array([2.0, 10.0, 1.5])
META = {
    "observation_names": [f"joint{i}/pos" for i in range(OBS)],
    "action_names": ["joint0", "joint1", "joint2"],
    "control_rate_hz": 100.0,
}
# One observation takes other BLAS kernels than a batch: float32 rounding, 1e-6 of the actor's
# [-1, 1] output scaled to the widest action range (measured: 1.2e-6 at action 9.0).
SINGLE_OBS_ATOL = 1e-6 * float((HIGH - LOW).max()) / 2


@pytest.fixture
def agent() -> DDPG:
    cfg = DDPGConfig.from_dict({"actor_hidden": [32, 16], "critic_hidden": [8, 8], "device": "cpu"})
    agent = DDPG(OBS, ACT, LOW, HIGH, cfg, seed=0)
    rng = np.random.default_rng(0)
    agent.normalizer.update(rng.normal([1, -2, 30, 0, 5], [0.5, 2, 10, 1, 0.1], size=(500, OBS)))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a non-trivial actor (the fresh one outputs ~0)
        for p in agent.actor.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return agent


def reference_actions(agent: DDPG, obs: np.ndarray) -> np.ndarray:
    """Normalise with the agent's statistics, run its actor, scale to the bounds (float64)."""
    norm = agent.normalizer
    x = np.clip((obs - norm.mean) / np.sqrt(norm.var + 1e-8), -10, 10)
    with torch.no_grad():
        a = agent.actor(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    return LOW + (a + 1) / 2 * (HIGH - LOW)


def test_exported_policy_matches_in_memory_actor(agent: DDPG, tmp_path: Path) -> None:
    path = tmp_path / "policy.pt"
    export_policy(path, agent, META)
    policy = load_policy(path)
    obs = np.random.default_rng(1).normal([1, -2, 30, 0, 5], [1, 4, 20, 2, 0.3], size=(1000, OBS))
    expected = reference_actions(agent, obs)
    assert np.ptp(expected, axis=0).min() > 0.1  # the comparison is not trivially constant
    np.testing.assert_allclose(policy(obs), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(agent.acting_policy()(obs), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(policy(obs[3]), expected[3], atol=SINGLE_OBS_ATOL, rtol=0)
    for i in range(5):
        np.testing.assert_allclose(
            agent.act(obs[i], explore=False), expected[i], atol=SINGLE_OBS_ATOL
        )
    assert np.all(policy(1e4 * obs) >= LOW - 1e-6) and np.all(policy(1e4 * obs) <= HIGH + 1e-6)
    with pytest.raises(ValueError, match="shape"):
        policy(np.zeros(OBS + 1))


def test_metadata_and_snapshot_semantics(agent: DDPG, tmp_path: Path) -> None:
    path = tmp_path / "policy.pt"
    export_policy(path, agent, META)
    obs = np.ones(OBS)
    before = load_policy(path)(obs)
    with torch.no_grad():
        agent.actor.out.bias.add_(1.0)  # later training does not change the exported file
    md = load_policy(path).metadata
    np.testing.assert_array_equal(load_policy(path)(obs), before)
    assert md["observation_names"] == META["observation_names"]
    assert md["action_names"] == META["action_names"] and md["control_rate_hz"] == 100.0
    assert md["format"] == "ddpg_controller.policy" and md["format_version"] == 1
    assert md["action_low"] == LOW.tolist() and md["action_high"] == HIGH.tolist()
    assert md["obs_dim"] == OBS and md["action_dim"] == ACT
    assert md["torch_version"] == torch.__version__ and "package_version" in md
    with pytest.raises(ValueError, match="JSON"):
        export_policy(tmp_path / "x.pt", agent, {"bad": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.pt"]


def test_loads_with_torch_alone(agent: DDPG, tmp_path: Path) -> None:
    """A deploy target needs only torch: plain torch.jit.load gives the module and metadata."""
    path = tmp_path / "policy.pt"
    export_policy(path, agent, META)
    code = (
        "import json, sys, torch\n"
        f"extra = {{{METADATA_FILE!r}: ''}}\n"
        "m = torch.jit.load(sys.argv[1], _extra_files=extra)\n"
        f"print(json.dumps([json.loads(extra[{METADATA_FILE!r}])['obs_dim'], "
        f"m(torch.zeros(1, {OBS})).tolist()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    obs_dim, action = json.loads(out.stdout.strip().splitlines()[-1])
    assert obs_dim == OBS
    np.testing.assert_allclose(action[0], load_policy(path)(np.zeros(OBS)), atol=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="not found"):
        load_policy(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a policy" * 20)
    with pytest.raises(PolicyFileError, match="not a readable TorchScript policy"):
        load_policy(corrupt)
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(plain))
    with pytest.raises(PolicyFileError, match="not a ddpg_controller policy"):
        load_policy(plain)
    assert issubclass(PolicyFileError, ValueError)
