"""The final end-effector-goal distance of exported policies on a reach task (gymnasium env).

    python -m bench.reach_distance --task panda_reach runs/*/policy.pt

Each policy runs ``--episodes`` deterministic episodes (μ(s), no noise; episode i resets with seed
``--seed + i``), the same for every policy; prints the mean and largest distance at the episode's
end, and the mean return. The issue's bar for the Panda: mean final distance < 5 cm.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def final_distances(task: str, policy_file: str, episodes: int, seed: int) -> tuple[list, list]:
    from ddpg_controller.learning.export import load_policy
    from ddpg_controller.sim import RobotEnv

    policy = load_policy(policy_file)
    env = RobotEnv(task)
    distances, returns = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += reward
            done = terminated or truncated
        signals = env.state.signals
        distances.append(float(np.linalg.norm(signals["end_effector"] - signals["goal"])))
        returns.append(total)
    env.close()
    return distances, returns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policies", nargs="+")
    parser.add_argument("--task", default="panda_reach", help="built-in task or spec file")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000)
    args = parser.parse_args(argv)
    for path in args.policies:
        distances, returns = final_distances(args.task, path, args.episodes, args.seed)
        print(
            f"{path}: final distance mean {100 * np.mean(distances):.2f} cm, max "
            f"{100 * np.max(distances):.2f} cm over {len(distances)} episodes; "
            f"return {np.mean(returns):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
