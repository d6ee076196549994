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
    # After the safe command the ramp restarts from it, at the rate of the time since the last
    # command's state (0.9 period): the first command after a safe one is rate-limited too.
    assert layer.safe().tolist() == [0.0, 0.0]
    after, _ = layer.command(np.array([-2.0, -1.0]), 3 * P_NS)
    assert after == pytest.approx([-0.45, -0.225])


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
    assert layer.check_state(P_NS, np.zeros(2), now=0.05)[0] is Verdict.SAFE
    assert layer.command(np.array([1.0, 1.0]), P_NS)[0].tolist() == [0.0, 0.0]
    assert layer.clear_e_stop() is True and layer.clear_e_stop() is False
    assert layer.check_state(2 * P_NS, np.zeros(2), now=0.1)[0] is Verdict.ACT
    assert layer.command(np.array([1.0, 1.0]), 2 * P_NS)[0].tolist() == [1.0, 1.0]


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


# ---- position control under a misbehaving robot (issue 25's fault classes) ----------------------
MS = 1_000_000  # ns


def fast_position_layer() -> SafetyLayer:
    """Velocity limit 1 rad/s, max_delta 0.05 rad per 50 ms period: 1 mrad per 1 ms state."""
    return position_layer(max_delta=[0.05])


def act(layer: SafetyLayer, stamp: int, q, target, velocity=(0.0, 0.0), now=None):
    """One state and the command published for it (the policy's or the safe one)."""
    now = stamp * 1e-9 if now is None else now
    verdict, reason = layer.check_state(
        stamp, now=now, position=np.array(q, float), velocity=np.array(velocity, float)
    )
    if verdict is Verdict.SAFE:
        return layer.safe(stamp), reason
    return layer.command(np.array(target, float), stamp)


def test_a_glitched_position_is_held_still_not_commanded() -> None:
    layer = fast_position_layer()
    q = np.array([0.0, 0.0])
    for i in range(1, 11):  # 1 kHz states; the policy wants [1, 1]
        command, _ = act(layer, i * MS, q, [1.0, 1.0])
    # The first command holds the measured position (a ramp from it, 0 ms after it), then each
    # moves 1 mrad: 9 mrad after 10 states.
    assert command == pytest.approx([0.009, 0.009])
    held = command.copy()
    # One reading 1 rad away with a velocity to match (an encoder glitch): hold the last command.
    command, reason = act(layer, 11 * MS, [1.0, 0.0], [1.0, 1.0], velocity=(1000.0, 0.0))
    assert "position glitch" in reason and command.tolist() == held.tolist()
    assert layer.trip is None and layer.counts["position_glitches"] == 1
    # The next plausible state: the policy again, 1 mrad from the hold.
    command, reason = act(layer, 12 * MS, q, [1.0, 1.0])
    assert reason == "" and command == pytest.approx(held + 0.001)


def test_nan_in_every_other_state_holds_still_and_never_speeds_up_the_ramp() -> None:
    layer = fast_position_layer()
    q = np.zeros(2)
    commands = []
    for i in range(1, 201):  # 1 kHz; every other state has a NaN position
        position = [np.nan, 0.0] if i % 2 else q
        commands.append(act(layer, i * MS, position, [1.0, -1.0])[0])
    steps = np.abs(np.diff(np.array(commands[1:]), axis=0))
    # Each command is at most 1 mrad (1 ms of 0.05 rad / 50 ms) from the one before, and the
    # holds repeat the last command: no square wave, 0.2 mrad... 99 mrad after 200 states.
    assert steps.max() == pytest.approx(0.001) and np.all(steps <= 0.001 + 1e-12)
    assert np.all(steps[::2] == 0.0) or np.all(steps[1::2] == 0.0)
    assert commands[-1] == pytest.approx([0.099, -0.099])


def test_a_runaway_joint_is_held_still_and_latched_after_one_control_period() -> None:
    layer = fast_position_layer()
    q = np.zeros(2)
    for i in range(1, 11):
        command, _ = act(layer, i * MS, q, [1.0, 1.0])
    held = command.copy()
    # Joint 2 runs at 3 rad/s (limit 1) with no velocity reading (NaN): every state is held at
    # the last command (not the measured position), latched once it lasts a control period.
    for i in range(11, 80):
        q = q + np.array([0.0, 0.003])
        command, reason = act(layer, i * MS, q, [1.0, 1.0], velocity=(np.nan, np.nan))
        assert command.tolist() == held.tolist(), i
        assert (layer.trip is not None) == (i - 11 >= 50), (i, reason)
    assert "a runaway joint" in layer.trip
    # It stops: still latched until cleared, then the ramp resumes from the hold.
    command, _ = act(layer, 200 * MS, q, [1.0, 1.0])
    assert command.tolist() == held.tolist()
    assert layer.clear_e_stop()
    command, reason = act(layer, 201 * MS, q, [1.0, 1.0])
    assert reason == "" and command == pytest.approx(held + 0.001)


