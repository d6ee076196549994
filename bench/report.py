"""Builds ``bench/results/<tag>.md`` (and PNG plots) from the JSON results of one tag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, load_result, mean_std
from bench.learning import ACTOR_DELAY, SATURATION_PENALTY

TARGET_UPDATES_RATIO = 2.0
TARGET_ROS_RATIO = 0.5
TARGET_P99_MS = 2.0


def _header(*cols: str) -> str:
    """A markdown table header and its separator line."""
    return "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|"


def _pf(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


LEARNT_FRACTION = 0.05  # a run that gained less than this share of the best gain did not learn


def variant_label(variant: str) -> str:
    """Short column title of a learning variant (bench.learning.VARIANTS or 'sb3')."""
    if variant == "sb3":
        return "SB3 DDPG"
    if variant == "sb3_equivalent":
        return "ours, SB3-equivalent"
    layout, *guards = variant.split("+")
    layer, _, init = layout.partition("-")
    return (
        f"ours, action at {'1st' if layer == 'first' else '2nd'}"
        + (", fan-in" if init else "")
        + "".join(f", {guard}" for guard in guards)
    )


PERMUTATION_ALPHA = 0.05  # issue 22's pre-registered level (2026-12-07-preregistration.md)
PERMUTATION_DRAWS = 200_000  # random relabellings when the exact enumeration is larger


def permutation_p(a: list[float], b: list[float]) -> float:
    """Two-sided permutation test of equal means on per-seed finals: the share of relabellings of
    the pooled values whose |mean difference| is at least the observed one. Exact up to
    ``PERMUTATION_DRAWS`` splits, else that many random ones (seed 0, so the report repeats)."""
    import itertools
    import math

    pooled, n = np.asarray([*a, *b], dtype=np.float64), len(a)
    observed = abs(np.mean(a) - np.mean(b)) - 1e-9 * (1.0 + abs(np.mean(a)))  # ties count
    total = pooled.sum()
    if math.comb(len(pooled), n) <= PERMUTATION_DRAWS:
        firsts = np.array(list(itertools.combinations(range(len(pooled)), n)))
    else:
        rng = np.random.default_rng(0)
        firsts = np.argsort(rng.random((PERMUTATION_DRAWS, len(pooled))), axis=1)[:, :n]
    sums = pooled[firsts].sum(axis=1)
    diffs = np.abs(sums / n - (total - sums) / (len(pooled) - n))
    return float(np.mean(diffs >= observed))


def within_spread(a: list[float], b: list[float]) -> bool:
    """Each mean lies within the other's mean ± one standard deviation over seeds."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return abs(ma - mb) <= sa and abs(ma - mb) <= sb


def did_not_learn(run: dict[str, Any], best_final: float) -> bool:
    """The run ended no better than its untrained policy: it gained less than
    ``LEARNT_FRACTION`` of the best gain any run made on this env over its own untrained return."""
    gain = run["final_mean"] - run["untrained_mean"]
    return gain <= LEARNT_FRACTION * (best_final - run["untrained_mean"])


RULE_MARGIN = 0.05  # a winner's score must exceed the default's by this (pre-registration §3.3)


