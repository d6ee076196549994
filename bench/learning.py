"""Benchmarks 1 and 2: learning with the same budget and seeds, and the wall time of those runs.

This package's DDPG (``ddpg_controller.learning.training.train``), in the network layouts and
actor guards of ``VARIANTS``, and SB3's DDPG train on the same gymnasium env with the same
hyperparameters (the table ``hyperparameter_rows`` prints), the same seeds and the same
deterministic evaluation
(``training.evaluate``: 10 episodes, episode i reset with seed 1,000,000 + seed + i), of the
untrained policy, every ``eval_every`` steps and at the end. A probe records how often the actor
is saturated (|mu(s)| > 0.99) on replay states, the way a run that never learns gets stuck.
Evaluation time is excluded from the wall time. Two runs go at once (one per core), one torch
thread each, and the variants of one (env, seed) are queued together so they share conditions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
PROBE_EVERY = 500  # env steps between probes of the actor's saturation
PROBE_STATES = 512


@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    steps: int  # full budget
    quick_steps: int
    eval_every: int
    seeds: int  # how many seeds (0..n-1) a full run uses unless --seeds says otherwise
    overrides: dict[str, Any]  # on top of config/gym_pendulum.yaml's ddpg section
    budget_note: str


BULLET_NETS = {"actor_hidden": [400, 300], "critic_hidden": [400, 300]}

# Pendulum-v1: the package's own config (config/gym_pendulum.yaml) at the zoo's 20k-step budget.
# Bullet envs: the zoo's DDPG choices where they exist (400-300 nets, Gaussian 0.1, lr 1e-3),
# budgets cut to fit a 2-core machine (see budget_note).
ENVS: tuple[EnvSpec, ...] = (
    EnvSpec("Pendulum-v1", 20_000, 1_200, 2_000, 5, {}, "20k steps: the SB3 zoo budget"),
    EnvSpec(
        "InvertedPendulumBulletEnv-v0",
        10_000,
        1_200,
        2_000,
        5,
        {**BULLET_NETS, "gamma": 0.99},
        "10k steps (no zoo DDPG entry; the task is learnt within a few thousand steps)",
    ),
    EnvSpec(
        "InvertedDoublePendulumBulletEnv-v0",
        10_000,
        1_200,
        2_000,
        3,
        {**BULLET_NETS, "gamma": 0.99},
        "10k steps (no zoo DDPG entry; a short budget: the balance is learnt, not perfected)",
    ),
    EnvSpec(
        "ReacherBulletEnv-v0",
        12_000,
        1_200,
        2_000,
        3,
        {**BULLET_NETS, "gamma": 0.98},
        "12k steps, 4% of the zoo's 300k (300k would take ~1 h per run here); "
        "compare with the zoo's 15.6 only as a far-off ceiling",
    ),
    EnvSpec(
        "HalfCheetahBulletEnv-v0",
        30_000,
        1_200,
        10_000,
        2,
        {**BULLET_NETS, "gamma": 0.99},
        "30k steps, 3% of the zoo's 1M (zoo 2078 after 1M): the start of the curve only",
    ),
)

# Issue 22's validation set (bench/results/2026-12-07-preregistration.md): MuJoCo v5 tasks used
# for no choice, run once with the default chosen on ENVS. SB3's Bullet settings for every task;
# not run unless named with --tasks.
VALIDATION_SETTINGS = {**BULLET_NETS, "gamma": 0.99, "batch_size": 256, "warmup_steps": 10_000}
VALIDATION: tuple[EnvSpec, ...] = tuple(
    EnvSpec(env_id, steps, 12_000, 10_000, 5, VALIDATION_SETTINGS, note)
    for env_id, steps, note in (
        ("HalfCheetah-v5", 100_000, "100k steps: the issue's least for locomotion"),
        ("Walker2d-v5", 100_000, "100k steps: the issue's least for locomotion"),
        ("Swimmer-v5", 100_000, "100k steps: the issue's least for locomotion"),
        ("InvertedDoublePendulum-v5", 50_000, "50k steps (balance, not locomotion)"),
    )
)

# This package's variants beside SB3: where the action joins the critic, the output layers'
# initialisation (``DDPGConfig.critic_action_input`` / ``final_layer_init``), and the two guards
# against the actor's early rush to a bound: "+delay" (``actor_delay``: critic-only updates
# first) and "+penalty" (``actor_saturation_penalty``). Each names every field so that a variant
# means the same whatever the package's defaults are.
ACTOR_DELAY = 1000
SATURATION_PENALTY = 1.0
_LAYOUTS = {
    "first": {"critic_action_input": "first", "final_layer_init": "uniform_3e-3"},
    "second": {"critic_action_input": "second", "final_layer_init": "uniform_3e-3"},
    "first-fan_in": {"critic_action_input": "first", "final_layer_init": "fan_in"},
    "second-fan_in": {"critic_action_input": "second", "final_layer_init": "fan_in"},
}
_LAYOUTS = {name: {**fields, "warmup_noise": False} for name, fields in _LAYOUTS.items()}
_GUARDS = {
    "": {"actor_delay": 0, "actor_saturation_penalty": 0.0},
    "+delay": {"actor_delay": ACTOR_DELAY, "actor_saturation_penalty": 0.0},
    "+penalty": {"actor_delay": 0, "actor_saturation_penalty": SATURATION_PENALTY},
    "+delay+penalty": {"actor_delay": ACTOR_DELAY, "actor_saturation_penalty": SATURATION_PENALTY},
}
VARIANTS: dict[str, dict[str, Any]] = {
    layout + guard: {**layout_fields, **guard_fields}
    for layout, layout_fields in _LAYOUTS.items()
    for guard, guard_fields in _GUARDS.items()
}
SB3 = "sb3"
# The package with config/sb3_equivalent.yaml's algorithm switches (the task's hyperparameters,
# which SB3 gets too, stay): it should learn as SB3 does (issue 22's equivalence check).
SB3_EQUIVALENT = "sb3_equivalent"
SB3_EQUIVALENT_CONFIG = PACKAGE_CONFIG.parent / "sb3_equivalent.yaml"
SB3_SWITCHES = (
    "critic_action_input",
    "final_layer_init",
    "actor_delay",
    "actor_saturation_penalty",
    "warmup_noise",
)


def variant_fields(variant: str | None) -> dict[str, Any]:
    """The DDPG fields ``variant`` sets on top of the task's config (none for SB3 itself)."""
    if variant == SB3_EQUIVALENT:
        from ddpg_controller.learning.config import load_ddpg_config

        cfg = load_ddpg_config(SB3_EQUIVALENT_CONFIG, "/**/controller").to_dict()
        return {name: cfg[name] for name in SB3_SWITCHES}
    return VARIANTS.get(variant or "", {})


