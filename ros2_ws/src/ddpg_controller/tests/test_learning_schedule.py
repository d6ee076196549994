"""The one training schedule of the controller node and training.train: periodic evaluations,
checkpoints, the final evaluation, and resuming in the middle."""

from __future__ import annotations

from ddpg_controller.learning.schedule import Due, TrainingSchedule


def test_episode_ends_trigger_each_threshold_once() -> None:
    schedule = TrainingSchedule(total_steps=1000, eval_every=300, checkpoint_every=500)
    # Episode ends every 200 steps, as the controller node sees them.
    seen = {step: schedule.due(step) for step in range(200, 1001, 200)}
    assert seen[200] == Due()
    assert seen[400] == Due(evaluation=True)  # passed 300
    assert seen[600] == Due(checkpoint=True, evaluation=True)  # passed 500 and 600
    assert seen[800] == Due()  # the next evaluation is at 900
    assert seen[1000] == Due(checkpoint=True, final=True)  # no periodic evaluation at the end


def test_every_step_callers_and_disabled_intervals() -> None:
    schedule = TrainingSchedule(total_steps=400, eval_every=100)
    evaluations = [step for step in range(1, 401) if schedule.due(step).evaluation]
    assert evaluations == [100, 200, 300]  # 400 is the final evaluation, not a periodic one
    never = TrainingSchedule(total_steps=50, eval_every=0, checkpoint_every=0)
    assert not any(never.due(step).evaluation or never.due(step).checkpoint for step in range(50))


def test_resume_continues_with_the_next_multiples() -> None:
    schedule = TrainingSchedule(total_steps=10_000, eval_every=2000, checkpoint_every=5000)
    schedule.resume(4321)
    assert schedule.due(5999) == Due(checkpoint=True)
    assert schedule.due(6000) == Due(evaluation=True)


def test_periodic_videos_fire_once_per_interval_and_not_at_the_end() -> None:
    schedule = TrainingSchedule(total_steps=1000, eval_every=0, video_every=400)
    videos = [step for step in range(200, 1001, 200) if schedule.due(step).video]
    assert videos == [400, 800]  # at 1000 the final video comes with the exported policy
    schedule.resume(500)
    assert not schedule.due(799).video and schedule.due(800).video
