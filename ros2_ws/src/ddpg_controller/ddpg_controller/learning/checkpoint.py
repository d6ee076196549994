"""Training checkpoints that resume bit-for-bit.

A checkpoint holds the agent's full state plus the global torch / numpy / python RNG states (the
environment or caller may draw from them). The replay buffer is optional and lives in its own
``<path>.replay.npz`` beside the checkpoint, because it can be gigabytes. Writes are atomic.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpg_controller.learning.atomic import atomic_write
from ddpg_controller.learning.ddpg import DDPG

CHECKPOINT_FORMAT = "ddpg_controller.checkpoint"
CHECKPOINT_VERSION = 2  # 2: replay on the learner's device, sampled by a torch generator


def replay_path(path: str | Path) -> Path:
    """Where the replay buffer of checkpoint ``path`` is stored."""
    path = Path(path)
    return path.with_name(path.name + ".replay.npz")


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    path: str | Path,
    agent: DDPG,
    extra: dict[str, Any] | None = None,
    include_replay: bool = False,
) -> None:
    """Write ``agent`` (and optionally its replay buffer) to ``path`` atomically.

    ``extra`` is caller state (episode counters, run ids...) returned by ``load_checkpoint``. The
    replay file is written first and tagged with an id the checkpoint records, so a crash between
    the two writes never pairs a checkpoint with a replay file from another moment.
    """
    replay_id = None
    if include_replay:
        replay_id = uuid.uuid4().hex
        state = agent.replay.state_dict()

        def write_replay(f: Any) -> None:
            np.savez(f, replay_id=np.array(replay_id), **state)

        atomic_write(replay_path(path), write_replay)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "agent": agent.state_dict(),
        "rng_states": _rng_states(),
        "replay_id": replay_id,
        "extra": dict(extra) if extra else {},
    }
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, agent: DDPG, load_replay: bool = True) -> dict[str, Any]:
    """Restore ``agent`` and the global RNG states from ``path``; returns the saved ``extra``.

    The replay buffer is restored when the checkpoint was saved with it (and ``load_replay``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=agent.device, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a ddpg_controller checkpoint")
    if payload["version"] != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {payload['version']}")
    if load_replay and payload["replay_id"] is not None:
        _load_replay(replay_path(path), agent, payload["replay_id"])
    agent.load_state_dict(payload["agent"])
    _set_rng_states(payload["rng_states"])
    return payload["extra"]


def _load_replay(path: Path, agent: DDPG, replay_id: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint references replay buffer {path}, which is missing")
    with np.load(path, allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    if str(state.pop("replay_id")) != replay_id:
        raise ValueError(f"{path} belongs to a different checkpoint (replay id mismatch)")
    agent.replay.load_state_dict(state)
