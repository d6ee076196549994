"""The PyBullet world: one simulated robot per physics client.

Both the gymnasium env (``ddpg_controller.sim.envs.RobotEnv``) and the ROS 2 sim node
(``ddpg_controller.sim_node``) wrap :class:`SimulatedRobot`, so the same seed and the same actions
give the same states through either, by construction.

Every ``reset`` rebuilds the world (``resetSimulation`` + ``loadURDF``, ~16 ms for the iiwa), so an
episode depends only on the RNG state and the actions, never on solver warm-start left over from an
earlier episode.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import deque

import numpy as np
import pybullet

from ddpg_controller.tasks import RandomizationConfig, RobotState, Task, load_task

from .engine import GRAVITY, RobotBase, checked_command
from .engine import sample_range as _sample

__all__ = ["SimulatedRobot"]


class SimulatedRobot(RobotBase):
    """A task's robot in its own PyBullet physics client (DIRECT).

    ``reset(seed)`` starts an episode: a seed reseeds the RNG, ``None`` continues it (the first
    reset without a seed seeds from OS entropy), as gymnasium does. ``step(command)`` clips the
    joint command to the task's command bounds and applies it for one control period
    (``task.sim_substeps`` physics steps) through the task's interface: torques (effort), PyBullet
    VELOCITY_CONTROL (velocity) or POSITION_CONTROL (position), the motors' force limited to the
    URDF's effort limits (PyBullet's own default would be 1e5, bullet3 #2381). Passive joints
    (``task.passive_joint_names``) are never commanded: their default velocity motor is off, so
    only the URDF's (or the spec's) damping and friction act on them.
    """

    def __init__(self, task: Task | str, randomization: RandomizationConfig | None = None) -> None:
        self.task: Task = load_task(task) if isinstance(task, str) else task
        if self.task.urdf is None:
            raise ValueError(f"{self.task.source}: the simulator needs robot.urdf")
        self.randomization = randomization if randomization is not None else self.task.randomization
        self._client: int | None = pybullet.connect(pybullet.DIRECT)
        if self._client < 0:
            raise RuntimeError("pybullet.connect(DIRECT) failed")
        self._urdf_dir: tempfile.TemporaryDirectory | None = None
        self._urdf_file = self._urdf_for_pybullet()
        self._body: int | None = None
        self._joints: list[int] = []  # driven
        self._passive: list[int] = []
        self._links: dict[str, int] = {}
        self._goal: np.ndarray | None = None
        self._goal_marker: int | None = None  # a red sphere that render() draws at the goal
        self._gain = np.ones(self.task.action_dim)
        self._friction = np.zeros(self.task.action_dim)
        self._delay: deque[np.ndarray] = deque()
        self.applied_effort = np.zeros(self.task.action_dim)
        self.episode_steps = 0

    # ---- public API ------------------------------------------------------------------------------
    @property
    def physics_client(self) -> int:
        if self._client is None:
            raise RuntimeError("robot is closed")
        return self._client

    def reset(self, seed: int | None = None) -> RobotState:
        rng = self._reseed(seed)
        self._build_world()
        self._goal_marker = None
        self._randomize(rng)
        q, qd = self.task.sample_initial_joints(rng)
        self._goal = self._sample_goal(rng)
        self._write_joints(q, qd)
        driven_q = np.asarray(q[: self.task.action_dim], dtype=np.float64)
        if self.task.command_interface == "position":
            self._hold(driven_q)
        zero = np.zeros(self.task.action_dim)
        hold = driven_q if self.task.command_interface == "position" else zero
        self._delay = deque(hold.copy() for _ in range(self.randomization.action_delay_steps))
        self.applied_effort = zero
        self.episode_steps = 0
        self._state = self._measure(rng)
        return self._state

    def _write_joints(self, position, velocity) -> None:
        cid, body = self.physics_client, self._body
        for j, qj, qdj in zip(self._joints + self._passive, position, velocity, strict=True):
            pybullet.resetJointState(body, j, float(qj), float(qdj), physicsClientId=cid)

    def step(self, command) -> RobotState:
        """Apply ``command`` (joint units, task joint order, the task's interface) for one
        control period."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        task = self.task
        self._delay.append(checked_command(task, command))
        delayed = self._delay.popleft()
        cid, body, joints = self.physics_client, self._body, self._joints
        interface = task.command_interface
        if interface == "position":
            self._hold(delayed)
        elif interface == "velocity":
            pybullet.setJointMotorControlArray(
                body,
                joints,
                pybullet.VELOCITY_CONTROL,
                targetVelocities=(self._gain * delayed).tolist(),
                forces=task.effort_limit.tolist(),
                physicsClientId=cid,
            )
        friction = np.any(self._friction > 0.0)
        for _ in range(task.sim_substeps):
            if interface == "effort":
                torques = (self._gain * delayed).tolist()
            elif friction:
                qd = np.array(
                    [s[1] for s in pybullet.getJointStates(body, joints, physicsClientId=cid)]
                )
                torques = (-self._friction * np.sign(qd)).tolist()
            else:
                torques = None
            if torques is not None:
                pybullet.setJointMotorControlArray(
                    body, joints, pybullet.TORQUE_CONTROL, forces=torques, physicsClientId=cid
                )
            pybullet.stepSimulation(physicsClientId=cid)
        if interface == "effort":
            self.applied_effort = self._gain * delayed
        else:
            states = pybullet.getJointStates(body, joints, physicsClientId=cid)
            self.applied_effort = np.array([s[3] for s in states], dtype=np.float64)
        self.episode_steps += 1
        every = task.goal.resample_every_steps if task.goal is not None else 0
        if every and self.episode_steps % every == 0:
            self._goal = self._sample_goal(self._rng)
        self._state = self._measure(self._rng)
        return self._state

    def render(self, width: int = 160, height: int = 120) -> np.ndarray:
        """The scene as an RGB frame (``height`` x ``width`` x 3, uint8) from PyBullet's CPU
        renderer (``ER_TINY_RENDERER``: offscreen, no display, no GPU), the camera aimed at the
        whole reach of the robot and across its first joint's axis, so a planar arm is seen
        from above and a pendulum from the side."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        cid = self.physics_client
        if self._goal is not None:
            self._show_goal()
        target, distance, yaw, pitch = self._camera()
        view = pybullet.computeViewMatrixFromYawPitchRoll(
            target, distance, yaw, pitch, 0.0, 2, physicsClientId=cid
        )
        projection = pybullet.computeProjectionMatrixFOV(
            60.0, width / height, 0.01, 10.0 * distance, physicsClientId=cid
        )
        _, _, rgba, _, _ = pybullet.getCameraImage(
            width,
            height,
            view,
            projection,
            renderer=pybullet.ER_TINY_RENDERER,
            physicsClientId=cid,
        )
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def _show_goal(self) -> None:
        """A red sphere at the goal: visual only (no mass, no collision), so it moves nothing."""
        cid, goal = self.physics_client, self._goal.tolist()
        if self._goal_marker is None:
            shape = pybullet.createVisualShape(
                pybullet.GEOM_SPHERE,
                radius=0.02,
                rgbaColor=[0.9, 0.1, 0.1, 1.0],
                physicsClientId=cid,
            )
            self._goal_marker = pybullet.createMultiBody(
                baseMass=0.0, baseVisualShapeIndex=shape, basePosition=goal, physicsClientId=cid
            )
        pybullet.resetBasePositionAndOrientation(
            self._goal_marker, goal, [0.0, 0.0, 0.0, 1.0], physicsClientId=cid
        )

    def _camera(self) -> tuple[list[float], float, float, float]:
        """Target, distance, yaw and pitch, so that the robot's reach fills the view: the
        farthest corner of a link's collision box (of a link without collision geometry, as the
        pendulum's rod, the far end of a rod from its frame through its centre of mass) and the
        goal."""
        cid, body = self.physics_client, self._body
        base = np.array(pybullet.getBasePositionAndOrientation(body, physicsClientId=cid)[0])
        points: list = []
        for link in range(-1, pybullet.getNumJoints(body, physicsClientId=cid)):
            low, high = (np.array(c) for c in pybullet.getAABB(body, link, physicsClientId=cid))
            if link >= 0 and np.max(high - low) < 0.01:
                state = pybullet.getLinkState(body, link, physicsClientId=cid)
                points.append(2.0 * np.array(state[0]) - np.array(state[4]))
            else:
                points += [low, high]
        if self._goal is not None:
            points.append(self._goal)
        reach = max(0.05, *(float(np.linalg.norm(np.subtract(p, base))) for p in points))
        joint = self._joints[0]
        axis = np.array(pybullet.getJointInfo(body, joint, physicsClientId=cid)[13])
        orientation = pybullet.getLinkState(body, joint, physicsClientId=cid)[5]
        axis = np.array(pybullet.getMatrixFromQuaternion(orientation)).reshape(3, 3) @ axis
        if abs(axis[2]) > 0.7:  # vertical first joint: an arm turning about its base
            target = base + np.array([0.0, 0.0, 0.3 * reach])
            return target.tolist(), 1.9 * reach, 30.0, -45.0
        # Horizontal: look along the axis, at the plane the joint swings in.
        yaw = float(np.degrees(np.arctan2(axis[0], -axis[1])))
        return base.tolist(), 1.9 * reach, yaw, -10.0

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(pybullet.error):
                pybullet.disconnect(physicsClientId=self._client)
            self._client = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ---- internals -------------------------------------------------------------------------------
    def _urdf_for_pybullet(self) -> str:
        """PyBullet does not resolve ``package://`` (bullet3 #3224), nor read a string: a URDF
        whose mesh URIs the task resolved, or a ``robot_description``, goes to a temporary file
        (kept until the robot is garbage-collected)."""
        urdf = self.task.urdf
        if urdf.path is not None and urdf.path.read_text() == urdf.resolved_text:
            return str(urdf.path)
        self._urdf_dir = tempfile.TemporaryDirectory(prefix="ddpg_controller_urdf_")
        file = f"{self._urdf_dir.name}/{urdf.name or 'robot'}.urdf"
        with open(file, "w") as f:
            f.write(urdf.resolved_text)
        return file

    def _hold(self, target: np.ndarray) -> None:
        """POSITION_CONTROL to ``target``: the spec's gains, the URDF's effort and velocity
        limits as the motor's force and speed limits."""
        task, cid, body = self.task, self.physics_client, self._body
        for i, joint in enumerate(self._joints):
            pybullet.setJointMotorControl2(
                body,
                joint,
                pybullet.POSITION_CONTROL,
                targetPosition=float(target[i]),
                force=float(task.effort_limit[i]),
                maxVelocity=float(task.velocity_limit[i]),
                positionGain=task.position_gain,
                velocityGain=task.velocity_gain,
                physicsClientId=cid,
            )

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray | None:
        goal = self.task.sample_goal(rng)
        if goal is None:
            return None
        goal = np.asarray(goal, dtype=np.float64).copy()
        frame = self.task.goal.frame
        if frame == "world":
            return goal
        cid, body = self.physics_client, self._body
        if self._links.get(frame, -1) == -1:
            position, orientation = pybullet.getBasePositionAndOrientation(
                body, physicsClientId=cid
            )
        else:
            link = pybullet.getLinkState(
                body, self._links[frame], computeForwardKinematics=True, physicsClientId=cid
            )
            position, orientation = link[4], link[5]
        world, _ = pybullet.multiplyTransforms(
            position, orientation, goal.tolist(), [0.0, 0.0, 0.0, 1.0]
        )
        return np.array(world, dtype=np.float64)

    def _build_world(self) -> None:
        cid = self.physics_client
        task = self.task
        pybullet.resetSimulation(physicsClientId=cid)
        pybullet.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=cid)
        pybullet.setTimeStep(task.control_period / task.sim_substeps, physicsClientId=cid)
        # Inertia from the URDF: PyBullet otherwise recomputes it from the collision shapes.
        body = pybullet.loadURDF(
            self._urdf_file,
            useFixedBase=task.fixed_base,
            flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
            physicsClientId=cid,
        )
        if body < 0:
            raise RuntimeError(f"PyBullet cannot load {task.urdf.source}")
        self._body = body
        by_joint: dict[str, int] = {}
        self._links = {}
        for j in range(pybullet.getNumJoints(body, physicsClientId=cid)):
            info = pybullet.getJointInfo(body, j, physicsClientId=cid)
            by_joint[info[1].decode()] = j
            self._links[info[12].decode()] = j
        root = pybullet.getBodyInfo(body, physicsClientId=cid)[0].decode()
        self._links[root] = -1
        self._joints = [by_joint[name] for name in task.joint_names]
        self._passive = [by_joint[name] for name in task.passive_joint_names]
        # PyBullet's default link damping (0.04) would dissipate energy: the tasks model none.
        for link in range(-1, pybullet.getNumJoints(body, physicsClientId=cid)):
            pybullet.changeDynamics(
                body, link, linearDamping=0.0, angularDamping=0.0, physicsClientId=cid
            )

    def _randomize(self, rng: np.random.Generator) -> None:
        cid, body, task, cfg = self.physics_client, self._body, self.task, self.randomization
        n, sensed = task.action_dim, self._joints + self._passive
        links = range(-1, pybullet.getNumJoints(body, physicsClientId=cid))
        scales = _sample(rng, cfg.mass_scale, len(links))
        if cfg.mass_scale != (1.0, 1.0):
            for link, s in zip(links, scales, strict=True):
                info = pybullet.getDynamicsInfo(body, link, physicsClientId=cid)
                mass, inertia = info[0], info[2]
                if mass > 0.0:
                    pybullet.changeDynamics(
                        body,
                        link,
                        mass=mass * s,
                        localInertiaDiagonal=[float(i * s) for i in inertia],
                        physicsClientId=cid,
                    )
        damping = task.joint_damping + _sample(rng, cfg.joint_damping, len(sensed))
        friction = task.joint_friction + _sample(rng, cfg.joint_friction, len(sensed))
        self._friction = friction[:n]
        self._gain = _sample(rng, cfg.actuator_gain, n)
        for j, d in zip(sensed, damping, strict=True):
            pybullet.changeDynamics(body, j, jointDamping=float(d), physicsClientId=cid)
        # Passive joints: PyBullet's default velocity motor off (force = their friction, 0 unless
        # the URDF, the spec or the randomisation gives one), as effort-driven joints below.
        if self._passive:
            pybullet.setJointMotorControlArray(
                body,
                self._passive,
                pybullet.VELOCITY_CONTROL,
                targetVelocities=[0.0] * len(self._passive),
                forces=friction[n:].tolist(),
                physicsClientId=cid,
            )
        # Effort: disable the default velocity motors; a zero-velocity motor with a force limit
        # equal to the friction models Coulomb friction. Velocity/position: the motor holds still
        # with the URDF's effort limit until the first command.
        forces = self._friction if task.command_interface == "effort" else task.effort_limit
        pybullet.setJointMotorControlArray(
            body,
            self._joints,
            pybullet.VELOCITY_CONTROL,
            targetVelocities=[0.0] * n,
            forces=forces.tolist(),
            physicsClientId=cid,
        )

    def _joint_readings(self) -> tuple[np.ndarray, np.ndarray]:
        cid = self.physics_client
        states = pybullet.getJointStates(
            self._body, self._joints + self._passive, physicsClientId=cid
        )
        pos = np.array([s[0] for s in states], dtype=np.float64)
        vel = np.array([s[1] for s in states], dtype=np.float64)
        return pos, vel

    def _link_position(self, link: str) -> np.ndarray:
        return np.array(self._link_pose(link)[0])

    def _link_z_axis(self, link: str) -> np.ndarray:
        orientation = self._link_pose(link)[1]
        matrix = pybullet.getMatrixFromQuaternion(orientation, physicsClientId=self.physics_client)
        return np.array([matrix[2], matrix[5], matrix[8]], dtype=np.float64)

    def _link_pose(self, link: str):
        cid, body, index = self.physics_client, self._body, self._links[link]
        if index == -1:
            return pybullet.getBasePositionAndOrientation(body, physicsClientId=cid)
        state = pybullet.getLinkState(
            body, index, computeForwardKinematics=True, physicsClientId=cid
        )
        return state[4], state[5]
