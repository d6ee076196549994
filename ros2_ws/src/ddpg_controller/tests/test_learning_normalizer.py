"""Running observation statistics against numpy, under threads, frozen and restored."""

from __future__ import annotations

import threading

import numpy as np

from ddpg_controller.learning.normalizer import FrozenNormalizer, RunningNormalizer


def test_matches_numpy_over_mixed_batches() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([5.0, -3.0, 1000.0], [0.1, 4.0, 50.0], size=(1000, 3))
    norm = RunningNormalizer(3)
    i = 0
    for size in [1, 7, 100, 1, 250, 3, 638]:
        chunk = data[i : i + size]
        norm.update(chunk[0] if size == 1 else chunk)
        i += size
    assert i == len(data) and norm.count == 1000
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.var, data.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(norm.std, data.std(axis=0), rtol=1e-6)
    z = norm.normalize(data)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)


def test_clip_and_empty_defaults() -> None:
    norm = RunningNormalizer(2, clip=5.0)
    np.testing.assert_allclose(norm.normalize(np.array([3.0, -2.0])), [3.0, -2.0], atol=1e-6)
    norm.update(np.array([[0.0, 0.0], [2.0, 2.0]]))
    assert norm.normalize(np.array([100.0, -100.0])).tolist() == [5.0, -5.0]
    ident = FrozenNormalizer.identity(2)
    assert ident.normalize(np.array([1e6, -3.0])).tolist() == [1e6, -3.0]


def test_thread_safe_updates() -> None:
    rng = np.random.default_rng(1)
    chunks = [rng.normal(size=(20, 4)) for _ in range(400)]
    norm = RunningNormalizer(4)

    def work(part: list[np.ndarray]) -> None:
        for c in part:
            norm.update(c)
            norm.frozen()

    threads = [threading.Thread(target=work, args=(chunks[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = np.concatenate(chunks)
    assert norm.count == len(data)
    np.testing.assert_allclose(norm.mean, data.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(norm.var, data.var(axis=0), rtol=1e-9)


def test_frozen_copy_and_state_round_trip() -> None:
    norm = RunningNormalizer(2)
    norm.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    frozen = norm.frozen()
    norm.update(np.array([[100.0, 100.0]]))
    np.testing.assert_array_equal(frozen.mean, [2.0, 4.0])  # unaffected by later updates
    restored = RunningNormalizer(2)
    restored.load_state_dict(norm.state_dict())
    assert restored.count == 3
    np.testing.assert_array_equal(restored.mean, norm.mean)
    np.testing.assert_array_equal(restored.m2, norm.m2)
