"""The training schedule: when to evaluate, checkpoint and finish, counted in training env steps.

One home for the rule both training loops follow (the controller node at each training episode's
end, ``training.train`` after every step): a periodic deterministic evaluation every
``eval_every`` steps, a checkpoint every ``checkpoint_every`` steps, a video of the policy every
``video_every`` steps, and once ``total_steps`` are
done the final evaluation, after which the caller checkpoints and exports. The schedule decides;
the caller runs the episodes, writes the files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Due:
    """What is due now."""

    checkpoint: bool = False
    evaluation: bool = False  # a periodic evaluation
    final: bool = False  # training is over: the final evaluation, then checkpoint and export
    video: bool = False  # a periodic video of the current deterministic policy


class TrainingSchedule:
    """Thresholds that advance as training passes them; 0 for an interval means never."""

    def __init__(
        self, total_steps: int, eval_every: int, checkpoint_every: int = 0, video_every: int = 0
    ) -> None:
        self.total_steps = total_steps
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.video_every = video_every
        self.next_eval: float = eval_every or math.inf
        self.next_checkpoint: float = checkpoint_every or math.inf
        self.next_video: float = video_every or math.inf

    def resume(self, env_steps: int) -> None:
        """Continue after ``env_steps`` steps: the next thresholds are the multiples after it."""
        if self.eval_every:
            self.next_eval = (env_steps // self.eval_every + 1) * self.eval_every
        if self.checkpoint_every:
            self.next_checkpoint = (env_steps // self.checkpoint_every + 1) * self.checkpoint_every
        if self.video_every:
            self.next_video = (env_steps // self.video_every + 1) * self.video_every

    def due(self, env_steps: int) -> Due:
        """What ``env_steps`` training steps make due; each threshold fires once."""
        checkpoint = env_steps >= self.next_checkpoint
        if checkpoint:
            self.next_checkpoint += self.checkpoint_every
        if env_steps >= self.total_steps:
            return Due(checkpoint=checkpoint, final=True)
        evaluation = env_steps >= self.next_eval
        if evaluation:
            self.next_eval += self.eval_every
        video = env_steps >= self.next_video
        if video:
            self.next_video += self.video_every
        return Due(checkpoint=checkpoint, evaluation=evaluation, video=video)
