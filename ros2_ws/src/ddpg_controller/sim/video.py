"""Videos of a policy in the simulator, as SB3's ``VecVideoRecorder``, CleanRL's
``--capture-video`` and Isaac Lab's ``--video`` write them: a few episodes, offscreen
(PyBullet's CPU renderer, no display or GPU), small frames, an MP4 a person can open.

The simulator renders and nothing here imports torch: the policy is any ``act(observation) ->
action`` (an exported ``policy.pt``, a learner's acting copy). MP4 needs an ``ffmpeg``
(imageio-ffmpeg ships one); where there is none, a GIF is written instead.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ddpg_controller.learning.atomic import atomic_write
from ddpg_controller.tasks import Task

from .envs import RobotEnv
from .robot import SimulatedRobot

__all__ = ["FRAME_SIZE", "MAX_FPS", "MAX_FRAMES", "Recorder", "record_episodes", "write_video"]

FRAME_SIZE = (160, 120)  # width, height: small, a few kB per second of MP4
MAX_FPS = 30  # a 500 Hz task is shown at every 17th control period
MAX_FRAMES = 1800  # a recording keeps its last minute at 30 fps (~100 MB of frames)


class Recorder:
    """Frames of a running :class:`SimulatedRobot`, one every ``every`` control periods (so
    that at most ``MAX_FPS`` frames show one second), the last ``MAX_FRAMES`` of them."""

    def __init__(self, robot: SimulatedRobot, size: tuple[int, int] = FRAME_SIZE) -> None:
        self.robot = robot
        self.size = size
        self.every = max(1, math.ceil(1.0 / (robot.task.control_period * MAX_FPS)))
        self.fps = 1.0 / (robot.task.control_period * self.every)
        self.frames: deque[np.ndarray] = deque(maxlen=MAX_FRAMES)
        self._periods = 0

    def capture(self, force: bool = False) -> None:
        """After a control period (``force``: also off the frame interval, e.g. a reset)."""
        if force or self._periods % self.every == 0:
            self.frames.append(self.robot.render(*self.size))
        self._periods += 1

    def write(self, path: Path) -> Path | None:
        """The video so far (see :func:`write_video`); None when no frame was captured."""
        return write_video(path, self.frames, self.fps) if self.frames else None


def record_episodes(
    task: Task | str,
    act: Callable[[np.ndarray], np.ndarray],
    episodes: int = 3,
    seed: int = 0,
    size: tuple[int, int] = FRAME_SIZE,
) -> tuple[list[np.ndarray], float]:
    """Frames of ``episodes`` episodes (seeds ``seed``, ``seed + 1``, ...) acted by ``act``, and
    the frame rate that plays them in real time."""
    env = RobotEnv(task, render_mode="rgb_array", render_size=size)
    recorder = Recorder(env.robot, size)
    try:
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            recorder.capture(force=True)
            for _ in range(env.task.max_episode_steps):
                observation, _, terminated, truncated, _ = env.step(act(observation))
                recorder.capture(force=terminated or truncated)
                if terminated or truncated:
                    break
    finally:
        env.close()
    return list(recorder.frames), recorder.fps


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """``path`` as an H.264 MP4, or beside it as a GIF (``path.with_suffix(".gif")``) where
    imageio finds no ffmpeg; encoded in memory and written atomically, so a reader never sees
    half a video. Returns the file written."""
    import imageio.v3 as iio

    frames = np.stack(frames)
    try:
        data = iio.imwrite(
            "<bytes>", frames, extension=".mp4", plugin="FFMPEG", fps=fps, macro_block_size=8
        )
        target = path.with_suffix(".mp4")
    except (ImportError, RuntimeError, OSError):  # no imageio-ffmpeg, or no ffmpeg binary
        data = iio.imwrite(
            "<bytes>", frames, extension=".gif", plugin="pillow", duration=1e3 / fps, loop=0
        )
        target = path.with_suffix(".gif")
    atomic_write(target, lambda handle: handle.write(data))
    return target
