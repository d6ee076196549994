"""Joint states and task signals from separate topics become one robot state."""

from __future__ import annotations

import numpy as np

from ddpg_controller.state_assembly import StateAssembler

JOINTS = (np.array([0.1, 0.2]), np.array([1.0, 2.0]))


def test_exact_stamps_wait_for_every_signal_of_that_stamp() -> None:
    assembler = StateAssembler(["goal", "end_effector"], exact_stamps=True)
    assert assembler.add_signal("goal", 100, np.array([1.0, 2.0, 3.0])) is None
    assert assembler.add_joints(100, *JOINTS) is None  # end_effector@100 still missing
    assert assembler.add_signal("end_effector", 99, np.zeros(3)) is None  # wrong stamp
    stamp, state = assembler.add_signal("end_effector", 100, np.array([4.0, 5.0, 6.0]))
    assert stamp == 100
    np.testing.assert_array_equal(state.position, [0.1, 0.2])
    np.testing.assert_array_equal(state.signals["goal"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(state.signals["end_effector"], [4.0, 5.0, 6.0])
    # Each joint state completes at most once.
    assert assembler.add_signal("goal", 100, np.array([1.0, 2.0, 3.0])) is None


def test_latest_signals_in_real_time() -> None:
    assembler = StateAssembler(["goal"], exact_stamps=False)
    assert assembler.add_joints(5, *JOINTS) is None  # no goal yet: no state
    stamp, state = assembler.add_signal("goal", 1, np.array([0.0, 0.0, 1.0]))
    assert stamp == 5
    assembler.add_signal("goal", 7, np.array([0.0, 0.0, 2.0]))
    stamp, state = assembler.add_joints(9, *JOINTS)
    np.testing.assert_array_equal(state.signals["goal"], [0.0, 0.0, 2.0])


def test_no_signals_completes_on_joint_states_alone() -> None:
    stamp, state = StateAssembler([], exact_stamps=True).add_joints(3, *JOINTS)
    assert stamp == 3 and dict(state.signals) == {}


def test_old_signals_are_forgotten() -> None:
    assembler = StateAssembler(["goal"], exact_stamps=True, keep=4)
    for stamp in range(10):
        assembler.add_signal("goal", stamp, np.full(3, float(stamp)))
    assert assembler.add_joints(2, *JOINTS) is None  # stamp 2 was dropped
    assert assembler.add_joints(9, *JOINTS)[1].signals["goal"][0] == 9.0


def test_passive_joints_follow_the_driven_ones() -> None:
    """joint_states read in the task's sensed order: the first ``driven_joints`` are driven."""
    assembler = StateAssembler([], exact_stamps=True, driven_joints=1)
    _, state = assembler.add_joints(5, *JOINTS)
    assert state.position.tolist() == [0.1] and state.velocity.tolist() == [1.0]
    assert state.passive_position.tolist() == [0.2] and state.passive_velocity.tolist() == [2.0]
    assert state.sensed_position.tolist() == [0.1, 0.2]
