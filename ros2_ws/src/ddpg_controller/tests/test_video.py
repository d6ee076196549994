"""Videos of a policy: offscreen frames from the simulator that change nothing it simulates, an MP4
a person can open, and a GIF where there is no ffmpeg."""

from __future__ import annotations

import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np

from ddpg_controller.sim.envs import RobotEnv
from ddpg_controller.sim.video import record_episodes, write_video


def test_rendering_moves_nothing_and_the_frames_show_the_motion() -> None:
    """The reacher, whose goal render() marks with a sphere: the same seed and actions give the
    same states with and without frames, and the frames differ as the arm moves."""
    plain, filmed = RobotEnv("reacher"), RobotEnv("reacher", render_mode="rgb_array")
    actions = np.random.default_rng(0).uniform(-0.1, 0.1, (40, 2))
    plain.reset(seed=3)
    filmed.reset(seed=3)
    first = filmed.render()
    for action in actions:
        expected, *_ = plain.step(action)
        observation, *_ = filmed.step(action)
        frame = filmed.render()
        np.testing.assert_array_equal(observation, expected)
    assert first.shape == frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert np.count_nonzero(np.any(first != frame, axis=2)) > 20, "the arm did not move on screen"
    assert np.count_nonzero(np.all(frame == 255, axis=2)) < frame.shape[0] * frame.shape[1]
    assert RobotEnv("reacher").render() is None  # no render mode: no frame, as gymnasium's


def test_a_few_episodes_become_an_mp4_that_plays_in_real_time(tmp_path) -> None:
    frames, fps = record_episodes("pendulum", lambda observation: np.zeros(1), episodes=2)
    assert fps == 20.0  # the pendulum's 20 Hz control rate, every period a frame
    assert len(frames) == 2 * (200 + 1)  # each episode's reset and its 200 steps
    path = write_video(tmp_path / "rollout.mp4", frames, fps)
    assert path == tmp_path / "rollout.mp4"
    video = iio.imread(path, plugin="FFMPEG")
    assert video.shape == (len(frames), 120, 160, 3)
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == 20.0
    assert path.stat().st_size < 200_000, path.stat().st_size


def test_without_ffmpeg_the_video_is_a_gif(tmp_path) -> None:
    code = (
        "import sys, numpy as np; from pathlib import Path; "
        "from ddpg_controller.sim.video import write_video; "
        "frames = [np.full((120, 160, 3), 40 * i, np.uint8) for i in range(5)]; "
        "print(write_video(Path(sys.argv[1]), frames, 10.0))"
    )
    env = {**os.environ, "IMAGEIO_FFMPEG_EXE": str(tmp_path / "no-ffmpeg")}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "rollout.mp4")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "rollout.gif")
    assert not (tmp_path / "rollout.mp4").exists()
    assert iio.imread(tmp_path / "rollout.gif").shape[:3] == (5, 120, 160)