def _variant_with(fields: dict[str, Any]) -> str:
    """The name of the variant whose fields equal ``fields``' values."""
    for name, variant_fields in VARIANTS.items():
        if all(fields[k] == v for k, v in variant_fields.items()):
            return name
    raise AssertionError(f"no benchmark variant has the fields {fields}")


def default_variant() -> str:
    """The variant that the package's defaults (``DDPGConfig()``) build."""
    from ddpg_controller.learning.config import DDPGConfig

    return _variant_with(vars(DDPGConfig()))


def default_variants() -> list[str]:
    """What ``python -m bench learning`` compares unless ``--variants`` says: the package's
    default, the same with the action joining the critic at its other layer, and SB3."""
    name = default_variant()
    fields = VARIANTS[name]
    other = "second" if fields["critic_action_input"] == "first" else "first"
    return [name, _variant_with({**fields, "critic_action_input": other}), SB3]


def package_config(spec: EnvSpec, variant: str | None = None) -> dict[str, Any]:
    """The DDPG config dict for ``spec`` (SB3's settings derive from it), with ``variant``'s
    network choices on top when given."""
    from ddpg_controller.learning.config import load_ddpg_config

    base = load_ddpg_config(PACKAGE_CONFIG).to_dict()
    return {**base, **spec.overrides, **variant_fields(variant), "device": "cpu"}


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
        (
            "critic: action joins at / output-layer init",
            "the variant's (first or second layer / U[±3e-3] or fan-in)",
            "input (first) / PyTorch default (= fan-in)",
        ),
        (
            "critic-only updates before the actor's / pre-tanh penalty",
            f"the variant's ({ACTOR_DELAY} with +delay, else 0 / {SATURATION_PENALTY:g} with "
            "+penalty, else 0)",
            "0 / none",
        ),
        ("device / torch threads", "cpu / 1", "cpu / 1"),
    ]


