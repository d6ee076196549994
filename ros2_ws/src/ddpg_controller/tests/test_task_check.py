"""``./run check-task`` (``ddpg-train --check-task``): a spec checked without training.

It prints what the spec resolved to (joints and their interface, limits and where each came from,
the observation layout, the command mapping), the untrained returns and every warning; a bad spec
is one line and exit 1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ddpg_controller.tasks import BUILTIN_DIR

TRAIN = str(Path(sys.executable).parent / "ddpg-train")


def check(spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TRAIN, "--check-task", str(spec)], capture_output=True, text=True, timeout=120
    )


def test_check_prints_the_resolved_cart_pole_and_its_untrained_returns() -> None:
    result = check(BUILTIN_DIR / "cartpole_balance.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "slider_to_cart" in out and "driven (effort)" in out
    assert "cart_to_pole" in out and "passive (sensed, never commanded" in out
    limits = {line.split()[0]: line.split(maxsplit=2)[1:] for line in out.splitlines()[4:8]}
    assert limits["effort"] == ["10", "(spec robot.limits.effort)"]
    assert limits["velocity"] == ["10", "(URDF <limit>)"]
    assert "observation (5 values):" in out and "joint_velocity[cart_to_pole]" in out
    assert "command: effort_controller/commands" in out
    zero = float(out.split("zero action ")[1].split(",")[0])
    random = float(out.split("uniform random ")[1].split()[0])
    # The pole falls past 0.2 rad within about a second: far below the solved threshold (90).
    assert zero < 30.0 and random < 30.0
    assert "warnings: 0" in out


def test_check_warns_about_a_threshold_an_untrained_policy_reaches(tmp_path) -> None:
    # The pole left to PyBullet's motor (neither driven nor passive): it never falls, and a
    # threshold any policy reaches.
    path = tmp_path / "held.yaml"
    path.write_text(
        "robot: {urdf: 'pybullet_data:cartpole.urdf', joints: [slider_to_cart],\n"
        "        limits: {effort: 30.0}}\n"
        "command: {interface: effort}\n"
        "observation: [joint_position, joint_velocity]\n"
        "reward: [{term: alive, weight: 1.0}]\n"
        "timing: {control_period: 0.05, substeps: 10, episode_steps: 20}\n"
        "solved_threshold: 1.0\n"
    )
    result = check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held (in no joint list of the spec" in result.stdout
    assert "'cart_to_pole' (continuous)" in result.stdout
    assert "solved_threshold 1 is reached without learning" in result.stdout


def test_check_fails_with_one_line(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    spec = (BUILTIN_DIR / "cartpole_balance.yaml").read_text()
    spec = spec.replace("urdf/cartpole.urdf", str(BUILTIN_DIR / "urdf/cartpole.urdf"))
    path.write_text(spec.replace("effort", "torque"))
    result = check(path)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: command.interface")
