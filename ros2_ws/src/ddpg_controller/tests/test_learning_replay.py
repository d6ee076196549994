"""Replay ring buffer: wrap-around, uniform sampling, two-thread safety, state round trip."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ddpg_controller.learning.replay import ReplayBuffer


def add_encoded(buf: ReplayBuffer, i: int) -> None:
    """A transition whose every field derives from counter i (exact in float32)."""
    buf.add(
        np.array([i, -i], np.float32),
        np.array([i * 0.5], np.float32),
        float(2 * i),
        np.array([i + 1, -(i + 1)], np.float32),
        i % 2 == 1,
    )


def assert_consistent(sample) -> np.ndarray:
    i = sample.obs[:, 0]
    assert np.array_equal(sample.obs[:, 1], -i)
    assert np.array_equal(sample.actions[:, 0], i * 0.5)
    assert np.array_equal(sample.rewards[:, 0], 2 * i)
    assert np.array_equal(sample.next_obs[:, 0], i + 1)
    assert np.array_equal(sample.next_obs[:, 1], -(i + 1))
    assert np.array_equal(sample.terminated[:, 0], (i % 2 == 1).astype(np.float32))
    return i


def test_wrap_around_keeps_newest() -> None:
    buf = ReplayBuffer(2, 1, capacity=5, seed=0)
    assert len(buf) == 0
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    for i in range(7):
        add_encoded(buf, i)
    assert len(buf) == 5 and buf.pos == 2 and buf.total_added == 7
    assert sorted(buf.obs[:, 0].tolist()) == [2, 3, 4, 5, 6]
    assert buf.obs[1, 0] == 6  # last written row
    s = buf.sample(4000)
    i = assert_consistent(s)
    counts = np.bincount(i.astype(int), minlength=7)
    assert counts[:2].sum() == 0
    assert np.all(np.abs(counts[2:] - 800) < 120)  # uniform over the 5 stored rows
    assert s.rewards.shape == (4000, 1) and s.obs.dtype == np.float32


def test_state_round_trip_after_wrap() -> None:
    buf = ReplayBuffer(2, 1, capacity=5, seed=0)
    for i in range(8):
        add_encoded(buf, i)
    fresh = ReplayBuffer(2, 1, capacity=5, seed=1)
    fresh.load_state_dict(buf.state_dict())
    assert len(fresh) == 5 and fresh.total_added == 8
    a, b = buf.sample(50), fresh.sample(50)  # same layout and rng state: same batch
    assert np.array_equal(a.obs, b.obs) and np.array_equal(a.terminated, b.terminated)
    add_encoded(fresh, 8)  # continues overwriting the oldest (3)
    assert sorted(fresh.obs[:, 0].tolist()) == [4, 5, 6, 7, 8]
    smaller = ReplayBuffer(2, 1, capacity=3, seed=1)
    smaller.load_state_dict(buf.state_dict())  # keeps the newest rows that fit
    assert smaller.obs[:, 0].tolist() == [5, 6, 7] and smaller.pos == 0
    add_encoded(smaller, 8)
    assert smaller.obs[:, 0].tolist() == [8, 6, 7]
    partial = ReplayBuffer(2, 1, capacity=5, seed=1)
    for i in range(3):
        add_encoded(partial, i)
    bigger = ReplayBuffer(2, 1, capacity=10)
    bigger.load_state_dict(partial.state_dict())
    assert len(bigger) == 3 and bigger.pos == 3 and bigger.obs[:3, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="dims"):
        ReplayBuffer(3, 1, 5).load_state_dict(buf.state_dict())


def test_two_thread_hammer_no_torn_or_lost_transitions() -> None:
    capacity, total = 1000, 60000
    buf = ReplayBuffer(2, 1, capacity=capacity, seed=0)
    add_encoded(buf, 0)
    done, started = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    stats = {"samples": 0, "max_seen": 0.0}

    def sampler() -> None:
        try:
            while not done.is_set():
                started.set()
                i = assert_consistent(buf.sample(64))
                stats["samples"] += 1
                stats["max_seen"] = max(stats["max_seen"], float(i.max()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sampler)
    thread.start()
    assert started.wait(timeout=10)
    try:
        for i in range(1, total):
            add_encoded(buf, i)
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert stats["samples"] > 10 and stats["max_seen"] > capacity  # really ran concurrently
    assert len(buf) == capacity and buf.total_added == total
    assert buf.obs[(buf.pos - 1) % capacity, 0] == total - 1  # last written row
    assert sorted(buf.obs[:, 0].astype(int).tolist()) == list(range(total - capacity, total))
    assert_consistent(buf.sample(capacity * 5))