def default_rule(data: dict[str, Any]) -> list[str]:
    """The rule that picks a default, as ``bench/results/2026-12-07-preregistration.md`` §3 wrote
    it before the runs; empty unless SB3 and every package variant ran on all of ``ENVS``.

    1. Eligible: on every tuning task no seed did not learn, and not worse than SB3 with p < α.
    2. Score: the mean over tasks of (mean − untrained mean) / (SB3 mean − untrained mean), the
       untrained mean being that candidate's own seeds' step-0 score.
    3. The eligible candidate with the highest score wins; the current default stays unless the
       winner's score exceeds its score by ``RULE_MARGIN`` and the winner beats the default with
       p < α on at least one task. 4. No eligible candidate: the default stays.
    """
    from bench.learning import ENVS

    runs, default = data["runs"], data["default_variant"]
    candidates = [v for v in _ordered_variants(data) if v != "sb3"]
    envs = [spec.env_id for spec in ENVS]

    def runs_of(env: str, variant: str) -> list[dict[str, Any]]:
        return [r for r in runs if r["env"] == env and r["variant"] == variant]

    def finals(env: str, variant: str) -> list[float]:
        return [r["final_mean"] for r in runs_of(env, variant)]

    if default not in candidates or any(
        not runs_of(env, v) for env in envs for v in [*candidates, "sb3"]
    ):
        return []
    out = [
        "### The pre-registered rule on the tuning set\n",
        "`2026-12-07-preregistration.md` §3, applied by `bench/report.py` `default_rule`. "
        "Progress = (mean − untrained mean) / (SB3 mean − untrained mean); eligible = no seed "
        f"did not learn and not worse than SB3 with p < {PERMUTATION_ALPHA} on every task.\n",
        _header("candidate", *envs, "score (mean progress)", "eligible"),
    ]
    scores, eligible = {}, {}
    for v in candidates:
        cells, progress, ok = [], [], True
        for env in envs:
            env_runs = [r for r in runs if r["env"] == env]
            best = max(r["final_mean"] for r in env_runs)
            ours, sb3 = finals(env, v), finals(env, "sb3")
            untrained = float(np.mean([r["untrained_mean"] for r in runs_of(env, v)]))
            stuck = sum(did_not_learn(r, best) for r in runs_of(env, v))
            p = permutation_p(ours, sb3)
            worse = np.mean(ours) < np.mean(sb3) and p < PERMUTATION_ALPHA
            ok = ok and stuck == 0 and not worse
            progress.append((np.mean(ours) - untrained) / (np.mean(sb3) - untrained))
            cells.append(
                f"{progress[-1]:.3f} (p {p:.3f}{', worse' if worse else ''}"
                f"{f', {stuck} stuck' if stuck else ''})"
            )
        scores[v], eligible[v] = float(np.mean(progress)), ok
        out.append(
            f"| {variant_label(v)} | " + " | ".join(cells) + f" | {scores[v]:.3f} | {_pf(ok)} |"
        )
    chosen = [v for v in candidates if eligible[v]]
    if not chosen:
        verdict = f"no candidate is eligible: the default ({variant_label(default)}) stays (§3.4)"
    else:
        winner = max(chosen, key=lambda v: scores[v])
        better_somewhere = [
            env
            for env in envs
            if np.mean(finals(env, winner)) > np.mean(finals(env, default))
            and permutation_p(finals(env, winner), finals(env, default)) < PERMUTATION_ALPHA
        ]
        if winner == default:
            verdict = f"the default ({variant_label(default)}) has the highest eligible score"
        elif scores[winner] >= scores[default] + RULE_MARGIN and better_somewhere:
            verdict = (
                f"{variant_label(winner)} replaces the default: score {scores[winner]:.3f} vs "
                f"{scores[default]:.3f}, better with p < {PERMUTATION_ALPHA} on "
                + ", ".join(better_somewhere)
            )
        else:
            verdict = (
                f"{variant_label(winner)} scores highest ({scores[winner]:.3f} vs the default's "
                f"{scores[default]:.3f}) but "
                + (
                    f"not by {RULE_MARGIN}"
                    if scores[winner] < scores[default] + RULE_MARGIN
                    else f"is better than the default with p < {PERMUTATION_ALPHA} on no task"
                )
                + f": the default ({variant_label(default)}) stays (§3.3)"
            )
    out.append(f"\n**Choice:** {verdict}.\n")
    return out


