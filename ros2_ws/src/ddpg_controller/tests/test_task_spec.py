"""Task specs: a URDF plus one YAML file, loaded and checked without PyBullet or ROS.

Every bad input fails when the task is loaded, with one line naming the file and the element, so
nothing starts half-way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ddpg_controller.tasks import (
    RobotState,
    TaskSpecError,
    builtin_task_names,
    load_task,
    task_from_dict,
)

ARM_URDF = """<?xml version="1.0"?>
<robot name="arm">
  <link name="base"/>
  <joint name="shoulder" type="revolute">
    <parent link="base"/><child link="upper"/>
    <origin xyz="0 0 0.3"/><axis xyz="0 1 0"/>
    <limit lower="-2.0" upper="2.0" effort="{effort}" velocity="{velocity}"/>
  </joint>
  <link name="upper">{mesh}</link>
  <joint name="elbow" type="continuous">
    <parent link="upper"/><child link="tool"/>
    <origin xyz="0.4 0 0"/><axis xyz="0 1 0"/>
    <limit effort="5.0" velocity="2.0"/>
  </joint>
  <link name="tool"/>
</robot>
"""


def write_arm(folder: Path, effort="10.0", velocity="2.0", mesh="") -> Path:
    path = folder / "arm.urdf"
    path.write_text(ARM_URDF.format(effort=effort, velocity=velocity, mesh=mesh))
    return path


def spec(**changes) -> dict:
    """A valid spec for the arm above; ``changes`` replace top-level sections."""
    document = {
        "name": "arm_reach_test",
        "robot": {"urdf": "arm.urdf", "joints": ["shoulder"], "end_effector_link": "tool"},
        "command": {"interface": "velocity"},
        "goal": {"box": {"low": [0.1, -0.1, 0.2], "high": [0.3, 0.1, 0.4]}},
        "observation": ["joint_position", "joint_velocity", "ee_minus_goal"],
        "reward": [{"term": "ee_goal_distance", "weight": -1.0}],
        "timing": {"control_period": 0.05, "substeps": 5, "episode_steps": 20},
    }
    document.update(changes)
    return document


def write_spec(folder: Path, document: dict, name: str = "task.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(document))
    return path


def load_error(folder: Path, document: dict) -> str:
    path = write_spec(folder, document)
    with pytest.raises(TaskSpecError) as info:
        load_task(path)
    message = str(info.value)
    assert "\n" not in message  # one line
    return message


@pytest.fixture
def arm(tmp_path) -> Path:
    write_arm(tmp_path)
    return tmp_path


# ---- the built-in specs ------------------------------------------------------------------------
def test_builtin_specs_load_without_pybullet_gymnasium_or_ros() -> None:
    code = (
        "import sys; from ddpg_controller.tasks import load_task, builtin_task_names\n"
        "tasks = [load_task(n) for n in builtin_task_names()]\n"
        "bad = [m for m in ('pybullet', 'gymnasium', 'rclpy', 'torch') if m in sys.modules]\n"
        "print(len(tasks), bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "[]", out.stdout
    assert {"pendulum", "reacher", "arm_reach", "panda_reach", "pendulum_balance"} <= set(
        builtin_task_names()
    )


def test_panda_spec_reads_its_limits_from_the_urdf() -> None:
    task = load_task("panda_reach")
    assert task.command_interface == "position" and task.action_mode == "delta"
    assert task.position_upper[3] == 0.0 and task.position_lower[3] == -3.1416  # panda_joint4
    assert task.effort_limit.tolist() == [87.0] * 4 + [12.0] * 3
    assert task.velocity_limit.tolist() == [2.175] * 4 + [2.61] * 3
    assert np.allclose(task.action_high, 0.05) and np.allclose(task.action_low, -0.05)
    # Delta actions: command = measured position + action, within the URDF position limits.
    state = RobotState(np.array([0, 0, 0, -0.02, 0, 1, 0.0]), np.zeros(7), {})
    command = task.command(np.full(7, 0.05), state)
    assert command[3] == 0.0 and command[0] == pytest.approx(0.05)
    # Safe command for position control: hold the measured position.
    assert task.hold_command(state).tolist() == state.position.tolist()


def test_upright_terms_alive_bonus_and_termination() -> None:
    task = load_task("pendulum_balance")
    upright = RobotState(np.zeros(1), np.zeros(1), {"upright_axis": np.array([0.0, 0.0, 1.0])})
    tilted = RobotState(
        np.zeros(1), np.zeros(1), {"upright_axis": np.array([np.sin(0.5), 0.0, np.cos(0.5)])}
    )
    assert task.reward(upright, np.zeros(1), upright) == pytest.approx(1.0)
    assert task.reward(upright, np.zeros(1), tilted) == pytest.approx(0.5)
    assert not task.terminated(upright) and task.terminated(tilted)


def test_the_spec_a_policy_carries_rebuilds_the_same_contract() -> None:
    for name in builtin_task_names():
        task = load_task(name)
        # Through JSON, as the policy file stores it (infinite limits of continuous joints too).
        metadata = json.loads(json.dumps({**task.policy_metadata(), **_dims(task)}))
        carried = task_from_dict(metadata["task_spec"], f"policy of {name}")
        assert carried.urdf is None  # needs no URDF (and no pybullet_data) on the robot
        assert carried.policy_mismatches(metadata) == []


def _dims(task) -> dict:
    return {"obs_dim": task.observation_dim, "action_dim": task.action_dim}


def test_a_policy_whose_observation_differs_is_named(arm) -> None:
    task = load_task(write_spec(arm, spec()))
    other = load_task(write_spec(arm, spec(observation=["joint_position"]), "other.yaml"))
    problems = task.policy_mismatches({**other.policy_metadata(), **_dims(other)})
    assert any(p.startswith("observation_names") for p in problems), problems
    assert any(p.startswith("obs_dim: policy 1, task 5") for p in problems), problems


# ---- bad input: one line naming the file and the element ---------------------------------------
def test_unknown_keys_and_bad_values_name_the_file_and_key(arm) -> None:
    message = load_error(arm, spec(rewards=[]))
    assert "task.yaml" in message and "unknown key 'rewards'" in message
    message = load_error(arm, spec(command={"interface": "torque"}))
    assert "command.interface" in message and "'torque'" in message
    message = load_error(arm, spec(reward=[{"term": "ee_goal_distance", "wieght": -1.0}]))
    assert "reward[0]" in message and "'wieght'" in message
    message = load_error(arm, spec(timing={"control_period": -1, "episode_steps": 10}))
    assert "timing.control_period" in message and "> 0" in message


def test_a_misspelt_key_is_named_before_what_it_left_unset(arm) -> None:
    for section in ("timing", "robot", "command", "goal"):
        document = spec()
        document[section] = dict(document[section])
        value = document[section].pop(next(iter(document[section])))
        document[section]["episode_step" if section == "timing" else "typo_key"] = value
        message = load_error(arm, document)
        wrong = "episode_step" if section == "timing" else "typo_key"
        assert f"{section}: unknown key '{wrong}'" in message, message


def test_exponent_floats_without_a_dot_are_numbers(arm) -> None:
    """PyYAML (YAML 1.1) would read 5e-2 as a string; ROS 2 and the spec read a float."""
    document = spec(command={"interface": "position", "action": "delta", "delta_scale": 0.05})
    text = yaml.safe_dump(document).replace("delta_scale: 0.05", "delta_scale: 5e-2")
    assert "5e-2" in text
    (arm / "task.yaml").write_text(text)
    assert load_task(arm / "task.yaml").delta_scale.tolist() == [0.05]


def test_passive_joints_are_sensed_never_driven(arm) -> None:
    document = spec(
        robot={
            "urdf": "arm.urdf",
            "joints": ["shoulder"],
            "passive_joints": ["elbow"],
            "end_effector_link": "tool",
            "initial_state": {"position": [0.0, 3.0], "position_noise": [0.0, 0.1]},
        },
        observation=[
            "joint_position",
            {"term": "joint_velocity", "joints": ["elbow"]},
            "previous_action",
        ],
        reward=[{"term": "joint_position_sq", "joints": ["elbow"], "weight": -1.0}],
    )
    task = load_task(write_spec(arm, document))
    assert task.joint_names == ("shoulder",) and task.passive_joint_names == ("elbow",)
    assert task.sensed_joint_names == ("shoulder", "elbow") and task.action_dim == 1
    assert task.observation_names == (
        "joint_position[shoulder]",
        "joint_position[elbow]",
        "joint_velocity[elbow]",
        "previous_action[shoulder]",
    )
    assert task.warnings == ()  # every movable joint is driven or passive
    state = RobotState(np.array([0.5]), np.array([0.1]), {}, np.array([2.0]), np.array([-3.0]))
    assert task.observation(state).tolist() == pytest.approx([0.5, 2.0, -3.0, 0.0])
    assert task.reward(state, np.zeros(1), state) == pytest.approx(-4.0)
    assert task.command(np.array([0.2]), state).tolist() == [0.2]  # one command: the driven
    q, qd = task.sample_initial_joints(np.random.default_rng(0))
    assert q.shape == qd.shape == (2,) and abs(q[1] - 3.0) <= 0.1
    assert task.policy_metadata()["passive_joint_names"] == ["elbow"]
    # Errors: a joint both driven and passive; one not in the URDF; joints on a signal term.
    both = {**document, "robot": {**document["robot"], "passive_joints": ["shoulder"]}}
    assert "also in robot.joints" in load_error(arm, both)
    absent = {**document, "robot": {**document["robot"], "passive_joints": ["wrist"]}}
    message = load_error(arm, absent)
    assert "robot.passive_joints" in message and "'wrist' is not in" in message
    signal = {**document, "observation": [{"term": "ee_minus_goal", "joints": ["elbow"]}]}
    assert "observation[0].joints" in load_error(arm, signal)


def test_a_movable_joint_in_no_joint_list_is_warned_about(arm) -> None:
    """An unnamed joint is held still, perhaps by mistake (a forgotten pole): a warning; named in
    robot.held_joints (a gripper on a reaching arm) it is held without one."""
    (warning,) = load_task(write_spec(arm, spec())).warnings
    assert "'elbow' (continuous)" in warning and "robot.passive_joints" in warning
    assert "PyBullet's default velocity motor, MuJoCo a joint lock" in warning
    held = spec(robot={**spec()["robot"], "held_joints": ["elbow"]})
    task = load_task(write_spec(arm, held))
    assert task.warnings == () and task.held_joint_names == ("elbow",)
    assert task.sensed_joint_names == ("shoulder",)
    both = spec(robot={**spec()["robot"], "held_joints": ["shoulder"]})
    assert "['shoulder'] also in robot.joints" in load_error(arm, both)


def test_inertia_pybullet_would_zero_is_warned_about(tmp_path) -> None:
    inertia = '<inertial><mass value="1"/><inertia ixx="1" iyy="0.1" izz="0.1"/></inertial>'
    write_arm(tmp_path, mesh=inertia)
    warnings = load_task(write_spec(tmp_path, spec())).warnings
    assert any('<link name="upper"> <inertia>' in w and "to zero" in w for w in warnings)


def test_urdf_missing_or_malformed(tmp_path) -> None:
    message = load_error(tmp_path, spec())
    assert "robot.urdf" in message and "not found" in message
    (tmp_path / "arm.urdf").write_text("<robot name='arm'><link name='base'></robot>")
    message = load_error(tmp_path, spec())
    assert "arm.urdf" in message and "malformed URDF" in message


def test_package_uri_and_mesh_resolution(tmp_path, monkeypatch) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "my_arm").touch()
    (prefix / "share" / "my_arm" / "meshes").mkdir(parents=True)
    (prefix / "share" / "my_arm" / "meshes" / "upper.stl").write_text("solid")
    mesh = (
        '<visual><geometry><mesh filename="package://my_arm/meshes/upper.stl"/></geometry></visual>'
    )
    write_arm(prefix / "share" / "my_arm", mesh=mesh)
    document = spec(robot={"urdf": "package://my_arm/arm.urdf", "joints": ["shoulder"]})
    document.pop("goal")
    document["observation"] = ["joint_position"]
    document["reward"] = [{"term": "alive", "weight": 1.0}]
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    task = load_task(write_spec(tmp_path, document))
    mesh_file = str(prefix / "share" / "my_arm" / "meshes" / "upper.stl")
    assert mesh_file in task.urdf.resolved_text and "package://" not in task.urdf.resolved_text
    # The same URDF as a robot_description string (what robot_state_publisher publishes).
    text = (prefix / "share" / "my_arm" / "arm.urdf").read_text()
    inline = {**document, "robot": {"robot_description": text, "joints": ["shoulder"]}}
    assert load_task(write_spec(tmp_path, inline, "inline.yaml")).urdf.path is None
    # A package the ament index does not know.
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "elsewhere"))
    message = load_error(tmp_path, document)
    assert "robot.urdf" in message and "package 'my_arm'" in message
    assert "share/ament_index/resource_index/packages/my_arm" in message  # how to make one
    # A mesh that is not there.
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    (prefix / "share" / "my_arm" / "meshes" / "upper.stl").unlink()
    message = load_error(tmp_path, document)
    assert 'arm.urdf: <link name="upper"> <mesh>' in message and "upper.stl" in message


def test_joint_not_in_the_urdf_or_without_limits(arm) -> None:
    message = load_error(arm, spec(robot={"urdf": "arm.urdf", "joints": ["wrist"]}))
    assert "robot.joints" in message and "'wrist' is not in" in message
    assert "['shoulder', 'elbow']" in message
    # A continuous joint has no position limits: the position interface needs them.
    position = spec(
        robot={"urdf": "arm.urdf", "joints": ["elbow"], "end_effector_link": "tool"},
        command={"interface": "position", "action": "delta", "delta_scale": 0.05},
    )
    message = load_error(arm, position)
    assert '<joint name="elbow"> has no position <limit lower upper>' in message
    # ... unless the spec gives them.
    position["robot"]["limits"] = {"lower": -1.0, "upper": 1.0}
    assert load_task(write_spec(arm, position)).position_upper.tolist() == [1.0]


@pytest.mark.parametrize("attribute", ["effort", "velocity"])
def test_zero_effort_or_velocity_limits_are_rejected(tmp_path, attribute) -> None:
    write_arm(tmp_path, **{attribute: "0"})
    message = load_error(tmp_path, spec())
    assert f'<joint name="shoulder"> <limit {attribute}="0">' in message and "arm.urdf" in message


def test_goal_region_beyond_reach(arm) -> None:
    message = load_error(
        arm, spec(goal={"box": {"low": [0.5, -0.1, 0.2], "high": [0.9, 0.1, 0.4]}})
    )
    assert "goal" in message and "beyond the arm's reach (0.700 m" in message


def test_train_cli_fails_before_starting_anything(arm) -> None:
    bad = write_spec(arm, spec(command={"interface": "torque"}))
    run_dir = arm / "run"
    train = Path(sys.executable).parent / "ddpg-train"
    result = subprocess.run(
        [str(train), "--task-file", str(bad), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and not run_dir.exists()
    assert result.stderr.strip().splitlines()[-1].startswith(f"task: {bad}: command.interface")
    listing = subprocess.run(
        [str(train), "--list-tasks"], capture_output=True, text=True, check=True
    ).stdout
    assert "panda_reach" in listing and "position (delta)" in listing


def test_joint_armature_is_per_sensed_joint_and_not_negative(arm) -> None:
    """The drives' reflected rotor inertia (MuJoCo's dof_armature): one value for every joint or
    one per joint, default 0; a negative one is refused naming the section."""
    assert load_task(write_spec(arm, spec())).joint_armature.tolist() == [0.0]
    geared = spec(simulator={"joint_armature": 0.1})
    assert load_task(write_spec(arm, geared)).joint_armature.tolist() == [0.1]
    message = load_error(arm, spec(simulator={"joint_armature": -0.1}))
    assert "simulator" in message and "joint_armature" in message
