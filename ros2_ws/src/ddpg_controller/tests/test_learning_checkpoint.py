"""Checkpoints: full round trip, bit-for-bit resume, replay file, atomic writes, bad files."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ddpg_controller.learning.checkpoint import load_checkpoint, replay_path, save_checkpoint
from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG

OBS, ACT = 3, 2


def make_agent(seed: int, noise: str = "ou", **options: object) -> DDPG:
    cfg = DDPGConfig.from_dict(
        {
            **options,
            "actor_hidden": [16, 16],
            "critic_hidden": [16, 16],
            "batch_size": 8,
            "buffer_size": 100,
            "warmup_steps": 10,
            "device": "cpu",
            "noise": {"type": noise},
        }
    )
    return DDPG(OBS, ACT, [-1.0, 0.0], [1.0, 4.0], cfg, seed=seed)


def run(agent: DDPG, steps: int, data_seed: int) -> None:
    """Deterministic interaction: observations from a fixed stream, actions from the agent."""
    rng = np.random.default_rng(data_seed)
    for t in range(steps):
        if t % 7 == 0:
            agent.reset_noise()
        obs = rng.normal(size=OBS)
        action = agent.act(obs, explore=True)
        agent.observe(obs, action, float(rng.normal()), rng.normal(size=OBS), t % 5 == 4)
        for _ in range(agent.updates_due()):
            agent.train_step()


def all_tensors(agent: DDPG) -> list[torch.Tensor]:
    out = []
    modules = [agent.actor, agent.critic, agent.actor_target, agent.critic_target]
    modules += [agent.critic2, agent.critic2_target] if agent.critic2 is not None else []
    for m in modules:
        out.extend(m.state_dict().values())
    for opt in (agent.actor_optimizer, agent.critic_optimizer):
        for s in opt.state_dict()["state"].values():
            out.extend(v for v in s.values() if isinstance(v, torch.Tensor))
    return out


def assert_same(a: DDPG, b: DDPG) -> None:
    ta, tb = all_tensors(a), all_tensors(b)
    assert len(ta) == len(tb) > 0
    assert all(torch.equal(x, y) for x, y in zip(ta, tb, strict=True))
    assert (a.total_steps, a.num_updates) == (b.total_steps, b.num_updates)
    np.testing.assert_array_equal(a.normalizer.mean, b.normalizer.mean)
    np.testing.assert_array_equal(a.noise.x, b.noise.x)


@pytest.mark.parametrize("options", [{}, {"twin_critics": True}], ids=["ddpg", "twin_critics"])
def test_round_trip_restores_everything(tmp_path: Path, options: dict) -> None:
    agent = make_agent(0, **options)
    run(agent, 40, data_seed=1)
    assert agent.num_updates > 0
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, agent, extra={"episode": 7, "run": "abc"})
    fresh = make_agent(123, **options)
    extra = load_checkpoint(path, fresh)
    assert extra == {"episode": 7, "run": "abc"}
    assert_same(agent, fresh)
    assert len(fresh.replay) == 0  # replay not included by default
    assert not replay_path(path).exists()


def test_resume_is_bit_for_bit(tmp_path: Path) -> None:
    """Train N, save, continue M  ==  load into a fresh agent, continue M."""
    agent = make_agent(0)
    run(agent, 60, data_seed=1)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, agent, include_replay=True)
    torch_state, np_state, py_state = (
        torch.get_rng_state(),
        np.random.get_state(),
        random.getstate(),
    )
    run(agent, 50, data_seed=2)
    expected_globals = (torch.rand(3), np.random.rand(3), random.random())

    torch.manual_seed(999)  # scramble global RNGs: the checkpoint must restore them
    np.random.seed(999)
    random.seed(999)
    fresh = make_agent(42)
    load_checkpoint(path, fresh)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state
    assert len(fresh.replay) == 60  # the replay file came back too
    run(fresh, 50, data_seed=2)
    assert_same(agent, fresh)
    got_globals = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got_globals[0], expected_globals[0])
    assert np.array_equal(got_globals[1], expected_globals[1])
    assert got_globals[2] == expected_globals[2]


def test_replay_file_mismatch_is_detected(tmp_path: Path) -> None:
    agent = make_agent(0)
    run(agent, 20, data_seed=1)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    save_checkpoint(a, agent, include_replay=True)
    save_checkpoint(b, agent, include_replay=True)
    replay_path(b).replace(replay_path(a))  # pair a with b's replay file
    with pytest.raises(ValueError, match="different checkpoint"):
        load_checkpoint(a, make_agent(1))
    replay_path(a).unlink()
    with pytest.raises(FileNotFoundError, match="replay"):
        load_checkpoint(a, make_agent(1))
    load_checkpoint(a, make_agent(1), load_replay=False)


def test_crash_mid_write_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = make_agent(0)
    run(agent, 30, data_seed=1)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, agent, extra={"version": "old"})
    before = path.read_bytes()
    run(agent, 30, data_seed=2)

    real_save = torch.save

    def crashing_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        f.seek(0)  # type: ignore[attr-defined]
        f.truncate(100)  # type: ignore[attr-defined]  # partial bytes on disk, then the crash
        raise OSError("simulated crash mid-write")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, agent, extra={"version": "new"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temp files left
    assert load_checkpoint(path, make_agent(5)) == {"version": "old"}


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt", make_agent(0))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(corrupt, make_agent(0))
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a ddpg_controller checkpoint"):
        load_checkpoint(other, make_agent(0))
    wrong_dims = DDPG(4, ACT, -1.0, 1.0, make_agent(0).config, seed=0)
    good = tmp_path / "good.pt"
    save_checkpoint(good, make_agent(0))
    with pytest.raises(ValueError, match="dims"):
        load_checkpoint(good, wrong_dims)


def test_checkpoint_of_other_networks_names_the_parameters_to_set(tmp_path: Path) -> None:
    """Resuming a run started under another critic layout or widths (e.g. before a default
    changed) says which parameters to set, instead of torch's tensor size mismatch."""
    config = make_agent(0).config
    path = tmp_path / "first.pt"
    save_checkpoint(path, DDPG(OBS, ACT, -1.0, 1.0, replace(config, critic_action_input="first")))
    other = replace(config, critic_action_input="second", critic_hidden=(32, 16))
    wider = DDPG(OBS, ACT, -1.0, 1.0, other)
    with pytest.raises(ValueError) as error:
        load_checkpoint(path, wider)
    assert "ddpg.critic_action_input: 'first' in the checkpoint, 'second' here" in str(error.value)
    assert "ddpg.critic_hidden: [16, 16] in the checkpoint, [32, 16] here" in str(error.value)