def _plot_learning(tag: str, env: str, runs: list[dict[str, Any]], variants: list[str]) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for variant in variants:
        curves = [r["curve"] for r in runs if r["variant"] == variant]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        steps = [s for s, _ in curves[0][:n]]
        values = np.array([[v for _, v in c[:n]] for c in curves])
        mean, std = values.mean(0), values.std(0)
        line = ax.plot(steps, mean, label=f"{variant_label(variant)} ({len(curves)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=line[0].get_color(), alpha=0.15)
    ax.set_title(f"{env}: deterministic eval return (10 episodes), mean ± std")
    ax.title.set_fontsize(9)
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = f"{tag}-learning-{env.replace('/', '_')}.png"
    fig.savefig(RESULTS / name, dpi=100)
    plt.close(fig)
    return name


def _machine(m: dict[str, Any] | None) -> str:
    if not m:
        return ""
    return (
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores ({m['logical_cores']} logical), "
        f"GPU {m['cuda'] or 'none'}; Python {m['python']}, torch {m['torch']}, "
        f"SB3 {m.get('stable_baselines3')}, gymnasium {m.get('gymnasium')}, "
        f"pybullet-envs-gymnasium {m.get('pybullet_envs_gymnasium')}, "
        f"pybullet {m.get('pybullet')}, "
        f"rclpy {m.get('rclpy')}, numpy {m['numpy']}; "
        f"load average at start {m.get('load_avg_at_start')}; git {m.get('git_commit')}.\n"
    )


def _ordered_variants(data: dict[str, Any]) -> list[str]:
    present = {r["variant"] for r in data["runs"]}
    default = data["default_variant"]
    order = [default, *sorted(present - {default, "sb3"}), "sb3"]
    return [v for v in order if v in present]


def learning_section(
    tag: str, data: dict[str, Any]
) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    out, targets = [], []
    runs = data["runs"]
    variants = _ordered_variants(data)
    default = data["default_variant"]
    out.append("## 1. Learning: same budget, same seeds\n")
    out.append(_machine(data.get("machine")))
    out.append(
        f"Final score = mean undiscounted return of {data['eval_episodes']} deterministic "
        "episodes (episode i reset with seed 1,000,000 + seed + i, the same for every variant, "
        f"`ddpg_controller.learning.training.evaluate`). {data['workers']} runs at a time, 1 "
        "torch thread each, CPU. The package's variants differ only in the critic's layout "
        "(`ddpg.critic_action_input`), the output layers' init (`ddpg.final_layer_init`) and "
        "the guards against the actor's early rush to a bound (`ddpg.actor_delay`, "
        "`ddpg.actor_saturation_penalty`). "
        "Columns: *ours, action at 1st/2nd*: the action joins the critic at its input or its "
        "second layer; *fan-in*: output layers initialised like the hidden ones (PyTorch's "
        "default, as SB3), otherwise the paper's U[±3e-3]; *delay*: the actor waits for "
        f"{ACTOR_DELAY:,} critic-only updates; *penalty*: the actor's loss penalises "
        f"|pre-tanh| > 3 with weight {SATURATION_PENALTY:g}; neither: both off. "
        f"**{variant_label(default)}** is the package's default. Cells: mean ± std over seeds "
        "(seeds that did not learn). *Did not learn*: the final "
        f"score gained less than {LEARNT_FRACTION:.0%} of the best run's gain over the run's "
        "own untrained policy (its step-0 score). *Saturated*: |μ(s)| > 0.99 on more than 90% "
        "of 512 replay states at the last probe (probes every 500 steps).\n"
    )
    out.append(
        _header(
            "env",
            "budget (env steps)",
            *(variant_label(v) for v in variants),
            "target: default ≥ SB3, every seed learns",
        )
    )
    per_env: list[str] = []
    for env, budget in data["budgets"].items():
        env_runs = [r for r in runs if r["env"] == env]
        if not env_runs:
            continue
        best = max(r["final_mean"] for r in env_runs)
        by_variant = {
            v: sorted((r for r in env_runs if r["variant"] == v), key=lambda r: r["seed"])
            for v in variants
        }
        cells = []
        stats = {}
        for v in variants:
            rs = by_variant[v]
            if not rs:
                cells.append("–")
                continue
            m, sd = mean_std([r["final_mean"] for r in rs])
            stuck = sum(did_not_learn(r, best) for r in rs)
            stats[v] = (m, stuck)
            cells.append(f"{m:.1f} ± {sd:.1f} ({stuck} of {len(rs)})")
        verdict = "–"
        if default in stats and "sb3" in stats:
            ok = stats[default][0] >= stats["sb3"][0] and stats[default][1] == 0
            verdict = _pf(ok)
            targets.append(
                (
                    f"Return ≥ SB3 on {env} ({budget['steps']:,} steps), every seed learns",
                    f"{stats[default][0]:.1f} vs {stats['sb3'][0]:.1f} "
                    f"({stats[default][0] - stats['sb3'][0]:+.2f}); "
                    f"{stats[default][1]} seed(s) did not learn",
                    "≥ SB3, 0",
                    verdict,
                )
            )
        out.append(f"| {env} | {budget['steps']:,} | " + " | ".join(cells) + f" | {verdict} |")
        # Per-seed table.
        per_env.append(f"### {env}, {budget['steps']:,} steps\n")
        per_env.append(
            "Final score per seed (untrained score in brackets; † did not learn; "
            "* actor saturated at the end).\n"
        )
        per_env.append(_header("seed", *(variant_label(v) for v in variants)))
        seeds = sorted({r["seed"] for r in env_runs})
        for seed in seeds:
            row = []
            for v in variants:
                match = [r for r in by_variant[v] if r["seed"] == seed]
                if not match:
                    row.append("–")
                    continue
                r = match[0]
                mark = "†" if did_not_learn(r, best) else ""
                sat = r.get("saturation") or [(0, 0.0)]
                mark += "*" if sat[-1][1] > 0.9 else ""
                row.append(f"{r['final_mean']:.1f}{mark} ({r['untrained_mean']:.1f})")
            per_env.append(f"| {seed} | " + " | ".join(row) + " |")
        row = []
        for v in variants:
            rs = by_variant[v]
            row.append(
                "{:.1f} ± {:.1f}".format(*mean_std([r["final_mean"] for r in rs])) if rs else "–"
            )
        per_env.append("| mean ± std | " + " | ".join(row) + " |")
        row = []
        for v in variants:
            rs = by_variant[v]
            ever = sum(any(f > 0.9 for _, f in r.get("saturation", [])) for r in rs)
            row.append(f"{ever} of {len(rs)}" if rs else "–")
        per_env.append("| saturated at some probe | " + " | ".join(row) + " |")
        row = []
        for v in variants:
            over = [r["q_start"] - r["discounted_return"] for r in by_variant[v] if "q_start" in r]
            row.append("{:+.1f} ± {:.1f}".format(*mean_std(over)) if over else "–")
        per_env.append(
            "| critic's overestimation Q(s0) − discounted return | " + " | ".join(row) + " |"
        )
        row = []
        sb3_finals = [r["final_mean"] for r in by_variant.get("sb3", [])]
        for v in variants:
            finals = [r["final_mean"] for r in by_variant[v]]
            if v == "sb3" or len(finals) < 2 or len(sb3_finals) < 2:
                row.append("–")
                continue
            p = permutation_p(finals, sb3_finals)
            spread = within_spread(finals, sb3_finals)
            row.append(f"p = {p:.3f}, {'within' if spread else 'outside'} spread")
            if v == "sb3_equivalent":
                targets.append(
                    (
                        f"SB3-equivalent indistinguishable from SB3 on {env}",
                        f"p = {p:.3f} ({len(finals)} vs {len(sb3_finals)} seeds), means "
                        f"{np.mean(finals):.1f} vs {np.mean(sb3_finals):.1f}",
                        f"p ≥ {PERMUTATION_ALPHA}, means within each other's spread",
                        _pf(p >= PERMUTATION_ALPHA and spread),
                    )
                )
        per_env.append("| against SB3: permutation p, spread | " + " | ".join(row) + " |\n")
        name = _plot_learning(tag, env, env_runs, variants)
        if name:
            per_env.append(f"![{env}]({name})\n")
    out.append("")
    out.append(
        "Budgets: " + "; ".join(f"{e}: {b['note']}" for e, b in data["budgets"].items()) + ".\n"
    )
    out.extend(per_env)
    out.extend(default_rule(data))
    for env, rows in data["hyperparameters"].items():
        out.append(f"<details><summary>Hyperparameters, {env}</summary>\n")
        out.append("| setting | ddpg_controller | SB3 DDPG |")
        out.append("|---|---|---|")
        out.extend(f"| {a} | {b} | {c} |" for a, b, c in rows)
        out.append("\n</details>\n")
    out.append("## 2. Wall time of the same runs\n")
    out.append(
        "Training wall time per run, evaluation time excluded (mean ± std over seeds), the "
        "package's default variant against SB3.\n"
    )
    out.append(
        _header(
            "env",
            "ddpg_controller (s)",
            "SB3 (s)",
            "ratio ours / SB3",
            "env steps/s ours / SB3",
        )
    )
    for env, budget in data["budgets"].items():
        ours = [r["train_wall_s"] for r in runs if r["env"] == env and r["variant"] == default]
        sb3 = [r["train_wall_s"] for r in runs if r["env"] == env and r["variant"] == "sb3"]
        if not ours or not sb3:
            continue
        mo, so = mean_std(ours)
        ms, ss = mean_std(sb3)
        out.append(
            f"| {env} | {mo:.1f} ± {so:.1f} | {ms:.1f} ± {ss:.1f} | {mo / ms:.2f} | "
            f"{budget['steps'] / mo:.0f} / {budget['steps'] / ms:.0f} |"
        )
    out.append(f"\nLearning benchmark elapsed: {data['elapsed_s'] / 60:.1f} min.\n")
    return out, targets


def update_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    targets: list[tuple[str, str, str, str]] = []
    out = [
        "## 3. Update step: training updates per second\n",
        _machine(data.get("machine")),
    ]
    out.append(
        f"400-300 actor and critic, {data['obs_dim']}-D observations, {data['action_dim']}-D "
        "actions, "
        f"replay prefilled with the same {data['prefill']:,} random transitions in both libraries. "
        "ddpg_controller: `DDPG.train_step()` (sampling on the learner's device + update); SB3: "
        "`DDPG.train(gradient_steps=N, batch_size=B)`. Median of "
        f"{data['repeats']} timings of N updates after 20 warm-up updates.\n"
    )
    out.append(
        _header(
            "device",
            "torch threads",
            "batch",
            "ddpg_controller updates/s",
            "SB3 updates/s",
            "ratio",
            "ours: sample+batch / update only (ms)",
            "SB3 sample (ms)",
            "target ≥ 2x (CPU)",
        )
    )
    for r in data["rows"]:
        ok = r["ratio"] >= TARGET_UPDATES_RATIO
        cpu = r["device"] == "cpu"
        out.append(
            f"| {r['device']} | {r['threads']} | {r['batch']} | {r['ours_updates_per_s']:.0f} | "
            f"{r['sb3_updates_per_s']:.0f} | {r['ratio']:.2f} | "
            f"{r['ours']['sample_and_batch_s'] * 1e3:.2f} / "
            f"{r['ours']['update_only_s'] * 1e3:.2f} | "
            f"{r['sb3']['sample_and_batch_s'] * 1e3:.2f} | {_pf(ok) if cpu else 'n/a'} |"
        )
        if cpu:
            targets.append(
                (
                    f"Updates/s ≥ 2x SB3 (CPU, {r['threads']} thread(s), batch {r['batch']})",
                    f"x{r['ratio']:.2f}",
                    "≥ x2.00",
                    _pf(ok),
                )
            )
    if data.get("regression"):
        out.append(
            "\nCPU regression check: `train_step` updates/s of the package at "
            f"`{data['regression'][0]['ref']}` (numpy replay on the host) against the current one "
            "(replay on the learner's device), 1 torch thread, rounds interleaved:\n"
        )
        out.append(_header("batch", "before (updates/s)", "now (updates/s)", "ratio"))
        for r in data["regression"]:
            out.append(
                f"| {r['batch']} | {r['baseline_per_s']:.0f} | {r['current_per_s']:.0f} | "
                f"x{r['ratio']:.3f} |"
            )
            ok = r["ratio"] >= 0.95
            targets.append(
                (
                    f"CPU train_step no regression (batch {r['batch']})",
                    f"x{r['ratio']:.3f}",
                    "≥ x0.95",
                    _pf(ok),
                )
            )
    if data.get("gpu"):
        out.append(f"\nOn {data['gpu'][0]['gpu']}: CUDA graph vs eager vs SB3, updates/s:\n")
        out.append(_header("batch", "CUDA graph", "eager", "SB3", "graph / SB3", "graph / eager"))
        for r in data["gpu"]:
            out.append(
                f"| {r['batch']} | {r['graph_per_s']:.0f} | {r['eager_per_s']:.0f} | "
                f"{r['sb3_per_s']:.0f} | x{r['graph_vs_sb3']:.2f} | x{r['graph_vs_eager']:.2f} |"
            )
    if data.get("variants"):
        out.append(
            "\nThe package's opt-in `ddpg.precision: bfloat16` against its default (fused Adam "
            "and a foreach soft update are in the default), 1 torch thread, rounds interleaved:\n"
        )
        out.append("| batch | variant | ms / update | speed-up vs current |")
        out.append("|---|---|---|---|")
        for v in data["variants"]:
            out.append(f"| {v['batch']} | {v['variant']} | {v['ms']:.2f} | x{v['speedup']:.2f} |")
    if data.get("profile"):
        out.append(
            "\ntorch.profiler, 50 `train_step()` calls, batch 256, 1 thread (top ops by self CPU "
            "time):\n"
        )
        out.append("```\n" + data["profile"] + "\n```")
    out.append("")
    return out, targets


def ros_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str, str]]]:
    targets: list[tuple[str, str, str, str]] = []
    out = ["## 4. Through ROS 2\n", _machine(data.get("machine"))]
    out.append(
        f"Pendulum, config/pendulum.yaml (256-256, batch 128, 1 torch thread in the controller), "
        f"{data['steps']:,} env steps, seed {data['seed']}, no periodic evaluation. Throughput "
        "over "
        f"the same window for both (episode ends from step {data['window_start_step']} on: after "
        "the "
        "warm-up, before the final evaluation). ROS: `ddpg-train` (sim node + controller node, two "
        "processes, lockstep). In-process: `training.train` on `ddpg_controller/Pendulum-v0`.\n"
    )
    out.append(
        _header(
            "mode",
            "ROS 2 lockstep (env steps/s)",
            "in-process (env steps/s)",
            "ratio",
            "updates (ROS / in-process)",
            "latency p50 / p99 / max (ms)",
            "lockstep wait p50 / p99 (ms)",
        )
    )
    for key, label in (
        ("learning", "with learning (1 update/step)"),
        ("no_learning", "without learning (updates_per_step 0)"),
    ):
        d = data.get(key)
        if not d:
            continue
        s = d["ros"].get("summary")
        if s is None:
            out.append(f"| {label} | error: {d['ros'].get('error', '')[:200]} | | | | | |")
            continue
        out.append(
            f"| {label} | {d['ros_steps_per_s']:.0f} | {d['in_process_steps_per_s']:.0f} | "
            f"{d['ratio']:.2f} | {s['updates']} / {d['in_process']['updates']} | "
            f"{s['latency_p50_ms']:.2f} / {s['latency_p99_ms']:.2f} / {s['latency_max_ms']:.2f} | "
            f"{s['lockstep_wait_p50_ms']:.2f} / {s['lockstep_wait_p99_ms']:.2f} |"
        )
        if key == "learning":
            ok = d["ratio"] >= TARGET_ROS_RATIO
            targets.append(
                (
                    "ROS lockstep with learning ≥ 0.5x in-process",
                    f"x{d['ratio']:.2f}",
                    "≥ x0.50",
                    _pf(ok),
                )
            )
            ok = s["latency_p99_ms"] < TARGET_P99_MS
            targets.append(
                (
                    "p99 control latency with learning (lockstep, summary.yaml)",
                    f"{s['latency_p99_ms']:.2f} ms",
                    "< 2 ms",
                    _pf(ok),
                )
            )
    rt = data.get("rt", {})
    out.append(
        f"\n**Real time at {1 / rt.get('period_s', 0.002):.0f} Hz.** The package's sim node in "
        "`mode:=realtime` with the pendulum's control period set to 2 ms (`bench/rt_sim.py` gives "
        "the unchanged `SimNode` a copy of the pendulum spec with that period; its wall-clock "
        "timer publishes a state every period and holds the last command) and the controller node "
        "with `lockstep: false` (the learner thread trains free-running). A period is *met* when a "
        "command arrived after that period's state was published and before the next tick, "
        "measured "
        "in the sim process; the round trip is that arrival minus the publication. Episode ends "
        "(200 periods = 0.4 s; the controller then calls the reset service) are also shown "
        "excluded. The controller's own latency (state received -> command ready) is from its "
        f"summary. {rt.get('duration_s')} s of control after the first command.\n"
    )
    out.append(
        _header(
            "run",
            "periods",
            "missed",
            "missed (excl. episode resets)",
            "round trip p50 / p99 / max (ms)",
            "sim tick interval mean / p99 / max (ms)",
            "controller latency p50 / p99 / max (ms)",
            "updates",
        )
    )
    for key, label in (
        ("rt_learning", "with learning"),
        ("rt_no_learning", "without learning (training: false)"),
    ):
        d = data.get(key)
        if not d:
            continue
        if "error" in d:
            out.append(f"| {label} | error: {str(d['error'])[:300]} | | | | | | |")
            continue
        c = d.get("controller_summary") or {}
        rtt, tick = d["round_trip_ms"], d["tick_interval_ms"]
        ctrl = (
            f"{c['latency_p50_ms']:.2f} / {c['latency_p99_ms']:.2f} / {c['latency_max_ms']:.2f}"
            if c
            else "(no summary: stopped)"
        )
        out.append(
            f"| {label} | {d['periods']} | {d['missed_fraction'] * 100:.1f}% | "
            f"{d['missed_fraction_excluding_resets'] * 100:.1f}% | {rtt['p50']:.2f} / "
            f"{rtt['p99']:.2f} / "
            f"{rtt['max']:.2f} | {tick['mean']:.2f} / {tick['p99']:.2f} / {tick['max']:.2f} | "
            f"{ctrl} | "
            f"{c.get('updates', '-')} |"
        )
    out.append("")
    return out, targets


