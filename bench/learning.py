"""Benchmarks 1 and 2: learning with the same budget and seeds, and the wall time of those runs.

This package's DDPG (``ddpg_controller.learning.training.train``) and SB3's DDPG train on the same
gymnasium env with the same hyperparameters (the table ``hyperparameter_rows`` prints), the same
seeds and the same deterministic evaluation (``training.evaluate``: 10 episodes, episode i reset
with seed 1,000,000 + seed + i). Learning curves evaluate every ``eval_every`` steps; evaluation
time is excluded from the wall time. Two runs go at once (one per core), one torch thread each, and
the two libraries' runs of one (env, seed) are started together so they share the same conditions.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE_CONFIG = (
    Path(__file__).resolve().parents[1] / "ros2_ws/src/ddpg_controller/config/gym_pendulum.yaml"
)
EVAL_EPISODES = 10
EVAL_SEED_OFFSET = 1_000_000  # the same offset training.train uses


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    steps: int  # full budget
    quick_steps: int
    eval_every: int
    overrides: dict[str, Any]  # on top of config/gym_pendulum.yaml's ddpg section
    budget_note: str


# Pendulum-v1: the package's own config (config/gym_pendulum.yaml) at the zoo's 20k-step budget.
# Bullet envs: the zoo's DDPG choices where they exist (400-300 nets, Gaussian 0.1, lr 1e-3),
# budgets cut to fit this 2-core machine (see budget_note).
ENVS: tuple[EnvSpec, ...] = (
    EnvSpec("Pendulum-v1", 20_000, 1_200, 2_000, {}, "20k steps: the SB3 zoo budget"),
    EnvSpec(
        "InvertedPendulumBulletEnv-v0",
        10_000,
        1_200,
        2_000,
        {"actor_hidden": [400, 300], "critic_hidden": [400, 300], "gamma": 0.99},
        "10k steps (no zoo DDPG entry; the task is learnt within a few thousand steps)",
    ),
    EnvSpec(
        "ReacherBulletEnv-v0",
        12_000,
        1_200,
        2_000,
        {"actor_hidden": [400, 300], "critic_hidden": [400, 300], "gamma": 0.98},
        "12k steps, 4% of the zoo's 300k (300k would take ~1 h per run here); "
        "compare with the zoo's 15.6 only as a far-off ceiling",
    ),
)


def package_config(spec: EnvSpec) -> dict[str, Any]:
    """The DDPG config dict used for ``spec`` (both libraries are derived from it)."""
    from ddpg_controller.learning.config import load_ddpg_config

    base = load_ddpg_config(PACKAGE_CONFIG).to_dict()
    cfg = {**base, **spec.overrides, "device": "cpu"}
    return cfg


def sb3_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """SB3 DDPG arguments matching ``cfg``; refuses settings SB3 cannot express."""
    noise = cfg["noise"]
    assert cfg["actor_lr"] == cfg["critic_lr"], "SB3 has one learning rate for both networks"
    assert cfg["actor_hidden"] == cfg["critic_hidden"], "SB3 net_arch list is shared"
    assert cfg["critic_weight_decay"] == 0.0, "SB3 weight decay would hit both optimisers"
    assert not cfg["normalize_observations"], "SB3 DDPG has no observation normaliser"
    assert noise["type"] == "gaussian"
    assert cfg["updates_per_step"] == 1.0
    return {
        "learning_rate": cfg["actor_lr"],
        "buffer_size": cfg["buffer_size"],
        "learning_starts": cfg["warmup_steps"],
        "batch_size": cfg["batch_size"],
        "tau": cfg["tau"],
        "gamma": cfg["gamma"],
        "train_freq": 1,
        "gradient_steps": 1,
        "policy_kwargs": {"net_arch": list(cfg["actor_hidden"])},
        "_noise_sigma": noise["sigma"],
    }


def hyperparameter_rows(cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, this package, SB3) rows for the report."""
    sb3 = sb3_kwargs(cfg)
    n = cfg["noise"]
    nets = "-".join(map(str, cfg["actor_hidden"]))
    return [
        (
            "actor / critic hidden",
            f"{nets} / {nets}",
            f"net_arch={sb3['policy_kwargs']['net_arch']}",
        ),
        (
            "lr actor / critic",
            f"{cfg['actor_lr']:g} / {cfg['critic_lr']:g}",
            f"{sb3['learning_rate']:g}",
        ),
        ("critic weight decay", f"{cfg['critic_weight_decay']:g}", "0 (none)"),
        ("batch", str(cfg["batch_size"]), str(sb3["batch_size"])),
        ("tau", f"{cfg['tau']:g}", f"{sb3['tau']:g}"),
        ("gamma", f"{cfg['gamma']:g}", f"{sb3['gamma']:g}"),
        (
            "noise",
            f"gaussian σ={n['sigma']:g} in [-1,1] units",
            f"NormalActionNoise σ={sb3['_noise_sigma']:g} (scaled space)",
        ),
        (
            "warm-up (uniform random actions)",
            str(cfg["warmup_steps"]),
            f"learning_starts={sb3['learning_starts']}",
        ),
        ("buffer", str(cfg["buffer_size"]), str(sb3["buffer_size"])),
        ("updates per env step", f"{cfg['updates_per_step']:g}", "train_freq=1, gradient_steps=1"),
        ("obs normalisation", str(cfg["normalize_observations"]), "none"),
        ("device / torch threads", "cpu / 1", "cpu / 1"),
    ]


