"""package.xml declares exactly what the package's code imports (rosdep installs from it)."""

from __future__ import annotations

import ast
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]

# Python module -> the package.xml key (ROS package name or rosdep key) that provides it. Each key
# was checked to resolve: the ROS packages in humble/, jazzy/ and kilted/distribution.yaml, the
# python3-* keys in rosdep/python.yaml (github.com/ros/rosdistro at 8468e88, 2026-08-22).
PROVIDERS = {
    "rclpy": "rclpy",
    "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs",
    "std_srvs": "std_srvs",
    "rosgraph_msgs": "rosgraph_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces",
    "ament_index_python": "ament_index_python",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "numpy": "python3-numpy",
    "yaml": "python3-yaml",
    "torch": "python3-torch",
    "matplotlib": "python3-matplotlib",
    "pybullet": "python3-pybullet-pip",
    "pybullet_data": "python3-pybullet-pip",
    "gymnasium": "python3-gymnasium-pip",
    "mujoco": "python3-mujoco-pip",
    "imageio": "python3-imageio",
}
# Needed at run time without an import statement of ours: torch.utils.tensorboard imports it.
INDIRECT = {"python3-tensorboard-pip"}
# The tests' own: pytest, and jsonschema (the task spec's schema validates the built-in specs).
TEST_KEYS = {"python3-pytest", "python3-jsonschema"}


def _imported_modules() -> set[str]:
    sources = [*(PACKAGE / "ddpg_controller").rglob("*.py"), *(PACKAGE / "sim").rglob("*.py")]
    sources += (PACKAGE / "launch").glob("*.launch.py")
    modules: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "ddpg_controller"}


def test_exec_depends_match_the_imports() -> None:
    manifest = ElementTree.parse(PACKAGE / "package.xml").getroot()
    declared = {element.text for element in manifest.iter("exec_depend")}
    imported = _imported_modules()
    unknown = imported - set(PROVIDERS)
    assert not unknown, f"add these imports to PROVIDERS and package.xml: {unknown}"
    assert declared == {PROVIDERS[m] for m in imported} | INDIRECT


def test_every_dependency_key_is_one_checked_against_rosdep() -> None:
    manifest = ElementTree.parse(PACKAGE / "package.xml").getroot()
    keys = {e.text for e in manifest if e.tag.endswith("depend")}
    assert keys <= {*PROVIDERS.values(), *INDIRECT, *TEST_KEYS}, "e.g. ament_python is none"


def test_manifest_is_format_3_ament_python() -> None:
    manifest = ElementTree.parse(PACKAGE / "package.xml").getroot()
    assert manifest.get("format") == "3"
    assert manifest.findtext("name") == "ddpg_controller"
    assert manifest.find("export/build_type").text == "ament_python"
    assert {e.text for e in manifest.iter("test_depend")} == TEST_KEYS


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("ddpg_controller.learning.training", ("rclpy", "pybullet")),
        ("ddpg_controller.learning.export", ("rclpy", "pybullet")),
        ("ddpg_controller.sim.envs", ("torch", "rclpy")),
        ("ddpg_controller.sim.video", ("torch", "rclpy")),
        ("ddpg_controller.deploy_node", ("pybullet", "gymnasium", "imageio")),
        ("ddpg_controller.tasks", ("pybullet", "gymnasium", "torch", "rclpy")),
    ],
)
def test_layers_stay_apart(module: str, forbidden: tuple[str, ...]) -> None:
    """The learning core imports no ROS; the simulator imports no torch; the task contract,
    which a robot computer reads, imports neither the simulator nor torch nor ROS."""
    code = (
        f"import sys, {module}; "
        f"bad = [m for m in {forbidden!r} if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
