"""ament_python package ddpg_controller.

The simulator lives in the folder ``sim/`` beside the Python package (the design card's layout) and
is installed as the subpackage ``ddpg_controller.sim``.
"""

from glob import glob

from setuptools import setup

PACKAGE = "ddpg_controller"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE, f"{PACKAGE}.learning", f"{PACKAGE}.tasks", f"{PACKAGE}.sim"],
    package_dir={PACKAGE: PACKAGE, f"{PACKAGE}.sim": "sim"},
    # The built-in task specs and their URDFs: read from the Python package (no ament index
    # needed), and installed to share/ddpg_controller/tasks/ for users to copy.
    package_data={
        f"{PACKAGE}.tasks": ["builtin/*.yaml", "builtin/urdf/*.urdf", "task_spec.schema.json"]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/tasks", glob(f"{PACKAGE}/tasks/builtin/*.yaml")),
        # The built-in specs' "$schema=../task_spec.schema.json" resolves here too.
        (f"share/{PACKAGE}", [f"{PACKAGE}/tasks/task_spec.schema.json"]),
        (f"share/{PACKAGE}/tasks/urdf", glob(f"{PACKAGE}/tasks/builtin/urdf/*.urdf")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ddpg_controller maintainers",
    maintainer_email="maintainers@users.noreply.r-seed-6b7f9558.example",
    description="DDPG continuous control for ROS 2 robots: trained in PyBullet, run on hardware.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            f"sim_node = {PACKAGE}.sim_node:main",
            f"controller_node = {PACKAGE}.controller_node:main",
            f"deploy_node = {PACKAGE}.deploy_node:main",
            f"actor_node = {PACKAGE}.actor_node:main",
            f"learner_node = {PACKAGE}.learner_node:main",
            f"ddpg-train = {PACKAGE}.train_cli:main",
            f"ddpg-deploy = {PACKAGE}.deploy_cli:main",
        ],
    },
)
