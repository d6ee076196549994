"""Benchmark 3: training updates per second on a prefilled replay (sampling included).

Both libraries hold the same 100,000 random transitions (arm_reach sizes: 20-D observations,
7-D actions; 400-300 networks). This package: ``DDPG.train_step()`` (device-side sampling into
the static batch + update; one CUDA graph replay on cuda). SB3: ``DDPG.train(gradient_steps=N,
batch_size=B)`` (which samples its ReplayBuffer N times). Timed after 20 warm-up updates; the
median of ``repeats`` timings of N updates is kept. Also a breakdown of this package's step:
sampling alone, and ``update`` alone on one fixed batch.

Two more comparisons in the same run: the CPU regression check (``train_step`` of the package
before the device-resident replay, ``BASELINE_REF``, loaded from git, against the current one,
interleaved) and, when CUDA is available, the GPU table (batch 64 to 4096: CUDA graph, eager, SB3).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

OBS_DIM, ACT_DIM, FILL = 20, 7, 100_000
# The last commit before replay moved to the learner's device (issue 10): the CPU baseline.
BASELINE_REF = "75f55ab"
GPU_BATCHES = (64, 256, 1024, 4096)


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "next_obs": rng.standard_normal((FILL, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (FILL, ACT_DIM)).astype(np.float32),
        "rewards": rng.standard_normal((FILL, 1)).astype(np.float32),
        "terminated": (rng.random((FILL, 1)) < 0.01).astype(np.float32),
    }


def _config(batch: int, device: str) -> dict[str, Any]:
    return {
        "actor_hidden": [400, 300],
        "critic_hidden": [400, 300],
        "actor_lr": 1e-3,
        "critic_lr": 1e-3,
        "critic_weight_decay": 0.0,
        "batch_size": batch,
        "buffer_size": 200_000,
        "warmup_steps": 0,
        "normalize_observations": False,
        "device": device,
        "tau": 0.005,
        "gamma": 0.99,
    }


def _timed(fn, n: int, repeats: int, sync) -> float:
    """Median seconds per call over ``repeats`` runs of ``n`` calls."""
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn(n)
        sync()
        times.append((time.perf_counter() - t) / n)
    return float(np.median(times))


def _prefilled_agent(
    batch: int,
    device: str = "cpu",
    precision: str = "float32",
    cuda_graph: str = "auto",
    package: str = "ddpg_controller",
):
    """An agent whose replay holds the same FILL transitions SB3's gets, ready to update.

    ``package`` names the import root: ``ddpg_controller``, or the baseline's copy.
    """
    config_module = importlib.import_module(f"{package}.learning.config")
    ddpg_module = importlib.import_module(f"{package}.learning.ddpg")
    d = _data()
    overrides: dict[str, Any] = {"precision": precision}
    if package == "ddpg_controller":
        # Every timed step a full update (critic and actor), as SB3's: no critic-only start.
        overrides.update(cuda_graph=cuda_graph, actor_delay=0)
    config = config_module.DDPGConfig.from_dict({**_config(batch, device), **overrides})
    agent = ddpg_module.DDPG(OBS_DIM, ACT_DIM, -1.0, 1.0, config, seed=0)
    rb = agent.replay
    if package == "ddpg_controller":
        state = rb.state_dict()
        rb.load_state_dict({**state, **d, "pos": FILL, "total_added": FILL})
    else:  # the baseline's numpy replay
        rb.obs[:FILL], rb.next_obs[:FILL], rb.actions[:FILL] = d["obs"], d["next_obs"], d["actions"]
        rb.rewards[:FILL], rb.terminated[:FILL] = d["rewards"], d["terminated"]
        rb.size = rb.pos = rb.total_added = FILL
    agent.total_steps = FILL
    return agent


def measure_ours(batch: int, device: str, n: int, repeats: int, cuda_graph: str = "auto"):
    agent = _prefilled_agent(batch, device, cuda_graph=cuda_graph)
    sync = _sync(device)

    def steps(k: int) -> None:
        for _ in range(k):
            agent.train_step()

    def sampling(k: int) -> None:
        for _ in range(k):
            agent.replay.sample(batch)

    agent.train_step()
    fixed = agent.batch

    def updates(k: int) -> None:
        for _ in range(k):
            agent.update(fixed)

    steps(20)
    return {
        "train_step_s": _timed(steps, n, repeats, sync),
        "sample_and_batch_s": _timed(sampling, n, repeats, sync),
        "update_only_s": _timed(updates, n, repeats, sync),
    }


def measure_sb3(batch: int, device: str, n: int, repeats: int) -> dict[str, float]:
    import gymnasium as gym
    from stable_baselines3 import DDPG
    from stable_baselines3.common.logger import Logger

    d = _data()

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(OBS_DIM, np.float32), {}

        def step(self, action):
            return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {}

    cfg = _config(batch, device)
    model = DDPG(
        "MlpPolicy",
        Dummy(),
        learning_rate=cfg["actor_lr"],
        buffer_size=cfg["buffer_size"],
        learning_starts=0,
        batch_size=batch,
        tau=cfg["tau"],
        gamma=cfg["gamma"],
        policy_kwargs={"net_arch": [400, 300]},
        device=device,
        seed=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))
    rb = model.replay_buffer
    rb.observations[:FILL, 0] = d["obs"]
    rb.next_observations[:FILL, 0] = d["next_obs"]
    rb.actions[:FILL, 0] = d["actions"]
    rb.rewards[:FILL, 0] = d["rewards"][:, 0]
    rb.dones[:FILL, 0] = d["terminated"][:, 0]
    rb.timeouts[:FILL, 0] = 0.0
    rb.pos, rb.full = FILL, False
    sync = _sync(device)

    def steps(k: int) -> None:
        model.train(gradient_steps=k, batch_size=batch)

    def sampling(k: int) -> None:
        for _ in range(k):
            rb.sample(batch, env=None)

    steps(20)
    return {
        "train_step_s": _timed(steps, n, repeats, sync),
        "sample_and_batch_s": _timed(sampling, n, repeats, sync),
    }


def variants(quick: bool) -> list[dict[str, Any]]:
    """The package's opt-in speed-ups against its default, timed in interleaved rounds."""
    import torch

    torch.set_num_threads(1)
    # Fused Adam and the one-call foreach soft update were candidates here and are in the
    # package's default now (ddpg.py); bfloat16 changes numerics, so it is opt-in.
    setups = {
        "current (package as is)": "float32",
        "ddpg.precision: bfloat16 (autocast; changes numerics)": "bfloat16",
    }
    out = []
    rounds, n = (2, 20) if quick else (5, 60)
    for batch in (64, 256):
        agents = {
            name: _prefilled_agent(batch, precision=precision) for name, precision in setups.items()
        }
        times = interleaved_step_times(agents, rounds, n)
        base = float(np.median(times["current (package as is)"]))
        for name, ts in times.items():
            ms = float(np.median(ts))
            out.append({"batch": batch, "variant": name, "ms": ms * 1e3, "speedup": base / ms})
            print(
                f"[update-step] variant batch={batch} {name}: {ms * 1e3:.2f} ms (x{base / ms:.2f})",
                flush=True,
            )
    return out