def _make_env(env_id: str):
    import gymnasium as gym

    if "Bullet" in env_id:
        import pybullet_envs_gymnasium  # noqa: F401 (registers the Bullet envs)
    return gym.make(env_id)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One training run in a fresh process: {'variant': a VARIANTS name or 'sb3', 'env', 'seed',
    'steps', 'eval_every', 'config'}. Evaluates the untrained policy, then every ``eval_every``
    steps and at the end."""
    import torch

    torch.set_num_threads(1)
    from ddpg_controller.learning.training import episode_rewards

    env_id, seed, steps, every = job["env"], job["seed"], job["steps"], job["eval_every"]
    cfg_dict = job["config"]
    env, eval_env = _make_env(env_id), _make_env(env_id)
    eval_seed = seed + EVAL_SEED_OFFSET
    curve: list[tuple[int, float]] = []
    eval_time = 0.0

    probe_rng = np.random.default_rng(seed)  # not the agents' streams: probing changes nothing
    saturation: list[tuple[int, float]] = []

    def probe(step: int, observations: np.ndarray, unit_actions) -> None:
        """Fraction of replay states where |mu(s)| > 0.99 in [-1, 1] units (tanh saturated)."""
        states = observations[probe_rng.integers(0, len(observations), PROBE_STATES)]
        with torch.no_grad():
            a = unit_actions(states)
        saturation.append((step, float((a.abs() > 0.99).any(dim=-1).float().mean())))

    def do_eval(step: int, policy_fn) -> list[list[float]]:
        """The evaluation's rewards, episode by episode; its mean return goes on the curve."""
        nonlocal eval_time
        t = time.perf_counter()
        rewards = episode_rewards(policy_fn, eval_env, EVAL_EPISODES, eval_seed)
        eval_time += time.perf_counter() - t
        curve.append((step, float(np.mean([sum(e) for e in rewards]))))
        return rewards

    def critic_probe(rewards: list[list[float]], q_of_policy) -> dict[str, float]:
        """The critic's Q(s0, mu(s0)) at the final evaluation's first states beside the discounted
        return those episodes got: Q above it is the critic overestimating."""
        starts = np.array([eval_env.reset(seed=eval_seed + i)[0] for i in range(len(rewards))])
        with torch.no_grad():
            q = q_of_policy(torch.as_tensor(starts, dtype=torch.float32))
        discounted = [sum(r * cfg_dict["gamma"] ** t for t, r in enumerate(e)) for e in rewards]
        return {"q_start": float(q.mean()), "discounted_return": float(np.mean(discounted))}

    if job["variant"] != SB3:
        from ddpg_controller.learning.config import DDPGConfig
        from ddpg_controller.learning.training import train

        config = DDPGConfig.from_dict(cfg_dict)

        def callback(step, agent, info):
            if step == 1:  # the first update comes at step max(warmup, batch) > 1
                do_eval(0, agent.acting_policy())
            if step % PROBE_EVERY == 0:
                normalize = agent.frozen_normalizer().normalize
                probe(
                    step,
                    agent.replay.field("obs").cpu().numpy(),
                    lambda s: agent.actor(torch.from_numpy(normalize(s))),
                )
            if step % every == 0 and step < steps:
                do_eval(step, agent.acting_policy())

        start = time.perf_counter()
        result = train(env, config, steps, seed, callback=callback)
        total = time.perf_counter() - start
        eval_in_train = eval_time
        rewards = do_eval(result.total_steps, result.agent.acting_policy())
        agent = result.agent
        normalizer = agent.batch_normalizer  # the frozen statistics, as tensors
        critic = critic_probe(
            rewards,
            lambda s: agent.critic(normalizer.normalize(s), agent.actor(normalizer.normalize(s))),
        )
        updates = result.num_updates
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
                if self.num_timesteps % PROBE_EVERY == 0:
                    replay = model.replay_buffer
                    probe(
                        self.num_timesteps,
                        replay.observations[: replay.size(), 0],
                        lambda s: model.actor(torch.as_tensor(s, dtype=torch.float32)),
                    )
                if self.num_timesteps % every == 0 and self.num_timesteps < steps:
                    do_eval(self.num_timesteps, policy)
                return True

        do_eval(0, policy)
        eval_before = eval_time
        start = time.perf_counter()
        model.learn(total_timesteps=steps, callback=Curve())
        total = time.perf_counter() - start
        eval_in_train = eval_time - eval_before
        rewards = do_eval(steps, policy)
        critic = critic_probe(rewards, lambda s: model.critic.q1_forward(s, model.actor(s)))
        updates = int(model._n_updates)
    env.close()
    eval_env.close()
    final = [sum(e) for e in rewards]
    return {
        "variant": job["variant"],
        "env": env_id,
        "seed": seed,
        "steps": steps,
        "updates": updates,
        "untrained_mean": curve[0][1],
        "final_returns": final,
        "final_mean": float(np.mean(final)),
        "curve": curve,
        "saturation": saturation,
        **critic,
        "train_wall_s": total - eval_in_train,
        "eval_wall_s": eval_time,
    }


