"""The deploy node's safety layer on its own (no ROS): limits, rate limit, stamps, faults."""

from __future__ import annotations

import numpy as np
import pytest

from ddpg_controller.safety import SafetyConfig, SafetyLayer, Verdict

PERIOD = 0.05
P_NS = 50_000_000


def make(max_delta=None, **kwargs) -> SafetyLayer:
    config = SafetyConfig.build(
        2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "effort", max_delta=max_delta, **kwargs
    )
    layer = SafetyLayer(config)
    layer.start(now=0.0)
    return layer


def test_defaults_come_from_the_policy_and_the_control_period() -> None:
    config = SafetyConfig.build(2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "velocity")
    assert config.low.tolist() == [-2.0, -1.0] and config.high.tolist() == [2.0, 1.0]
    assert config.safe_command.tolist() == [0.0, 0.0]
    assert config.state_timeout == pytest.approx(3 * PERIOD)
    assert np.all(np.isinf(config.max_delta))  # None: no rate limit
    override = SafetyConfig.build(
        2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "effort", [-0.5], [0.5], [0.1, 0.0], [0.2], 0.5
    )
    assert override.low.tolist() == [-0.5, -0.5] and override.high.tolist() == [0.5, 0.5]
    assert override.max_delta[0] == 0.1 and np.isinf(override.max_delta[1])  # <= 0: off
    assert override.safe_command.tolist() == [0.2, 0.2] and override.state_timeout == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command_low": [1.0], "command_high": [0.0]}, "high > low"),
        ({"command_low": [-1.0, -1.0, -1.0]}, "command_low has 3 values"),
        ({"safe_command": [5.0]}, "within the command limits"),
        ({"safe_command": [float("nan")]}, "finite"),
        ({"max_delta": [0.1, 0.1, 0.1]}, "max_delta has 3 values"),
    ],
)
def test_bad_configuration_says_what_is_wrong(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SafetyConfig.build(2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "effort", **kwargs)


def test_position_interface_holds_the_measured_position_by_default() -> None:
    config = SafetyConfig.build(1, [-1.0], [1.0], PERIOD, "position")
    assert config.safe_command is None  # hold the measured position, never "go to zero"
    layer = SafetyLayer(config)
    layer.start(now=0.0)
    assert layer.safe() is None  # nothing measured yet: publish nothing
    assert layer.check_state(1, now=0.0, position=np.array([0.4]), velocity=np.zeros(1))[0] is (
        Verdict.ACT
    )
    assert layer.safe().tolist() == [0.4]
    explicit = SafetyConfig.build(1, [-1.0], [1.0], PERIOD, "position", safe_command=[0.3])
    assert explicit.safe_command.tolist() == [0.3]


def test_commands_are_clipped_to_the_limits() -> None:
    layer = make()
    command, reason = layer.command(np.array([5.0, -7.0]), P_NS)
    assert command.tolist() == [2.0, -1.0] and reason == ""


def test_rate_limit_per_control_period_scaled_by_stamp_spacing() -> None:
    layer = make(max_delta=[0.5, 0.25])
    first, _ = layer.command(np.array([2.0, 1.0]), P_NS)  # ramps from the safe command
    assert first.tolist() == [0.5, 0.25]
    second, _ = layer.command(np.array([2.0, 1.0]), 2 * P_NS)
    assert second.tolist() == [1.0, 0.5]
    # A state 1/10 period later may move the command 1/10 of max_delta: bursts cannot speed it up.
    third, _ = layer.command(np.array([-2.0, -1.0]), 2 * P_NS + P_NS // 10)
    assert third == pytest.approx([0.95, 0.475])
    # After the safe command the ramp restarts from it.
    assert layer.safe().tolist() == [0.0, 0.0]
    after, _ = layer.command(np.array([-2.0, -1.0]), 3 * P_NS)
    assert after.tolist() == [-0.5, -0.25]


def test_duplicate_and_out_of_order_stamps_are_ignored() -> None:
    layer = make()
    ok = np.zeros(2)
    assert layer.check_state(10, ok, now=0.0)[0] is Verdict.ACT
    assert layer.check_state(10, ok, now=0.0) == (
        Verdict.IGNORE,
        "duplicate state stamp 10 (last 10) ignored",
    )
    assert layer.check_state(5, ok, now=0.0)[0] is Verdict.IGNORE
    assert layer.check_state(11, ok, now=0.0)[0] is Verdict.ACT
    layer.start(now=1.0)  # a reactivation forgets the order (a robot whose clock restarted)
    assert layer.check_state(1, ok, now=1.0)[0] is Verdict.ACT


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_and_outputs_give_the_safe_command(bad) -> None:
    layer = make(safe_command=[0.1, -0.1])
    verdict, reason = layer.check_state(1, np.zeros(2), np.array([0.0, bad]), now=0.0)
    assert verdict is Verdict.SAFE and "non-finite" in reason
    command, reason = layer.command(np.array([bad, 0.0]), 2)
    assert command.tolist() == [0.1, -0.1] and "non-finite policy output" in reason
    command, reason = layer.command(np.array([0.0, 0.0, 0.0]), 3)
    assert command.tolist() == [0.1, -0.1] and "3 values" in reason


def test_watchdog_fires_once_and_rearms_when_states_return() -> None:
    layer = make()
    timeout = layer.config.state_timeout
    assert not layer.watchdog_expired(timeout * 0.9)
    assert layer.watchdog_expired(timeout * 1.1)
    assert layer.timed_out and not layer.watchdog_expired(timeout * 5)  # once per outage
    assert layer.check_state(1, np.zeros(2), now=10.0)[0] is Verdict.ACT
    assert not layer.timed_out
    assert not layer.watchdog_expired(10.0 + timeout * 0.9)
    assert layer.watchdog_expired(10.0 + timeout * 1.1)


def test_e_stop_latches_until_cleared() -> None:
    layer = make(max_delta=[10.0])
    layer.e_stop()
    assert layer.check_state(1, np.zeros(2), now=0.0)[0] is Verdict.SAFE
    assert layer.command(np.array([1.0, 1.0]), 2)[0].tolist() == [0.0, 0.0]
    assert layer.clear_e_stop() is True and layer.clear_e_stop() is False
    assert layer.check_state(3, np.zeros(2), now=0.0)[0] is Verdict.ACT
    assert layer.command(np.array([1.0, 1.0]), 3)[0].tolist() == [1.0, 1.0]


def test_random_inputs_always_give_finite_commands_within_limits() -> None:
    rng = np.random.default_rng(0)
    layer = make(max_delta=[0.3, 0.1])
    specials = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308])
    previous = layer.last_command.copy()
    stamp = 0
    for _ in range(2_000):
        stamp += int(rng.integers(-P_NS, 3 * P_NS))
        action = rng.normal(0.0, 5.0, 2)
        if rng.random() < 0.1:
            action[rng.integers(2)] = rng.choice(specials)
        verdict, _ = layer.check_state(stamp, rng.normal(size=2), now=0.0)
        if verdict is Verdict.IGNORE:
            continue
        command, reason = layer.command(action, stamp)
        assert np.all(np.isfinite(command))
        assert np.all(command >= layer.config.low) and np.all(command <= layer.config.high)
        if not reason:
            assert np.all(np.abs(command - previous) <= layer.config.max_delta + 1e-12)
        previous = command


