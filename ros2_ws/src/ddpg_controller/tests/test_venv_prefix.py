"""``./run setup`` makes .venv a prefix that a distro's ``ros2 run`` / ``ros2 launch`` accept.

They find the package through the ament index and its executables in ``<prefix>/lib/<package>/``,
as colcon installs them; ``pip install`` puts console scripts in ``bin/`` only, so ``./run`` puts
a launcher for each there too. Each executable is started from that folder, as ``ros2 run`` does
it, in the environment of a sourced distro: its rclpy first on PYTHONPATH (here one that cannot be
imported, as a distro's built for another Python cannot), its libraries on LD_LIBRARY_PATH.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib.metadata import distribution
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_prefix

from ddpg_controller.processes import NodeProcess

PACKAGE = Path(__file__).resolve().parents[1]
PREFIX = Path(sys.prefix)
LIBEXEC = PREFIX / "lib" / "ddpg_controller"
CONSOLE_SCRIPTS = sorted(
    e.name for e in distribution("ddpg_controller").entry_points if e.group == "console_scripts"
)


def test_the_venv_is_laid_out_as_colcon_installs_the_package() -> None:
    assert Path(get_package_prefix("ddpg_controller")) == PREFIX
    assert (PREFIX / "share/ament_index/resource_index/packages/ddpg_controller").is_file()
    share = PREFIX / "share" / "ddpg_controller"
    assert (share / "package.xml").read_text() == (PACKAGE / "package.xml").read_text()
    for folder, pattern in (("launch", "*.launch.py"), ("config", "*.yaml")):
        installed = sorted(p.name for p in (share / folder).glob(pattern))
        assert installed == sorted(p.name for p in (PACKAGE / folder).glob(pattern)), folder
    assert sorted(os.listdir(LIBEXEC)) == CONSOLE_SCRIPTS
    assert all(os.access(LIBEXEC / name, os.X_OK) for name in CONSOLE_SCRIPTS)


@pytest.mark.parametrize(
    ("executable", "arguments", "code", "message"),
    [
        ("sim_node", ["--ros-args", "-p", "task:=walker"], 2, "sim_node: unknown task 'walker'"),
        ("controller_node", ["--ros-args", "-p", "ddpg.tau:=5.0"], 2, "DDPG config: tau=5.0"),
        ("ddpg-train", ["--help"], 0, "usage: ddpg-train"),
        ("ddpg-deploy", ["--help"], 0, "usage: ddpg-deploy"),
    ],
)
def test_executable_runs_from_lib(
    executable: str, arguments: list, code: int, message: str, tmp_path
) -> None:
    result = subprocess.run(
        [LIBEXEC / executable, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=sourced_distro_environment(tmp_path),
    )
    assert result.returncode == code, result.stderr[-2000:]
    assert message in result.stdout + result.stderr


def sourced_distro_environment(tmp_path: Path) -> dict[str, str]:
    """This environment as ``source /opt/ros/<distro>/setup.bash`` would change it."""
    distro = tmp_path / "opt_ros_distro"
    site_packages = distro / "lib" / "python3.10" / "site-packages"
    (site_packages / "rclpy").mkdir(parents=True)
    (site_packages / "rclpy" / "__init__.py").write_text(
        'raise ImportError("the distro\'s rclpy, built for another Python")\n'
    )
    return {
        **os.environ,
        "PYTHONPATH": str(site_packages),
        "LD_LIBRARY_PATH": str(distro / "lib"),
        "AMENT_PREFIX_PATH": f"{distro}:{PREFIX}",
    }


def test_deploy_node_runs_from_lib_until_ctrl_c_from_a_terminal(tmp_path, monkeypatch) -> None:
    """Ctrl-C in the terminal of ``ros2 launch`` reaches the node twice: from the terminal (the
    whole process group) and forwarded by launch, which may land while the node cleans up. Both
    end it cleanly, without a traceback."""
    for name, value in sourced_distro_environment(tmp_path).items():
        monkeypatch.setenv(name, value)  # NodeProcess passes this process's environment on
    node = NodeProcess([str(LIBEXEC / "deploy_node")], tmp_path / "deploy_node.log")
    deadline = time.monotonic() + 60
    while "deploy node up (unconfigured)" not in node.output():
        assert node.alive() and time.monotonic() < deadline, node.output()
        time.sleep(0.1)
    os.killpg(node.popen.pid, signal.SIGINT)
    while "shutdown:" not in node.output() and node.alive():
        time.sleep(0.001)
    os.killpg(node.popen.pid, signal.SIGINT)
    assert node.wait(30) == 0, node.output()
    assert "Traceback" not in node.output()
    node.stop()


def test_a_launcher_keeps_the_callers_ament_prefixes_after_the_venv(tmp_path) -> None:
    """A user's description package exported on AMENT_PREFIX_PATH is found from lib/ too."""
    prefix = tmp_path / "user_ws"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "my_robot").touch()
    (prefix / "share" / "my_robot").mkdir()
    urdf = PACKAGE / "ddpg_controller" / "tasks" / "builtin" / "urdf" / "pendulum.urdf"
    (prefix / "share" / "my_robot" / "pendulum.urdf").write_text(urdf.read_text())
    spec = tmp_path / "my_robot.yaml"
    spec.write_text(
        "robot: {urdf: 'package://my_robot/pendulum.urdf', joints: [pendulum_joint]}\n"
        "command: {interface: effort}\n"
        "observation: [joint_position]\n"
        "reward: [{term: joint_position_sq, weight: -1.0}]\n"
        "timing: {control_period: 0.05, episode_steps: 5}\n"
        "solved_threshold: 0.0\n"
    )
    environment = sourced_distro_environment(tmp_path)
    environment["AMENT_PREFIX_PATH"] += f":{prefix}"
    result = subprocess.run(
        [LIBEXEC / "ddpg-train", "--check-task", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"robot: {prefix}/share/my_robot/pendulum.urdf" in result.stdout


def test_setup_waits_for_a_setup_under_way() -> None:
    """Two ``./run setup`` at once (a second terminal) take turns instead of both installing."""
    import fcntl

    root = PACKAGE.parents[2]
    with open(f"{root}/.venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a setup under way
        setup = subprocess.Popen(
            [root / "run", "setup"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(2.0)
        assert setup.poll() is None, "setup went ahead while another held the lock"
    assert setup.wait(120) == 0