def select_envs(tasks: list[str] | None) -> list[EnvSpec]:
    """The specs whose id contains one of ``tasks`` (case-insensitive), of ENVS and VALIDATION;
    ENVS (the tuning set) when None."""
    if not tasks:
        return list(ENVS)
    specs = (*ENVS, *VALIDATION)
    chosen = [s for s in specs if any(t.lower() in s.env_id.lower() for t in tasks)]
    unmatched = [t for t in tasks if not any(t.lower() in s.env_id.lower() for s in specs)]
    if unmatched:
        raise ValueError(f"no benchmark env matches {unmatched}; envs: {[s.env_id for s in specs]}")
    return chosen


def run(
    quick: bool,
    seeds: list[int] | None,
    tasks: list[str] | None,
    variants: list[str],
    workers: int = 2,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Every (env, seed, variant) run, ``workers`` at a time; ``seeds`` None = each env's own
    count, ``steps`` None = each env's own budget. ``on_result`` sees each finished run (the
    caller saves progress with it)."""
    known = [*VARIANTS, SB3_EQUIVALENT, SB3]
    unknown = set(variants) - set(known)
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)}; known: {known}")
    specs = select_envs(tasks)
    jobs = []
    budgets = {}
    budget = steps
    for spec in specs:
        steps = budget or (spec.quick_steps if quick else spec.steps)
        every = max(steps // 3, 1) if quick else spec.eval_every
        spec_seeds = seeds if seeds is not None else list(range(spec.seeds))
        budgets[spec.env_id] = {
            "steps": steps,
            "note": f"set by --steps; the task's own: {spec.budget_note}"
            if budget
            else spec.budget_note,
            "eval_every": every,
            "seeds": spec_seeds,
        }
        # The variants of one (env, seed) run side by side, so they share the same conditions.
        for seed in spec_seeds:
            for variant in variants:
                config = package_config(spec, variant if variant != SB3 else None)
                jobs.append(
                    {
                        "variant": variant,
                        "env": spec.env_id,
                        "seed": seed,
                        "steps": steps,
                        "eval_every": every,
                        "config": config,
                    }
                )
    print(f"[learning] {len(jobs)} runs, {workers} at a time, variants {variants}", flush=True)
    hyperparameters = {s.env_id: hyperparameter_rows(package_config(s)) for s in specs}
    for env_id, rows in hyperparameters.items():
        print(f"[learning] hyperparameters for {env_id} (setting: ddpg_controller | SB3):")
        for name, ours, sb3 in rows:
            print(f"    {name}: {ours} | {sb3}", flush=True)
    start = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for r in pool.map(run_one, jobs):
            print(
                f"[learning] {r['env']} {r['variant']} seed {r['seed']}: untrained "
                f"{r['untrained_mean']:.1f}, final {r['final_mean']:.1f}, "
                f"train {r['train_wall_s']:.0f} s, eval {r['eval_wall_s']:.0f} s",
                flush=True,
            )
            runs.append(r)
            if on_result is not None:
                on_result(r)
    return {
        "runs": runs,
        "variants": {v: variant_fields(v) for v in variants},  # SB3: none
        "default_variant": default_variant(),
        "hyperparameters": hyperparameters,
        "budgets": budgets,
        "eval_episodes": EVAL_EPISODES,
        "workers": workers,
        "quick": quick,
        "elapsed_s": time.perf_counter() - start,
    }


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the runs of ``old`` that ``new`` did not redo (same env, variant and seed),
    so that tasks benchmarked by separate invocations share one results file."""
    if not old or old.get("quick") != new["quick"] or "default_variant" not in old:
        return new
    redone = {(r["env"], r["variant"], r["seed"]) for r in new["runs"]}
    kept = [r for r in old["runs"] if (r["env"], r["variant"], r["seed"]) not in redone]
    out = dict(new)
    out["runs"] = kept + new["runs"]
    out["variants"] = {**old["variants"], **new["variants"]}
    for key in ("hyperparameters", "budgets"):
        out[key] = {**old[key], **new[key]}
    for env in old["budgets"]:
        if env in new["budgets"]:
            seeds = {r["seed"] for r in out["runs"] if r["env"] == env}
            out["budgets"][env] = {**new["budgets"][env], "seeds": sorted(seeds)}
    out["elapsed_s"] = old["elapsed_s"] + new["elapsed_s"]
    return out
