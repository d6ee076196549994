"""The simulator without ROS: tasks, SimulatedRobot physics, randomisation, gymnasium envs."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from ddpg_controller.sim import ENV_IDS, RobotEnv, SimulatedRobot
from ddpg_controller.tasks import (
    BUILTIN_DIR,
    RandomizationConfig,
    RobotState,
    builtin_task_names,
    load_task,
)

TASK_NAMES = ("pendulum", "reacher", "arm_reach")

G = 9.81


def rollout(env: RobotEnv, seed: int | None, actions: np.ndarray):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, reward, *_ = env.step(a)
        observations.append(obs)
        rewards.append(reward)
    return np.array(observations), np.array(rewards)


def random_actions(task_name: str, n: int, seed: int = 0) -> np.ndarray:
    task = load_task(task_name)
    rng = np.random.default_rng(seed)
    return rng.uniform(task.action_low, task.action_high, size=(n, task.action_dim))


@pytest.fixture
def closing():
    """Collects envs/robots and closes them after the test."""
    things = []
    yield things.append
    for thing in things:
        thing.close()


# ---- tasks ---------------------------------------------------------------------------------------
def test_task_names_and_bad_name():
    assert set(TASK_NAMES) <= set(builtin_task_names())
    with pytest.raises(ValueError, match="pendulum"):
        load_task("nope")


@pytest.mark.parametrize("name", builtin_task_names())
def test_task_interface(name):
    task = load_task(name)
    assert task.name == name
    assert task.command_interface in ("effort", "velocity", "position")
    assert task.action_low.shape == task.action_high.shape == (task.action_dim,)
    assert np.all(task.action_low < task.action_high)
    assert task.action_dim == len(task.joint_names)
    assert task.observation_dim == len(task.observation_names)
    upright = np.array([0.0, 0.0, 1.0])
    signals = {
        s: upright if s == "upright_axis" else np.array([0.1, 0.2, 0.0]) for s in task.signal_names
    }
    passive = np.zeros(len(task.passive_joint_names))
    n = task.action_dim
    state = RobotState(np.zeros(n), np.zeros(n), signals, passive, passive)
    obs = task.observation(state)
    assert obs.dtype == np.float32 and obs.shape == (task.observation_dim,)
    assert isinstance(task.reward(state, np.zeros(task.action_dim), state), float)
    assert task.terminated(state) is False


def test_pendulum_reward_matches_pendulum_v1():
    task = load_task("pendulum")
    s = RobotState(np.array([3 * math.pi / 2]), np.array([2.0]), {})
    # θ_norm(3π/2) = −π/2
    expected = -((math.pi / 2) ** 2 + 0.1 * 4.0 + 0.001 * 1.5**2)
    assert task.reward(s, np.array([1.5]), s) == pytest.approx(expected)
    assert np.allclose(task.observation(s), [0.0, -1.0, 2.0], atol=1e-6)


# ---- gymnasium envs ------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", sorted(ENV_IDS.values()))
def test_check_env(env_id, closing):
    env = gymnasium.make(env_id)
    closing(env)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded obs / unnormalised action-space advice
        check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == env.unwrapped.task.max_episode_steps


@pytest.mark.parametrize("name", TASK_NAMES)
def test_deterministic_under_seed_and_truncation(name, closing):
    env_a, env_b = RobotEnv(name), RobotEnv(name)
    closing(env_a)
    closing(env_b)
    actions = random_actions(name, env_a.task.max_episode_steps)
    obs_a, rew_a = rollout(env_a, 3, actions[:20])
    obs_b, rew_b = rollout(env_b, 3, actions[:20])
    assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b)
    # Same env again after other episodes: still identical (the world is rebuilt at each reset).
    rollout(env_a, None, actions[:7])
    obs_c, rew_c = rollout(env_a, 3, actions[:20])
    assert np.array_equal(obs_a, obs_c) and np.array_equal(rew_a, rew_c)
    # reset(None) continues the RNG: a new episode, the same in both envs.
    obs_a2, _ = env_a.reset()
    obs_b2, _ = env_b.reset()
    assert np.array_equal(obs_a2, obs_b2) and not np.array_equal(obs_a2, obs_a[0])
    # Truncation at max_episode_steps, never termination.
    env_a.reset(seed=0)
    for t, a in enumerate(actions, start=1):
        _, _, terminated, truncated, _ = env_a.step(a)
        assert not terminated
        assert truncated == (t == env_a.task.max_episode_steps)


@pytest.mark.parametrize("name", ["pendulum", "arm_reach"])
def test_two_envs_do_not_interfere(name, closing):
    env_a, env_b, env_c = RobotEnv(name), RobotEnv(name), RobotEnv(name)
    for e in (env_a, env_b, env_c):
        closing(e)
    env_b.reset(seed=5)
    env_c.reset(seed=5)
    env_a.reset(seed=5)
    before = env_b.robot.state
    for a in random_actions(name, 15, seed=1):
        env_a.step(a)
    after = env_b.robot.state
    assert np.array_equal(before.position, after.position)
    assert np.array_equal(before.velocity, after.velocity)
    a = random_actions(name, 1, seed=2)[0]
    assert np.array_equal(env_b.step(a)[0], env_c.step(a)[0])
    assert not np.array_equal(env_a.robot.state.position, after.position)


def test_arm_reach_signals(closing):
    env = RobotEnv("arm_reach")
    closing(env)
    env.reset(seed=0)
    state = env.state
    task = env.task
    assert set(state.signals) == {"goal", "end_effector"}
    goal = state.signals["goal"]
    assert np.all(goal >= task.goal.low) and np.all(goal <= task.goal.high)
    # Home pose puts the end effector about 0.6 m in front of the base at 0.67 m height.
    assert np.allclose(state.signals["end_effector"], [0.6, 0.0, 0.67], atol=0.15)
    # Moving at the commanded velocity: joint 1 at +1 rad/s for 0.5 s turns about 0.5 rad.
    q0 = state.position.copy()
    action = np.zeros(7)
    action[0] = 1.0
    for _ in range(10):
        env.step(action)
    assert env.state.position[0] - q0[0] == pytest.approx(0.5, abs=0.05)
    assert np.all(np.abs(env.state.position[1:] - q0[1:]) < 0.05)


def test_reacher_end_effector_is_forward_kinematics(closing):
    robot = SimulatedRobot("reacher")
    closing(robot)
    robot.reset(seed=0)
    q = np.array([0.3, -0.7])
    state = robot.set_joint_state(q, [0.0, 0.0])
    ee = state.signals["end_effector"]
    fk = [
        0.1 * math.cos(q[0]) + 0.11 * math.cos(q[0] + q[1]),
        0.1 * math.sin(q[0]) + 0.11 * math.sin(q[0] + q[1]),
        0.0,
    ]
    assert np.allclose(ee, fk, atol=1e-9)


# ---- pendulum physics ----------------------------------------------------------------------------
def pendulum_energy(state: RobotState) -> float:
    """Rod m = 1, l = 1 about one end: I = 1/3, centre of mass at l/2; θ = 0 upright."""
    th, w = state.position[0], state.velocity[0]
    return 0.5 * (1.0 / 3.0) * w * w + 1.0 * G * 0.5 * math.cos(th)


def test_pendulum_gravity_from_horizontal(closing):
    robot = SimulatedRobot("pendulum")
    closing(robot)
    robot.reset(seed=0)
    robot.set_joint_state([math.pi / 2], [0.0])
    state = robot.step([0.0])
    alpha = state.velocity[0] / robot.task.control_period
    assert alpha == pytest.approx(3 * G / 2, rel=0.02)  # 14.715 rad/s²


def test_pendulum_torque_response(closing):
    robot = SimulatedRobot("pendulum")
    closing(robot)
    robot.reset(seed=0)
    robot.set_joint_state([math.pi], [0.0])  # hanging down: gravity torque ~0 at first
    state = robot.step([2.0])
    alpha = state.velocity[0] / robot.task.control_period
    assert alpha == pytest.approx(3 * 2.0 / 1.0, rel=0.02)  # 3 u / (m l²) = 6 rad/s²
    assert np.allclose(robot.applied_effort, [2.0])
    # Out-of-range torque is clipped to ±2 N·m.
    robot.set_joint_state([math.pi], [0.0])
    assert robot.step([50.0]).velocity[0] == pytest.approx(state.velocity[0])


def test_pendulum_energy_conserved(closing):
    robot = SimulatedRobot("pendulum")
    closing(robot)
    robot.reset(seed=0)
    state = robot.set_joint_state([math.pi / 2], [0.0])
    e0 = pendulum_energy(state)
    swing = 0.5 * G  # energy scale m g l / 2
    fastest = 0.0
    for _ in range(20):  # 1 s: from horizontal through the bottom to about the other horizontal
        state = robot.step([0.0])
        fastest = max(fastest, abs(state.velocity[0]))
        assert abs(pendulum_energy(state) - e0) < 0.01 * swing
    assert fastest > 5.0  # it did swing (√(3g/l) = 5.42 rad/s at the bottom)


def test_pendulum_initial_state_distribution(closing):
    env = RobotEnv("pendulum")
    closing(env)
    env.reset(seed=0)
    for _ in range(50):
        env.reset()
        th, thdot = env.state.position[0], env.state.velocity[0]
        assert -math.pi <= th <= math.pi and -1.0 <= thdot <= 1.0


# ---- domain randomisation ------------------------------------------------------------------------
def test_randomization_off_is_identity(closing):
    actions = random_actions("pendulum", 30)
    plain, default = RobotEnv("pendulum"), RobotEnv("pendulum", RandomizationConfig())
    closing(plain)
    closing(default)
    assert not RandomizationConfig().enabled
    obs_p, rew_p = rollout(plain, 11, actions)
    obs_d, rew_d = rollout(default, 11, actions)
    assert np.array_equal(obs_p, obs_d) and np.array_equal(rew_p, rew_d)


@pytest.mark.parametrize(
    "config",
    [
        RandomizationConfig(mass_scale=(0.5, 1.5)),
        RandomizationConfig(joint_damping=(0.2, 0.5)),
        RandomizationConfig(joint_friction=(0.2, 0.5)),
        RandomizationConfig(actuator_gain=(0.5, 0.8)),
        RandomizationConfig(observation_noise_std=0.05),
    ],
    ids=["mass", "damping", "friction", "gain", "noise"],
)
def test_randomization_changes_dynamics(config, closing):
    assert config.enabled
    actions = random_actions("pendulum", 30)
    plain, randomized = RobotEnv("pendulum"), RobotEnv("pendulum", config)
    closing(plain)
    closing(randomized)
    obs_p, _ = rollout(plain, 11, actions)
    obs_r, _ = rollout(randomized, 11, actions)
    assert np.max(np.abs(obs_p[1:] - obs_r[1:])) > 1e-3
    # Sampled anew at each reset from the env's RNG: two episodes differ, the same seed repeats.
    obs_r2, _ = rollout(randomized, None, actions)
    obs_r3, _ = rollout(randomized, 11, actions)
    assert np.array_equal(obs_r, obs_r3)
    assert not np.array_equal(obs_r[1:], obs_r2[1:])


def test_randomization_config_validation():
    with pytest.raises(ValueError):
        RandomizationConfig(mass_scale=(2.0, 1.0))
    with pytest.raises(ValueError):
        RandomizationConfig(action_delay_steps=-1)
    with pytest.raises(ValueError):
        RandomizationConfig(observation_noise_std=float("nan"))


@pytest.mark.parametrize("k", [1, 3])
def test_action_delay(k, closing):
    plain = SimulatedRobot("pendulum")
    delayed = SimulatedRobot("pendulum", RandomizationConfig(action_delay_steps=k))
    closing(plain)
    closing(delayed)
    for robot in (plain, delayed):
        robot.reset(seed=0)
        robot.set_joint_state([math.pi], [0.0])
    kick = plain.step([2.0])
    assert abs(kick.velocity[0]) > 0.1
    state = delayed.step([2.0])
    for _ in range(k - 1):
        assert abs(state.velocity[0]) < 1e-9  # the kick has not arrived yet
        state = delayed.step([0.0])
    assert abs(state.velocity[0]) < 1e-9
    state = delayed.step([0.0])  # k steps later the kick is applied
    assert state.velocity[0] == pytest.approx(kick.velocity[0], abs=1e-9)
    assert state.position[0] == pytest.approx(kick.position[0], abs=1e-9)


def test_robot_rejects_bad_actions(closing):
    robot = SimulatedRobot("reacher")
    closing(robot)
    robot.reset(seed=0)
    with pytest.raises(ValueError):
        robot.step([0.0])
    with pytest.raises(ValueError):
        robot.step([0.0, float("nan")])


def test_goal_resampled_every_n_seconds_in_a_link_frame(tmp_path, closing):
    spec = yaml.safe_load((BUILTIN_DIR / "reacher.yaml").read_text())
    spec["robot"]["urdf"] = str(BUILTIN_DIR / "urdf" / "reacher.urdf")
    spec["goal"] = {
        "annulus": {"radius": [0.05, 0.1]},
        "frame": "fingertip",
        "resample_every_s": 0.1,
    }
    path = tmp_path / "reacher_resampled.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = RobotEnv(str(path))
    closing(env)
    env.reset(seed=0)
    goals, tips = [env.state.signals["goal"]], [env.state.signals["end_effector"]]
    for _ in range(4):
        env.step(np.zeros(2))
        goals.append(env.state.signals["goal"])
        tips.append(env.state.signals["end_effector"])
    # 0.1 s = 2 control periods: a new goal after steps 2 and 4, the same one in between.
    assert np.array_equal(goals[0], goals[1]) and np.array_equal(goals[2], goals[3])
    assert not np.array_equal(goals[1], goals[2]) and not np.array_equal(goals[3], goals[4])
    # In the fingertip's frame (0.21 m from the base; the arm rests): 5-10 cm from the fingertip.
    assert all(
        0.05 - 1e-9 <= np.linalg.norm(g - t) <= 0.1 + 1e-9 for g, t in zip(goals, tips, strict=True)
    )


def test_a_passive_joint_is_free_and_never_driven(closing):
    """The cart-pole's pole (robot.passive_joints) falls under gravity with no motor holding it;
    the one command drives the cart alone."""
    env = RobotEnv("cartpole_balance")
    closing(env)
    env.reset(seed=0)
    assert env.task.passive_joint_names == ("cart_to_pole",) and env.action_space.shape == (1,)
    env.robot.set_joint_state([0.0, 0.1], [0.0, 0.0])
    for _ in range(30):  # 1.5 s, no force on the cart
        _, _, _, _, info = env.step(np.zeros(1))
    state = env.state  # held by a motor it would stay at 0.1 rad
    assert state.passive_position[0] > 0.14 and state.passive_velocity[0] > 0.06  # it falls
    assert info["effort"].shape == (1,)
    # A force on the cart tips the free pole the other way.
    env.reset(seed=0)
    env.robot.set_joint_state([0.0, 0.0], [0.0, 0.0])
    for _ in range(5):
        env.step(np.array([20.0]))
    assert env.state.velocity[0] > 0.5 and env.state.passive_velocity[0] < -0.05