def profile_table() -> str:
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    agent = _prefilled_agent(256)
    for _ in range(5):
        agent.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(50):
            agent.train_step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm"))
    table = events.table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40)
    share = 100 * matmul / total
    return f"{table}\nmatrix multiplies (aten::addmm + aten::mm): {share:.0f}% of self CPU"


def baseline_package(ref: str = BASELINE_REF) -> str:
    """The learning core at ``ref``, importable as ``ddpg_baseline`` (from ``git archive``)."""
    repo = Path(__file__).resolve().parents[1]
    learning = "ros2_ws/src/ddpg_controller/ddpg_controller/learning"
    root = Path(tempfile.mkdtemp(prefix="ddpg-baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, learning], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    package = root / "ddpg_baseline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (root / learning).rename(package / "learning")
    for source in (package / "learning").glob("*.py"):
        text = source.read_text().replace("ddpg_controller.learning", "ddpg_baseline.learning")
        source.write_text(text)
    sys.path.insert(0, str(root))
    return "ddpg_baseline"


def interleaved_step_times(agents: dict[str, Any], rounds: int, n: int) -> dict[str, list[float]]:
    """Seconds per ``train_step`` of each agent: ``rounds`` rounds, each timing ``n`` steps of
    every agent in turn after 5 warm-up steps, so all of them see the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(rounds):
        for name, agent in agents.items():
            for _ in range(5):
                agent.train_step()
            t = time.perf_counter()
            for _ in range(n):
                agent.train_step()
            times[name].append((time.perf_counter() - t) / n)
    return times


def regression(quick: bool, ref: str = BASELINE_REF) -> list[dict[str, Any]]:
    """CPU ``train_step`` updates/s, the package at ``ref`` against the current one, 1 torch
    thread, rounds interleaved so both see the same machine load."""
    import torch

    torch.set_num_threads(1)
    baseline = baseline_package(ref)
    rounds, n = (2, 20) if quick else (7, 100)
    out = []
    for batch in (64, 256):
        agents = {
            "baseline": _prefilled_agent(batch, package=baseline),
            "current": _prefilled_agent(batch),
        }
        times = interleaved_step_times(agents, rounds, n)
        old, new = (float(np.median(times[name])) for name in ("baseline", "current"))
        row = {"batch": batch, "ref": ref, "baseline_per_s": 1 / old, "current_per_s": 1 / new}
        row["ratio"] = old / new
        out.append(row)
        print(
            f"[update-step] CPU regression batch={batch}: {ref} {1 / old:.0f}/s, current "
            f"{1 / new:.0f}/s (x{old / new:.3f})",
            flush=True,
        )
    return out


def gpu_rows(quick: bool) -> list[dict[str, Any]]:
    """CUDA: updates/s at batch 64 to 4096, CUDA graph vs eager vs SB3 on the same GPU."""
    import torch

    rows = []
    for batch in GPU_BATCHES:
        n = 50 if quick else 500
        graph = measure_ours(batch, "cuda", n, 3, cuda_graph="on")
        eager = measure_ours(batch, "cuda", n, 3, cuda_graph="off")
        sb3 = measure_sb3(batch, "cuda", n, 3)
        row = {
            "batch": batch,
            "graph_per_s": 1 / graph["train_step_s"],
            "eager_per_s": 1 / eager["train_step_s"],
            "sb3_per_s": 1 / sb3["train_step_s"],
            "gpu": torch.cuda.get_device_name(),
        }
        row["graph_vs_sb3"] = row["graph_per_s"] / row["sb3_per_s"]
        row["graph_vs_eager"] = row["graph_per_s"] / row["eager_per_s"]
        rows.append(row)
        print(
            f"[update-step] cuda batch={batch}: graph {row['graph_per_s']:.0f}/s, eager "
            f"{row['eager_per_s']:.0f}/s, SB3 {row['sb3_per_s']:.0f}/s "
            f"(graph x{row['graph_vs_sb3']:.2f} SB3)",
            flush=True,
        )
    return rows


def _sync(device: str):
    import torch

    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def run(quick: bool) -> dict[str, Any]:
    import torch

    repeats = 2 if quick else 5
    devices = [("cpu", 1), ("cpu", 2)]
    rows = []
    for device, threads in devices:
        torch.set_num_threads(threads)
        for batch in (64, 256):
            n = 20 if quick else (400 if batch == 64 else 200)
            # Alternate the libraries round by round so both see the same machine load.
            rounds = [
                (measure_ours(batch, device, n, 1), measure_sb3(batch, device, n, 1))
                for _ in range(repeats)
            ]
            ours = {k: float(np.median([o[k] for o, _ in rounds])) for k in rounds[0][0]}
            sb3 = {k: float(np.median([b[k] for _, b in rounds])) for k in rounds[0][1]}
            row = {
                "device": device,
                "threads": threads,
                "batch": batch,
                "n": n,
                "ours": ours,
                "sb3": sb3,
                "ours_updates_per_s": 1.0 / ours["train_step_s"],
                "sb3_updates_per_s": 1.0 / sb3["train_step_s"],
            }
            row["ratio"] = row["ours_updates_per_s"] / row["sb3_updates_per_s"]
            print(
                f"[update-step] {device} threads={threads} batch={batch}: ours "
                f"{row['ours_updates_per_s']:.0f}/s "
                f"(sample {ours['sample_and_batch_s'] * 1e3:.2f} ms,"
                f" update {ours['update_only_s'] * 1e3:.2f} ms), SB3 "
                f"{row['sb3_updates_per_s']:.0f}/s"
                f" (sample {sb3['sample_and_batch_s'] * 1e3:.2f} ms) -> x{row['ratio']:.2f}",
                flush=True,
            )
            rows.append(row)
    found = variants(quick)
    prof = profile_table()
    cpu_regression = regression(quick)
    gpu = gpu_rows(quick) if torch.cuda.is_available() else []
    torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))
    return {
        "rows": rows,
        "regression": cpu_regression,
        "gpu": gpu,
        "variants": found,
        "profile": prof,
        "obs_dim": OBS_DIM,
        "action_dim": ACT_DIM,
        "prefill": FILL,
        "nets": "400-300",
        "repeats": repeats,
    }
