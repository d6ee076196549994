"""Benchmark 7 (runs only where CUDA is available): the learner on a GPU.

(a) Updates/s at batch 64 / 256 / 1024 / 4096, 400-300 networks: ``train_step`` as one CUDA
graph replay, the same step eager, and SB3 DDPG on the same GPU (``update_step.gpu_rows``).
(b) The 500 Hz control loop of benchmark 6 beside a CUDA learner (400-300, batch 256,
``updates_per_step`` 3, policy copy refreshed every 10 updates), learner on vs off.
(c) Pendulum-v1 with config/gym_pendulum.yaml on cuda and on the CPU, same seeds: final
deterministic return (10 episodes) and wall time. The CPU runs go at the same time as the CUDA
ones, each in its own process with one torch thread: a GPU machine has cores to spare, and each
run's wall time is its own.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np

GPU_LOOP_DDPG: dict[str, Any] = {
    "actor_hidden": [400, 300],
    "critic_hidden": [400, 300],
    "batch_size": 256,
    "buffer_size": 200_000,
    "warmup_steps": 1000,
    "updates_per_step": 3.0,
    "device": "cuda",
}


def pendulum(device: str, seed: int, steps: int) -> dict[str, Any]:
    import gymnasium as gym
    import torch

    from bench.learning import PACKAGE_CONFIG
    from ddpg_controller.learning.config import load_ddpg_config
    from ddpg_controller.learning.training import evaluate, train

    torch.set_num_threads(1)
    config = load_ddpg_config(PACKAGE_CONFIG)
    config.device = device
    start = time.perf_counter()
    result = train(gym.make("Pendulum-v1"), config, steps, seed)
    wall = time.perf_counter() - start
    returns = evaluate(result.agent.acting_policy(), gym.make("Pendulum-v1"), 10, 0)
    out = {"device": device, "seed": seed, "return": float(np.mean(returns)), "wall_s": wall}
    print(f"[gpu] Pendulum-v1 {device} seed {seed}: {out['return']:.1f}, {wall:.0f} s", flush=True)
    return out


def run(quick: bool, seeds: list[int]) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        print("[gpu] skipped: torch.cuda.is_available() is False", flush=True)
        return {"skipped": "no CUDA device"}
    from bench import control_loop, update_step

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    out["updates"] = update_step.gpu_rows(quick)
    out["loop"] = control_loop.compare(
        GPU_LOOP_DDPG,
        500.0,
        3.0 if quick else 10.0,
        "400-300 batch 256 on cuda",
        obs_dim=20,
        action_dim=7,
        sync_every=10,
    )
    steps = 2_000 if quick else 20_000
    with ProcessPoolExecutor(len(seeds), mp_context=get_context("spawn")) as pool:
        cpu_runs = [pool.submit(pendulum, "cpu", s, steps) for s in seeds]
        cuda_runs = [pendulum("cuda", s, steps) for s in seeds]
        out["pendulum"] = cuda_runs + [run.result() for run in cpu_runs]
    torch.set_num_threads(threads)
    return out
