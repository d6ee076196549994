"""Exploration noise: OU stationary statistics, reset, checkpointable state, schedule."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_controller.learning.config import NoiseConfig
from ddpg_controller.learning.noise import (
    GaussianNoise,
    LinearSchedule,
    OrnsteinUhlenbeckNoise,
    make_noise,
)


def test_ou_long_run_variance_discrete_paper_parameters() -> None:
    """x_{t+1} = x_t (1 - theta dt) + sigma sqrt(dt) eps has stationary variance
    sigma^2 dt / (1 - (1 - theta dt)^2): 0.04 / 0.2775 = 0.1441 for theta 0.15, sigma 0.2, dt 1
    (the continuous-time sigma^2 / (2 theta) = 0.1333 is the dt -> 0 limit)."""
    noise = OrnsteinUhlenbeckNoise(size=2000, theta=0.15, sigma=0.2, dt=1.0, seed=0)
    expected = 0.2**2 * 1.0 / (1 - (1 - 0.15) ** 2)
    assert noise.stationary_variance() == pytest.approx(expected)
    for _ in range(200):  # burn-in: (0.85)^200 ~ 1e-14
        noise()
    samples = np.stack([noise() for _ in range(200)])  # 400k draws, autocorrelated in time
    assert samples.mean() == pytest.approx(0.0, abs=0.01)
    assert samples.var() == pytest.approx(expected, rel=0.03)


def test_ou_small_dt_approaches_continuous_variance() -> None:
    theta, sigma, dt = 0.15, 0.2, 0.05
    noise = OrnsteinUhlenbeckNoise(size=20000, theta=theta, sigma=sigma, dt=dt, seed=1)
    for _ in range(3000):  # (1 - theta dt)^6000 ~ 1e-20: stationary
        x = noise()
    discrete = sigma**2 * dt / (1 - (1 - theta * dt) ** 2)
    assert discrete == pytest.approx(sigma**2 / (2 * theta), rel=0.01)
    assert x.var() == pytest.approx(discrete, rel=0.04)


def test_ou_is_correlated_and_resets_to_mu() -> None:
    noise = OrnsteinUhlenbeckNoise(size=1, theta=0.15, sigma=0.2, mu=0.5, seed=0)
    xs = np.array([noise()[0] for _ in range(20000)])
    lag1 = np.corrcoef(xs[:-1], xs[1:])[0, 1]
    assert lag1 == pytest.approx(0.85, abs=0.03)  # AR(1) coefficient 1 - theta dt
    assert xs.mean() == pytest.approx(0.5, abs=0.05)
    noise.reset()
    assert noise.x.tolist() == [0.5]


def test_noise_state_round_trip_reproduces_sequence() -> None:
    for noise in (OrnsteinUhlenbeckNoise(3, seed=4), GaussianNoise(3, 0.1, seed=4)):
        for _ in range(5):
            noise()
        state = noise.state_dict()
        expected = [noise() for _ in range(5)]
        fresh = type(noise)(3, seed=99)
        fresh.load_state_dict(state)
        assert np.array_equal(np.stack([fresh() for _ in range(5)]), np.stack(expected))


def test_gaussian_std() -> None:
    noise = GaussianNoise(size=100000, sigma=0.1, seed=0)
    x = noise()
    assert x.std() == pytest.approx(0.1, rel=0.02) and x.mean() == pytest.approx(0, abs=0.002)


def test_linear_schedule() -> None:
    s = LinearSchedule(1.0, 0.2, 100)
    assert [s(0), s(50), s(100), s(1000)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert LinearSchedule(0.7, 0.1, 0)(12345) == 0.7  # 0 steps: constant


def test_make_noise() -> None:
    assert isinstance(make_noise(NoiseConfig(type="ou"), 2, 0), OrnsteinUhlenbeckNoise)
    assert isinstance(make_noise(NoiseConfig(type="gaussian"), 2, 0), GaussianNoise)
    assert make_noise(NoiseConfig(type="none"), 2, 0) is None