def _make_env(env_id: str):
    import gymnasium as gym

    if "Bullet" in env_id:
        import pybullet_envs_gymnasium  # noqa: F401 (registers the Bullet envs)
    return gym.make(env_id)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One training run in a fresh process: {'impl': 'ours'|'sb3', 'env', 'seed', 'steps', ...}."""
    import torch

    torch.set_num_threads(1)
    from ddpg_controller.learning.training import evaluate

    env_id, seed, steps, every = job["env"], job["seed"], job["steps"], job["eval_every"]
    cfg_dict = job["config"]
    env, eval_env = _make_env(env_id), _make_env(env_id)
    eval_seed = seed + EVAL_SEED_OFFSET
    curve: list[tuple[int, float]] = []
    eval_time = 0.0

    def do_eval(step: int, policy_fn) -> list[float]:
        nonlocal eval_time
        t = time.perf_counter()
        returns = evaluate(policy_fn, eval_env, EVAL_EPISODES, eval_seed)
        eval_time += time.perf_counter() - t
        curve.append((step, float(np.mean(returns))))
        return returns

    if job["impl"] == "ours":
        from ddpg_controller.learning.config import DDPGConfig
        from ddpg_controller.learning.training import train

        config = DDPGConfig.from_dict(cfg_dict)

        def callback(step, agent, info):
            if step % every == 0 and step < steps:
                do_eval(step, agent.acting_policy())

        start = time.perf_counter()
        result = train(env, config, steps, seed, callback=callback)
        total = time.perf_counter() - start
        eval_in_train = eval_time
        final = do_eval(result.total_steps, result.agent.acting_policy())
        updates = result.num_updates
        train_returns = result.episode_returns
    else:
        from stable_baselines3 import DDPG
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.noise import NormalActionNoise

        kw = sb3_kwargs(cfg_dict)
        sigma = kw.pop("_noise_sigma")
        dim = int(np.prod(env.action_space.shape))
        model = DDPG(
            "MlpPolicy",
            env,
            action_noise=NormalActionNoise(np.zeros(dim), sigma * np.ones(dim)),
            seed=seed,
            device="cpu",
            verbose=0,
            **kw,
        )

        def policy(obs):
            return model.predict(obs, deterministic=True)[0]

        class Curve(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps % every == 0 and self.num_timesteps < steps:
                    do_eval(self.num_timesteps, policy)
                return True

        start = time.perf_counter()
        model.learn(total_timesteps=steps, callback=Curve())
        total = time.perf_counter() - start
        eval_in_train = eval_time
        final = do_eval(steps, policy)
        updates = int(model._n_updates)
        train_returns = []
    env.close()
    eval_env.close()
    return {
        "impl": job["impl"],
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "updates": updates,
        "final_returns": final,
        "final_mean": float(np.mean(final)),
        "curve": curve,
        "train_wall_s": total - eval_in_train,
        "eval_wall_s": eval_time,
        "n_train_episodes": len(train_returns),
    }


def run(quick: bool, seeds: list[int], env_filter: str | None, workers: int = 2) -> dict[str, Any]:
    specs = [s for s in ENVS if env_filter is None or env_filter.lower() in s.env_id.lower()]
    jobs = []
    configs = {}
    for spec in specs:
        cfg = package_config(spec)
        configs[spec.env_id] = cfg
        steps = spec.quick_steps if quick else spec.steps
        every = max(steps // 3, 1) if quick else spec.eval_every
        for seed in seeds:
            for impl in ("ours", "sb3"):
                jobs.append(
                    {
                        "impl": impl,
                        "env": spec.env_id,
                        "seed": seed,
                        "steps": steps,
                        "eval_every": every,
                        "config": cfg,
                    }
                )
    print(f"[learning] {len(jobs)} runs, {workers} at a time, seeds {seeds}", flush=True)
    for env_id, cfg in configs.items():
        print(f"[learning] hyperparameters for {env_id} (setting: ddpg_controller | SB3):")
        for name, ours, sb3 in hyperparameter_rows(cfg):
            print(f"    {name}: {ours} | {sb3}", flush=True)
    start = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for r in pool.map(run_one, jobs):
            print(
                f"[learning] {r['env']} {r['impl']} seed {r['seed']}: final "
                f"{r['final_mean']:.1f}, train {r['train_wall_s']:.0f} s, "
                f"eval {r['eval_wall_s']:.0f} s",
                flush=True,
            )
            runs.append(r)
    return {
        "runs": runs,
        "configs": configs,
        "hyperparameters": {e: hyperparameter_rows(c) for e, c in configs.items()},
        "budgets": {
            s.env_id: {
                "steps": s.quick_steps if quick else s.steps,
                "note": s.budget_note,
                "eval_every": max((s.quick_steps if quick else s.steps) // 3, 1)
                if quick
                else s.eval_every,
            }
            for s in specs
        },
        "seeds": seeds,
        "eval_episodes": EVAL_EPISODES,
        "workers": workers,
        "quick": quick,
        "elapsed_s": time.perf_counter() - start,
    }
