"""What a run's video costs: ``python -m bench video [--tasks T,..] [--episodes N] [--repeats R]``.

For each task, the episodes a training run films at its end (``video_episodes``, 3 by default),
acted by an untrained actor of the package's default network, measured side by side in this
process: the episodes alone (physics and policy, no frames), the same episodes filmed
(``sim.video.record_episodes``: PyBullet's offscreen CPU renderer, 160x120), and encoding them
(``write_video``: H.264 MP4 through imageio-ffmpeg). The median of ``repeats`` is reported, with
the MP4's size. Writes ``bench/results/<tag>-video.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import common


def _policy(task):
    """The default network, untrained: what a run's first periodic video would show."""
    from ddpg_controller.learning.config import DDPGConfig
    from ddpg_controller.learning.ddpg import DDPG

    agent = DDPG(
        task.observation_dim, task.action_dim, task.action_low, task.action_high, DDPGConfig()
    )
    return lambda observation: agent.act(observation, explore=False)


def _plain_episodes(task, act, episodes: int, seed: int) -> None:
    from ddpg_controller.sim.envs import RobotEnv

    env = RobotEnv(task)
    try:
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            for _ in range(task.max_episode_steps):
                observation, _, terminated, truncated, _ = env.step(act(observation))
                if terminated or truncated:
                    break
    finally:
        env.close()


def measure(task_name: str, episodes: int, repeats: int) -> dict:
    from ddpg_controller.sim.video import record_episodes, write_video
    from ddpg_controller.tasks import load_task

    task = load_task(task_name)
    act = _policy(task)
    plain, record, write, sizes, frames = [], [], [], [], 0
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(repeats):
            start = time.perf_counter()
            _plain_episodes(task, act, episodes, seed=0)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            shots, fps = record_episodes(task, act, episodes, seed=0)
            record.append(time.perf_counter() - start)
            start = time.perf_counter()
            path = write_video(Path(directory) / "rollout.mp4", shots, fps)
            write.append(time.perf_counter() - start)
            sizes.append(path.stat().st_size)
            frames = len(shots)
    plain_s, record_s, write_s = (statistics.median(v) for v in (plain, record, write))
    return {
        "task": task_name,
        "episodes": episodes,
        "frames": frames,
        "fps": fps,
        "container": path.suffix,
        "plain_s": plain_s,
        "record_s": record_s,
        "write_s": write_s,
        "video_s": record_s + write_s,
        "added_s": record_s + write_s - plain_s,
        "ratio": (record_s + write_s) / plain_s,
        "render_ms_per_frame": 1e3 * (record_s - plain_s) / frames,
        "bytes": int(statistics.median(sizes)),
    }


def report(data: dict) -> str:
    lines = [
        f"# What a run's video costs ({data['tag']})",
        "",
        f"`python -m bench video --episodes {data['episodes']} --repeats {data['repeats']}` on "
        f"{data['machine']['cpu']} ({data['machine']['usable_cores']} usable cores, shared with "
        "other work), torch "
        f"{data['machine']['torch']}, pybullet {data['machine']['pybullet']}. Median of "
        f"{data['repeats']} repeats, side by side in one process: the episodes without frames, "
        "filmed (PyBullet ER_TINY_RENDERER, 160x120), and encoded (H.264 through imageio-ffmpeg).",
        "",
        "| task | frames (fps) | episodes alone | filmed | encoded | video in all | added | "
        "× episodes alone | render per frame | file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["tasks"]:
        lines.append(
            f"| {r['task']} | {r['frames']} ({r['fps']:.0f}) | {r['plain_s']:.2f} s | "
            f"{r['record_s']:.2f} s | {r['write_s']:.2f} s | {r['video_s']:.2f} s | "
            f"{r['added_s']:.2f} s | × {r['ratio']:.1f} | {r['render_ms_per_frame']:.1f} ms | "
            f"{r['bytes'] / 1e3:.0f} kB {r['container']} |"
        )
    lines += [
        "",
        "*added*: what filming and encoding cost beyond running the same episodes; a run pays "
        "*video in all* once at its end (the final video is of the exported policy, after the "
        "final evaluation), and again per `video_every_steps` in a background thread. "
        "`./run train --no-video` (or `video: false`) skips it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ddpg_controller.tasks import builtin_task_names

    parser = argparse.ArgumentParser(prog="python -m bench video", description=__doc__)
    parser.add_argument("--tasks", help="comma-separated tasks (default: every built-in task)")
    parser.add_argument("--episodes", type=int, default=3, help="per video (default 3)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tag", help="results file tag (default: today's UTC date)")
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",") if args.tasks else builtin_task_names()
    tag = args.tag or common.today()
    data = {
        "tag": tag,
        "episodes": args.episodes,
        "repeats": args.repeats,
        "machine": common.machine_info(),
        "tasks": [],
    }
    for task in tasks:
        result = measure(task, args.episodes, args.repeats)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()})
        data["tasks"].append(result)
    common.save_result("video", data, tag)
    out = common.RESULTS / f"{tag}-video.md"
    out.write_text(report(data))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