def memory_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    from bench.memory import LABELS

    out = [
        "## 5. Memory: 1,000,000-transition replay, arm_reach sizes (20 obs, 7 actions)\n",
        _machine(data.get("machine")),
    ]
    out.append(
        "RSS (psutil) in a fresh process per case: after imports, after construction, after "
        "writing "
        "every row of the buffer. Float32 everywhere in both.\n"
    )
    out.append(
        _header(
            "case",
            "RSS after imports (MB)",
            "after construction (MB)",
            "after filling (MB)",
            "total increase (MB)",
            "buffer arrays (MB)",
        )
    )
    for r in data["rows"]:
        out.append(
            f"| {LABELS.get(r['case'], r['case'])} | {r['rss_before_mb']:.0f} | "
            f"{r['built_mb']:.0f} | "
            f"{r['rss_after_mb']:.0f} | {r['delta_mb']:.0f} | {r['buffer_arrays_mb']:.0f} |"
        )
    out.append(
        "\nThis package stores obs, action, reward, next_obs, terminated (49 floats per "
        "transition); "
        "SB3's default layout adds a timeout flag (50); with `optimize_memory_usage=True` SB3 "
        "keeps no "
        "next observations (next_obs = obs of the following row), 29 floats. The agent's own "
        "construction cost (networks, targets, Adam state, torch's first-use allocations) is the "
        "difference between 'after imports' and 'after construction'.\n"
    )
    return out, []