def test_a_robot_that_reaches_each_command_at_once() -> None:
    # At 250 Hz (4 ms), the command moves 4 ms x 1 rad/s (max_delta 0.05 rad per 50 ms, the
    # velocity limit) = 4 mrad per state: a robot that is there at the next state reads back
    # 1 rad/s, within the trip's limit (1.1 rad/s: the default 10 % tolerance), so it runs; when
    # two commands land between two of its states, it moves at 2 rad/s: that state is held as a
    # position glitch (the position check comes before the velocity's), and control goes on.
    config = SafetyConfig.build(
        2, [-2.0, -1.0], [2.0, 1.0], PERIOD, "position", max_delta=[0.05], velocity_limit=[1.1]
    )
    layer = SafetyLayer(config)
    layer.start(now=0.0)
    q, previous = np.zeros(2), np.zeros(2)
    for i in range(1, 60):
        velocity = (q - previous) / 0.004
        command, reason = act(layer, 4 * i * MS, q, [1.0, 1.0], velocity=velocity)
        assert reason == "" and layer.trip is None, (i, reason)
        previous, q = q, command.copy()
    assert q == pytest.approx([0.232, 0.232])
    velocity = (q + 0.004 - previous) / 0.004  # two commands in one period
    command, reason = act(layer, 60 * 4 * MS, q + 0.004, [1.0, 1.0], velocity=velocity)
    assert "(2/s, limit 1.1): a position glitch" in reason and command.tolist() == q.tolist()
    # The robot stays where it was told; 4 ms later that is 8 mrad in 8 ms from the last
    # plausible position: the robot again, and the ramp goes on from the hold.
    command, reason = act(layer, 61 * 4 * MS, q + 0.004, [1.0, 1.0], velocity=(0.0, 0.0))
    assert reason == "" and layer.trip is None and command == pytest.approx(q + 0.004)


@pytest.mark.parametrize("jump_s", [30.0, -30.0])
def test_a_clock_reset_is_counted_and_control_resumes(jump_s) -> None:
    layer = fast_position_layer()
    q = np.zeros(2)
    for i in range(1, 11):
        command, _ = act(layer, i * MS, q, [1.0, 1.0])
    jump = round(jump_s * 1e9)
    # The next state, 1 ms later on the steady clock, is stamped 30 s away: accepted, counted;
    # it earns no movement (its true time is unknown), the ones after it ramp 1 mrad per ms.
    verdict, notice = layer.check_state(11 * MS + jump, now=0.011, position=q, velocity=np.zeros(2))
    assert verdict is Verdict.ACT and f"jumped {jump_s:+.3f} s" in notice
    assert "clock reset #1" in notice and layer.counts["clock_resets"] == 1
    after, reason = layer.command(np.array([1.0, 1.0]), 11 * MS + jump)
    assert reason == "" and after.tolist() == command.tolist()
    after, _ = act(layer, 12 * MS + jump, q, [1.0, 1.0], now=0.012)
    assert after == pytest.approx(command + 0.001)
    # A pause of 2 s with the stamps following the steady clock is no reset.
    after, _ = act(layer, 2012 * MS + jump, q, [1.0, 1.0], now=2.012)
    assert layer.counts["clock_resets"] == 1 and after == pytest.approx(command + 0.051)


def test_nan_velocity_is_no_fault_and_the_speed_comes_from_the_positions() -> None:
    layer = fast_position_layer()
    none = (np.nan, np.nan)
    assert act(layer, MS, [0.0, 0.0], [1.0, 1.0], velocity=none)[1] == ""
    assert act(layer, 2 * MS, [0.0005, 0.0], [1.0, 1.0], velocity=none)[1] == ""  # 0.5 rad/s
    reason = act(layer, 3 * MS, [0.005, 0.0], [1.0, 1.0], velocity=none)[1]  # 4.5 rad/s
    assert "joint 0 position moved 0.0045 in 1.0 ms" in reason and "glitch" in reason
    verdict, reason = layer.check_state(4 * MS, now=0.004, position=np.zeros(2),
                                        velocity=np.array([np.inf, 0.0]))  # fmt: skip
    assert verdict is Verdict.SAFE and "infinite joint velocity" in reason
