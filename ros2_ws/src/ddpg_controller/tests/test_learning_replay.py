"""Replay on the learner's device: staging and flush, wrap-around, uniform device-side sampling,
a control thread adding beside a learner thread, state round trip."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from ddpg_controller.learning.replay import ReplayBuffer

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ),
]


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
    obs, actions, rewards, next_obs, terminated = (t.cpu().numpy() for t in sample)
    i = obs[:, 0]
    assert np.array_equal(obs[:, 1], -i)
    assert np.array_equal(actions[:, 0], i * 0.5)
    assert np.array_equal(rewards[:, 0], 2 * i)
    assert np.array_equal(next_obs[:, 0], i + 1)
    assert np.array_equal(next_obs[:, 1], -(i + 1))
    assert np.array_equal(terminated[:, 0], (i % 2 == 1).astype(np.float32))
    return i


def stored(buf: ReplayBuffer, column: int = 0) -> list[float]:
    return buf.field("obs")[:, column].cpu().tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_wrap_around_keeps_newest(device: str) -> None:
    buf = ReplayBuffer(2, 1, capacity=5, seed=0, device=device)
    assert len(buf) == 0
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)
    for i in range(7):
        add_encoded(buf, i)
    assert len(buf) == 5 and buf.total_added == 7  # staged rows count before the flush
    assert buf.flush() == 7 and buf.flush() == 0
    assert buf.pos == 2 and buf.size == 5
    assert sorted(stored(buf)) == [2, 3, 4, 5, 6]
    assert stored(buf)[1] == 6  # last written row
    s = buf.sample(4000)
    assert s.obs.device.type == device and s.rewards.shape == (4000, 1)
    i = assert_consistent(s)
    counts = np.bincount(i.astype(int), minlength=7)
    assert counts[:2].sum() == 0
    assert np.all(np.abs(counts[2:] - 800) < 120)  # uniform over the 5 stored rows


def test_staging_grows_instead_of_dropping() -> None:
    """A learner that falls behind loses nothing: staging grows past its initial rows."""
    buf = ReplayBuffer(2, 1, capacity=100, seed=0, staging_rows=4)
    for i in range(30):
        add_encoded(buf, i)
    buf.flush()
    assert stored(buf) == list(range(30))
    for i in range(30, 130):  # more than a whole buffer staged: the newest 100 survive
        add_encoded(buf, i)
    buf.flush()
    assert sorted(stored(buf)) == list(range(30, 130)) and buf.pos == 30


def test_sampling_follows_the_seed_only() -> None:
    a, b = (ReplayBuffer(2, 1, capacity=50, seed=3) for _ in range(2))
    for i in range(40):
        add_encoded(a, i)
        add_encoded(b, i)
    b.flush()  # when the rows moved to storage does not change the batches
    assert torch.equal(a.sample(64).obs, b.sample(64).obs)
    other = ReplayBuffer(2, 1, capacity=50, seed=4)
    for i in range(40):
        add_encoded(other, i)
    assert not torch.equal(a.sample(64).obs, other.sample(64).obs)


def test_state_round_trip_after_wrap() -> None:
    buf = ReplayBuffer(2, 1, capacity=5, seed=0)
    for i in range(8):
        add_encoded(buf, i)
    fresh = ReplayBuffer(2, 1, capacity=5, seed=1)
    fresh.load_state_dict(buf.state_dict())
    assert len(fresh) == 5 and fresh.total_added == 8
    a, b = buf.sample(50), fresh.sample(50)  # same layout and generator state: same batch
    assert torch.equal(a.obs, b.obs) and torch.equal(a.terminated, b.terminated)
    add_encoded(fresh, 8)  # continues overwriting the oldest (3)
    assert sorted(stored(fresh)) == [4, 5, 6, 7, 8]
    smaller = ReplayBuffer(2, 1, capacity=3, seed=1)
    smaller.load_state_dict(buf.state_dict())  # keeps the newest rows that fit
    assert stored(smaller) == [5, 6, 7] and smaller.pos == 0
    add_encoded(smaller, 8)
    assert stored(smaller) == [8, 6, 7]
    partial = ReplayBuffer(2, 1, capacity=5, seed=1)
    for i in range(3):
        add_encoded(partial, i)
    bigger = ReplayBuffer(2, 1, capacity=10)
    bigger.load_state_dict(partial.state_dict())
    assert len(bigger) == 3 and bigger.pos == 3 and stored(bigger) == [0, 1, 2]
    with pytest.raises(ValueError, match="dims"):
        ReplayBuffer(3, 1, 5).load_state_dict(buf.state_dict())


@pytest.mark.parametrize("device", DEVICES)
def test_control_thread_adds_while_learner_samples(device: str) -> None:
    """The control thread adds; the learner thread flushes and samples: no torn or lost rows."""
    capacity, total = 1000, 30000
    buf = ReplayBuffer(2, 1, capacity=capacity, seed=0, device=device, staging_rows=16)
    add_encoded(buf, 0)
    done, started = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    stats = {"samples": 0, "max_seen": 0.0}

    def learner() -> None:
        try:
            while not done.is_set():
                started.set()
                i = assert_consistent(buf.sample(64))
                stats["samples"] += 1
                stats["max_seen"] = max(stats["max_seen"], float(i.max()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=learner)
    thread.start()
    assert started.wait(timeout=10)
    try:
        for i in range(1, total):
            add_encoded(buf, i)
            if i % 1000 == 0:  # let the learner in: under the GIL this thread may run alone
                seen, deadline = stats["samples"], time.monotonic() + 5.0
                while stats["samples"] == seen and time.monotonic() < deadline:
                    time.sleep(0.0005)
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert stats["samples"] > 10 and stats["max_seen"] > capacity  # really ran concurrently
    buf.flush()
    assert len(buf) == capacity and buf.total_added == total
    assert stored(buf)[(buf.pos - 1) % capacity] == total - 1  # last written row
    assert sorted(int(v) for v in stored(buf)) == list(range(total - capacity, total))
    assert_consistent(buf.sample(capacity * 5))