def _loop_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        _header(
            "loop",
            "learner",
            "late ticks %",
            "control path p50 / p99 / max (ms)",
            "loop rate (Hz)",
            "updates/s",
            "updates per env step (configured)",
        )
    ]
    for r in rows:
        for key, x in r["setups"].items():
            ms = x["act_ms"]
            out.append(
                f"| {r['label']}, {r['rate_hz']:g} Hz | {key} | {x['late_pct']:.1f} | "
                f"{ms['p50']:.3f} / {ms['p99']:.3f} / {ms['max']:.2f} | {x['achieved_hz']:.0f} | "
                f"{x['updates_per_s']:.0f} | {x['updates_per_env_step']:.2f} "
                f"({x['configured_updates_per_step']:g}) |"
            )
    return out


def control_loop_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    out = ["## 6. A real-time control loop beside the learner (CPU, no ROS)\n"]
    out.append(_machine(data.get("machine")))
    out.append(
        "`bench/control_loop.py`: a loop thread per tick computes the observation, μ(s) + noise "
        "from the learner's CPU policy copy, and stores the transition; the background learner "
        "runs in real-time mode at config/pendulum.yaml's ddpg section (256-256, batch 128, "
        f"1 update per step, 1 torch thread). Late tick: began > {data['late_fraction']:g} "
        "period after its time, or skipped. Learner off, on, and (at 20 Hz) free-running "
        "(ignoring the ratio, as real time ran before) alternate, two runs each; the run with "
        "the lower p99 is shown.\n"
    )
    out += _loop_table(data["rows"])
    targets = []
    for r in data["rows"]:
        on, off = r["setups"]["on"], r["setups"]["off"]
        p99 = on["act_ms"]["p99"]
        targets.append(
            (
                f"Control path p99 with the learner on, CPU, {r['rate_hz']:g} Hz",
                f"{p99:.2f} ms (off: {off['act_ms']['p99']:.2f})",
                f"< {TARGET_P99_MS:g} ms",
                _pf(p99 < TARGET_P99_MS),
            )
        )
    out.append("")
    return out, targets


