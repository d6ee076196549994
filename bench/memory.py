"""Benchmark 5: resident memory of a 1,000,000-transition replay for the arm task (20 obs, 7 act).

Each case runs in a fresh process: RSS (psutil) after the imports, then after building the agent /
buffer and writing every row (pages of a never-written numpy array are not resident, so the buffer
is filled with random data in chunks). This package: the controller's agent built from
config/arm_reach.yaml's ddpg section (400-300 nets, buffer 1e6) on the CPU. SB3: its ReplayBuffer
of the same size for Box(20,) float32 observations and Box(7,) actions, with
``optimize_memory_usage`` False (default) and True (next observations not stored; needs
``handle_timeout_termination=False``), plus a whole SB3 DDPG model with the default buffer.
"""

from __future__ import annotations

import gc
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

OBS, ACT, SIZE = 20, 7, 1_000_000
ARM_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/arm_reach.yaml"
)
CHUNK = 100_000


def _rss() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def _fill(arrays: list[np.ndarray], rng: np.random.Generator) -> None:
    for a in arrays:
        for i in range(0, a.shape[0], CHUNK):
            part = a[i : i + CHUNK]
            part[...] = rng.standard_normal(part.shape).astype(a.dtype)


def case(name: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    if name.startswith("sb3"):
        import gymnasium as gym
        from stable_baselines3 import DDPG  # noqa: F401 (same imports as a real SB3 user)
        from stable_baselines3.common.buffers import ReplayBuffer
    else:
        from ddpg_controller.learning.config import load_ddpg_config
        from ddpg_controller.learning.ddpg import DDPG as OursDDPG  # noqa: N811
    before = _rss()
    if name == "ours":
        cfg = load_ddpg_config(ARM_CONFIG, node_name="/**/controller")
        cfg.device = "cpu"
        assert cfg.buffer_size == SIZE, cfg.buffer_size
        agent = OursDDPG(OBS, ACT, -1.0, 1.0, cfg, seed=0)
        agent.act(np.zeros(OBS), explore=False)  # first forward pass: torch's lazy allocations
        rb = agent.replay
        built = _rss()
        rows = rb.storage.numpy()  # one packed row per transition, on the CPU here
        _fill([rows], rng)
        rb.size = SIZE
        buffer_bytes = rows.nbytes
    else:
        obs_space = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
        act_space = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)
        optimize = name == "sb3_optimize_memory"
        rb = ReplayBuffer(
            SIZE,
            obs_space,
            act_space,
            device="cpu",
            optimize_memory_usage=optimize,
            handle_timeout_termination=not optimize,
        )
        built = _rss()
        arrays = [rb.observations, rb.actions, rb.rewards, rb.dones]
        if not optimize:
            arrays += [rb.next_observations, rb.timeouts]
        _fill(arrays, rng)
        rb.full = True
        buffer_bytes = sum(a.nbytes for a in arrays)
    after = _rss()
    return {
        "case": name,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "delta_mb": (after - before) / 2**20,
        "built_mb": built / 2**20,
        "fill_delta_mb": (after - built) / 2**20,
        "buffer_arrays_mb": buffer_bytes / 2**20,
    }


CASES = ("ours", "sb3_default", "sb3_optimize_memory")
LABELS = {
    "ours": "this package: DDPG agent (arm_reach.yaml, 400-300, buffer 1e6)",
    "sb3_default": "SB3 ReplayBuffer(1e6), optimize_memory_usage=False",
    "sb3_optimize_memory": "SB3 ReplayBuffer(1e6), optimize_memory_usage=True",
}


def run(quick: bool) -> dict[str, Any]:
    rows = []
    for name in CASES:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            row = pool.submit(case, name).result()
        print(
            f"[memory] {name}: RSS {row['rss_before_mb']:.0f} -> {row['rss_after_mb']:.0f} MB "
            f"(+{row['delta_mb']:.0f} MB, filling +{row['fill_delta_mb']:.0f} MB; "
            f"arrays {row['buffer_arrays_mb']:.0f} MB)",
            flush=True,
        )
        rows.append(row)
    return {"rows": rows, "size": SIZE, "obs_dim": OBS, "action_dim": ACT}