def position_layer(**kwargs) -> SafetyLayer:
    config = SafetyConfig.build(
        2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "position", velocity_limit=[1.0, 1.0], **kwargs
    )
    layer = SafetyLayer(config)
    layer.start(now=0.0)
    return layer


def test_position_limits_margin_rate_and_low_pass_filter() -> None:
    layer = position_layer(position_margin=0.1, max_delta=[0.2], filter_alpha=0.5)
    assert layer.config.low.tolist() == [-1.9, -0.9] and layer.config.high.tolist() == [1.9, 0.9]
    q = np.array([0.0, 0.8])
    assert layer.check_state(1, now=0.0, position=q, velocity=np.zeros(2))[0] is Verdict.ACT
    # Target [1, 5]: clipped to [1, 0.9], filtered half-way from the measured position
    # ([0.5, 0.85]), then at most 0.2 from it per period: [0.2, 0.85].
    command, reason = layer.command(np.array([1.0, 5.0]), P_NS)
    assert reason == "" and command == pytest.approx([0.2, 0.85])


def test_over_speed_trips_and_holds_the_measured_position_until_cleared() -> None:
    layer = position_layer()
    q = np.array([0.3, -0.2])
    verdict, reason = layer.check_state(1, now=0.0, position=q, velocity=np.array([0.5, -1.2]))
    assert verdict is Verdict.SAFE and "joint 1 moves at 1.2" in reason
    assert layer.safe().tolist() == q.tolist()  # hold, not zeros
    calm = np.zeros(2)
    assert layer.check_state(2, now=0.0, position=q, velocity=calm)[0] is Verdict.SAFE  # latched
    assert layer.command(np.array([1.0, 1.0]), 2)[0].tolist() == q.tolist()
    assert layer.clear_e_stop()
    assert layer.check_state(3, now=0.0, position=q, velocity=calm)[0] is Verdict.ACT