def gpu_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    if data.get("skipped"):
        return [], []  # no CUDA where it ran: nothing to report
    out = [f"## 7. The learner on a GPU ({data['gpu']}, torch {data['torch']})\n"]
    out.append(_machine(data.get("machine")))
    out.append(_header("batch", "CUDA graph", "eager", "SB3", "graph / SB3"))
    for r in data["updates"]:
        out.append(
            f"| {r['batch']} | {r['graph_per_s']:.0f} | {r['eager_per_s']:.0f} | "
            f"{r['sb3_per_s']:.0f} | x{r['graph_vs_sb3']:.2f} |"
        )
    out.append("\n500 Hz control loop beside the CUDA learner:\n")
    out += _loop_table([data["loop"]])
    out.append("\nPendulum-v1, config/gym_pendulum.yaml, 10 deterministic episodes:\n")
    out.append(_header("device", "seed", "return", "wall time (s)"))
    for r in data["pendulum"]:
        out.append(f"| {r['device']} | {r['seed']} | {r['return']:.1f} | {r['wall_s']:.0f} |")
    out.append("")
    return out, gpu_targets(data)


def gpu_targets(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Issue 10's GPU targets: updates/s at batch 256, the 500 Hz loop with the learner on
    against off, Pendulum-v1 solved on every seed in less wall time than on the CPU."""
    targets = []
    at_256 = next((r for r in data["updates"] if r["batch"] == 256), None)
    if at_256:
        ok = at_256["graph_per_s"] >= 1500 and at_256["graph_vs_sb3"] >= 5
        targets.append(
            (
                "GPU updates/s at batch 256, 400-300",
                f"{at_256['graph_per_s']:.0f} (x{at_256['graph_vs_sb3']:.2f} SB3)",
                ">= 1,500 and >= x5 SB3",
                _pf(ok),
            )
        )
    on, off = data["loop"]["setups"]["on"], data["loop"]["setups"]["off"]
    late_gap = on["late_pct"] - off["late_pct"]
    p99_ratio = on["act_ms"]["p99"] / off["act_ms"]["p99"]
    targets.append(
        (
            "500 Hz loop beside the GPU learner: late ticks on - off, act p99 on / off",
            f"{late_gap:+.1f} pp, x{p99_ratio:.2f} ({on['updates_per_s']:.0f} updates/s)",
            "<= 1 pp, <= x1.5",
            _pf(late_gap <= 1.0 and p99_ratio <= 1.5),
        )
    )
    cuda = [r for r in data["pendulum"] if r["device"] == "cuda"]
    cpu = {r["seed"]: r for r in data["pendulum"] if r["device"] == "cpu"}
    solved = all(r["return"] >= -200 for r in cuda)
    faster = all(r["wall_s"] < cpu[r["seed"]]["wall_s"] for r in cuda if r["seed"] in cpu)
    targets.append(
        (
            f"Pendulum-v1 on cuda, {len(cuda)} seeds: solved (>= -200), faster than the CPU",
            ", ".join(
                f"{r['return']:.1f} in {r['wall_s']:.0f} s (cpu {cpu[r['seed']]['wall_s']:.0f} s)"
                for r in cuda
                if r["seed"] in cpu
            ),
            "every seed",
            _pf(solved and faster),
        )
    )
    return targets


def netns_section(data: dict[str, Any]) -> tuple[list[str], list[tuple[str, ...]]]:
    out = ["## 8. Two computers: ROS 2 across a veth between two network namespaces\n"]
    if data.get("skipped"):
        return [*out, f"Skipped: {data['skipped']}.\n"], []
    out.append(_machine(data.get("machine")))
    out.append(
        f"`./run train --task pendulum --steps {data['steps']}` (lockstep, learning from step "
        "1,000, one final evaluation episode), its two nodes started by `bench/netns.py` in "
        f"namespaces A and B joined by a veth ({data['subnet']}, no other interface, no default "
        "route), each run on a domain of its own. Discovery: `multicast` = "
        "`ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET`; `static_peers` = `LOCALHOST` + "
        "`ROS_STATIC_PEERS=<the other side's address>`; `discovery_server` = `LOCALHOST` + "
        "`ROS_DISCOVERY_SERVER=<A's address>:11811` with `fastdds discovery` running in A. Bytes "
        "are counted on the veth (both directions) from the nodes' start to their exit, "
        "discovery included; the busiest second is the training itself.\n"
    )
    columns = ("run", "env steps", "env steps/s", "latency p50 / p99 (ms)", "run (s)")
    columns += ("veth bytes", "B/s over the run", "B/s busiest second", "B per env step (run)")
    out.append(_header(*columns))
    trainings = {k: r for k, r in data["runs"].items() if not k.startswith(("weights/", "fleet/"))}
    for key, r in trainings.items():
        if "error" in r:
            out.append(f"| {key} | failed: {r['error'][:200]!r} |")
            continue
        s, v = r["summary"], r["veth"]
        out.append(
            f"| {key} | {s['env_steps']} | {s['env_steps_per_s']:.0f} | "
            f"{s['latency_p50_ms']:.2f} / {s['latency_p99_ms']:.2f} | {r['wall_s']:.1f} | "
            f"{v['bytes']:,} | {v['bytes_per_s']:,.0f} | {v['peak_bytes_per_s']:,.0f} | "
            f"{v['bytes_per_env_step']:.0f} |"
        )
    if "bytes_per_extra_env_step" in data:
        out.append(
            f"\nOne lockstep env step costs {data['bytes_per_extra_env_step']:,.0f} bytes across "
            "the veth (the long multicast run less the short one, per extra env step): the "
            "state, the command, `/clock` and their reliable acknowledgements."
        )
    across = data["runs"].get("across_veth/multicast", {})
    same = data["runs"].get("same_namespace/multicast", {})
    if "summary" in across and "summary" in same:
        ratio = across["summary"]["env_steps_per_s"] / same["summary"]["env_steps_per_s"]
        out.append(
            f"\nLockstep env steps/s across the veth / within one namespace (multicast): "
            f"x{ratio:.2f}."
        )
    for key, r in data["runs"].items():
        if not key.startswith("fleet/"):
            continue
        if "error" in r:
            out.append(f"\n{key}: failed: {r['error'][:300]!r}")
            continue
        s, v = r["summary"], r["veth"]
        counters = s["learner_counters"]
        out.append(
            f"\nFleet across the veth ({key}: `train_cli.fleet_commands`, the learner node in A, "
            f"two robots (sim + actor node) in B, real time, multicast): "
            f"{s['env_steps']} env steps ({s['env_steps_by_robot']}), {s['updates']} updates, "
            f"{s['env_steps_per_s']:.1f} env steps/s, final evaluation "
            f"{s['final_eval_return']:.0f}; staleness p50/p99 {s['policy_staleness_updates_p50']}"
            f" / {s['policy_staleness_updates_p99']} updates; transition latency p50/p99 "
            f"{s['transition_latency_p50_ms']:.0f} / {s['transition_latency_p99_ms']:.0f} ms; "
            f"{counters.get('batches_stored', 0)} batches stored, "
            f"{counters.get('batches_missing', 0)} missing; veth {v['bytes']:,} bytes in "
            f"{r['wall_s']:.0f} s ({v['bytes_per_s']:,.0f} B/s, busiest second "
            f"{v['peak_bytes_per_s']:,.0f} B/s: the policies, {counters.get('policy_bytes', 0):,} "
            f"bytes of them)."
        )
    weights = {k: r for k, r in data["runs"].items() if k.startswith("weights/")}
    if weights:
        out.append(
            f"\nThe policy topic's QoS across the veth (`bench/weights_probe.py`, multicast): a "
            f"Float64MultiArray of {data['weights_values']:,} values (the pendulum actor's "
            f"weights, {8 * data['weights_values'] / 1e3:,.0f} kB), reliable + transient local, "
            "keep-last 1; `streaming`: one every 0.5 s for 12 s to a subscriber listening 10 s; "
            "`late_joiner`: one message, the subscriber starts 4 s after it (its latency is "
            "then the message's age).\n"
        )
        columns = ("run", "received", "versions", "latency p50 / max (ms)")
        columns += ("first message after the subscriber's start (s)", "veth bytes")
        out.append(_header(*columns))
        for key, r in weights.items():
            if "error" in r:
                out.append(f"| {key} | failed: {r['error'][:200]!r} |")
                continue
            versions = r["versions"]
            shown = ", ".join(map(str, versions[:3])) + (", ..." if len(versions) > 3 else "")
            out.append(
                f"| {key} | {r['received']} | {shown} | {r['latency_ms_p50']:,.0f} / "
                f"{r['latency_ms_max']:,.0f} | {r['first_at_s']:.2f} | {r['veth']['bytes']:,} |"
            )
    out.append("")
    return out, []


# Benchmarks 3 to 8 in the report's order: the results file each reads, and its section.
SECTIONS = (
    ("update-step", update_section),
    ("ros", ros_section),
    ("memory", memory_section),
    ("control-loop", control_loop_section),
    ("gpu", gpu_section),
    ("netns", netns_section),
)


def build(tag: str) -> Path:
    parts = [
        f"# ddpg_controller benchmarks, {tag}\n",
        "Generated by `python -m bench` (`./run bench`); raw JSON beside this file is git-ignored. "
        "Rebuild this file from the JSON with `python -m bench report`. Subsets: "
        "`./run bench learning|update-step|ros|memory|control-loop|gpu|netns`, `--quick` for tiny "
        "budgets (tagged `<date>-quick`), `--seeds N|LIST`, `--tasks T,..`, `--variants V,..`.\n",
        "What each benchmark measures: (1) final deterministic return after the same env-step "
        "budget, same seeds, matched hyperparameters, this package vs SB3 DDPG; (2) the wall time "
        "of those runs; (3) training updates per second on a prefilled replay, sampling included; "
        "(4) lockstep env steps/s through ROS 2 vs in-process, control latency, and missed periods "
        "at 500 Hz in real time; (5) resident memory of a filled 1e6-transition replay; (6) a "
        "real-time control loop's late ticks and latency with the learner on vs off; (7) with "
        "CUDA: updates/s as a CUDA graph vs eager vs SB3, the loop beside a GPU learner, "
        "Pendulum-v1 on the GPU vs the CPU; (8) as root: lockstep training with its two nodes "
        "in two network namespaces joined by a veth, and the DDS bytes/s across it.\n",
    ]
    body: list[str] = []
    targets: list[tuple[str, str, str, str]] = []
    lr = load_result("learning", tag)
    if lr:
        o, t = learning_section(tag, lr)
        body += o
        targets += t
    for name, section in SECTIONS:
        data = load_result(name, tag)
        if data:
            o, t = section(data)
            body += o
            targets += t
    parts.append("## Targets\n")
    parts.append("| target | measured | goal | result |")
    parts.append("|---|---|---|---|")
    parts.extend(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets)
    parts.append("")
    runtime = load_result("runtime", tag)
    if runtime:
        parts.append(
            "Run time of the benchmarks that produced this file: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in runtime.items())
            + ".\n"
        )
    # Causes of misses and suggested changes, written by hand after looking at the numbers.
    findings = RESULTS / f"{tag}-findings.md"
    if findings.exists():
        parts.append(findings.read_text())
    path = RESULTS / f"{tag}.md"
    path.write_text("\n".join(parts + body) + "\n")
    print(f"[bench] wrote {path}", flush=True)
    return path
