"""The MuJoCo world: a task's robot in a second physics engine, the stand-in for a real robot.

A policy trained in PyBullet meets different physics here (another solver, integrator, actuator
model), as it would on hardware, while the task, the topics and the semantics stay the same
(``ddpg_controller.sim.engine``). The model is the task's URDF compiled by MuJoCo (mesh paths as
the spec loader resolved them, fixed-joint links kept as bodies so every link of the spec is a
frame), or the user's own MJCF (``robot.mjcf``). MuJoCo's URDF compiler adds no actuators; one is
added per joint of the spec, as its command interface says:

- effort: a motor, the torque (× the randomised actuator gain) clipped to the effort limit;
- velocity: a velocity servo (force = kv (q̇* − q̇)) limited to the effort limit;
- position: a drive's cascaded servo: its set point q* moves toward the command at v*, no faster
  than the joint's velocity limit; the position loop asks for the speed v* + (kp / kv) (q* − q),
  clipped to the velocity limit, and a velocity loop (force = kv (demand − q̇)) delivers it within
  the effort limit. Unclipped that is the PD servo kp (q* − q) + kv (v* − q̇); the clip keeps a
  joint that lags its set point (effort-saturated, or heavier than at home) from catching up
  beyond its velocity limit, as a real drive's velocity limit does.

Servo gains come from each joint's inertia at the home pose (diagonal of the joint-space inertia
matrix): a critically damped servo with a natural frequency of π / control_period, so it settles
within about one control period (PyBullet's motors are stiff constraints instead). The spec's
passive joints get no actuator; a movable joint the spec does not list at all (a Panda's fingers)
is held at its reference position by a joint equality, as PyBullet's default velocity motor holds
it. Contacts are off for a model built from a URDF (PyBullet's world has neither a floor nor
self-collision); a user's MJCF keeps its own. Joint damping and Coulomb friction are MuJoCo's own
(``dof_damping``, ``dof_frictionloss``), and so is the drives' reflected rotor inertia
(``dof_armature``, the spec's ``simulator.joint_armature``; a user's MJCF keeps its own), which
PyBullet lacks; the integrator is ``implicitfast`` so that stiff servos stay stable.
"""

from __future__ import annotations

import math
import re
from collections import deque

import mujoco
import numpy as np

from ddpg_controller.tasks import RandomizationConfig, RobotState, Task, TaskSpecError, load_task

from .engine import GRAVITY, RobotBase, checked_command, sample_range

__all__ = ["MujocoRobot"]

# Movable joint types a spec may leave unlisted (held still then).
_HELD_TYPES = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
# URDF compiler options: keep fixed-joint links as bodies (frames of the spec), drop visuals.
_URDF_COMPILER = '<mujoco><compiler fusestatic="false" discardvisual="true"/></mujoco>'


class MujocoRobot(RobotBase):
    """A task's robot in its own MuJoCo model and data; the API of
    :class:`~ddpg_controller.sim.engine.EngineRobot`. ``reset`` restores the nominal model and
    draws the domain randomisation, the initial state and the goal in the PyBullet robot's order,
    so the same seed starts the same episode in both engines when randomisation is off."""

    def __init__(self, task: Task | str, randomization: RandomizationConfig | None = None) -> None:
        self.task: Task = load_task(task) if isinstance(task, str) else task
        self.randomization = randomization if randomization is not None else self.task.randomization
        self.model = self._compile()
        self.data = mujoco.MjData(self.model)
        m, task = self.model, self.task
        # Sensed joints: the driven ones (one actuator each, in order), then the passive ones.
        sensed = task.sensed_joint_names
        self._qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in sensed])
        self._dofs = np.array([m.jnt_dofadr[m.joint(j).id] for j in sensed])
        self._bodies = {m.body(i).name: i for i in range(m.nbody)}
        for link in filter(None, (task.end_effector_link, task.upright_link)):
            self._body(link)  # a missing frame fails here, not mid-episode
        self._set_servo_gains()
        # The nominal model, restored before each reset's randomisation.
        self._nominal = {
            name: getattr(m, name).copy()
            for name in ("body_mass", "body_inertia", "dof_damping", "dof_frictionloss")
        }
        self._goal: np.ndarray | None = None
        self._gain = np.ones(task.action_dim)
        self._target = np.zeros(task.action_dim)  # position servo set point
        self._delay: deque[np.ndarray] = deque()
        self.applied_effort = np.zeros(task.action_dim)
        self.episode_steps = 0

    # ---- public API ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> RobotState:
        rng = self._reseed(seed)
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_kinematics(self.model, self.data)  # link frames at the zero pose, as PyBullet's
        self._randomize(rng)
        q, qd = self.task.sample_initial_joints(rng)
        self._goal = self._sample_goal(rng)
        self._write_joints(q, qd)
        n, position = self.task.action_dim, self.task.command_interface == "position"
        hold = np.asarray(q[:n], dtype=np.float64) if position else np.zeros(n)
        self._target = hold.copy()
        self.data.ctrl[:] = 0.0  # no torque, speed or speed demand until the first step
        self._delay = deque(hold.copy() for _ in range(self.randomization.action_delay_steps))
        self.applied_effort = np.zeros(self.task.action_dim)
        self.episode_steps = 0
        self._state = self._measure(rng)
        return self._state

    def set_joint_state(self, position, velocity) -> RobotState:
        """``RobotBase.set_joint_state``; a position servo's set point moves with the joints."""
        state = super().set_joint_state(position, velocity)
        if self.task.command_interface == "position":
            self._target = np.asarray(position[: self.task.action_dim], dtype=np.float64).copy()
        return state

    def step(self, command) -> RobotState:
        """Apply ``command`` (joint units, task joint order, the task's interface) for one
        control period."""
        if self._state is None:
            raise RuntimeError("call reset() first")
        task, m, d = self.task, self.model, self.data
        self._delay.append(checked_command(task, command))
        delayed = self._delay.popleft()
        interface = task.command_interface
        if interface != "position":
            d.ctrl[:] = self._gain * delayed
        dt = m.opt.timestep
        max_move = task.velocity_limit * dt
        driven = self._qpos[: task.action_dim]
        for _ in range(task.sim_substeps):
            if interface == "position":
                move = np.clip(delayed - self._target, -max_move, max_move)
                self._target += move
                demand = move / dt + (self._target - d.qpos[driven]) / self._lead
                d.ctrl[:] = np.clip(demand, -task.velocity_limit, task.velocity_limit)
            mujoco.mj_step(m, d)
        self.applied_effort = d.actuator_force.copy()
        self.episode_steps += 1
        every = task.goal.resample_every_steps if task.goal is not None else 0
        if every and self.episode_steps % every == 0:
            self._goal = self._sample_goal(self._rng)
        self._state = self._measure(self._rng)
        return self._state

    # ---- building the model ----------------------------------------------------------------------
    def _compile(self) -> mujoco.MjModel:
        task = self.task
        if task.mjcf is not None:
            source = str(task.mjcf)
            spec = mujoco.MjSpec.from_file(source)
            for actuator in list(spec.actuators):  # the spec's command interface decides
                spec.delete(actuator)
        elif task.urdf is not None:
            source = task.urdf.source
            text = re.sub(
                r"(<robot\b[^>]*>)", r"\1" + _URDF_COMPILER, task.urdf.resolved_text, count=1
            )
            spec = mujoco.MjSpec.from_string(text)
        else:
            raise TaskSpecError(f"{task.source}: the MuJoCo robot needs robot.urdf or robot.mjcf")
        if not task.fixed_base:
            spec.worldbody.first_body().add_freejoint()
        armature = dict(zip(task.sensed_joint_names, task.joint_armature, strict=True))
        for joint in spec.joints:
            if joint.name in armature:
                if task.mjcf is None:  # a user's MJCF keeps its own rotor inertia
                    joint.armature = armature[joint.name]
            elif joint.type in _HELD_TYPES:  # held still, as PyBullet's default motor holds it
                lock = spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=joint.name)
                lock.data[:5] = 0.0  # q − q0 = 0: held at the model's reference position
        for joint in task.joint_names:
            actuator = spec.add_actuator()
            actuator.name = f"{joint}_{task.command_interface}"
            actuator.target = joint
            actuator.trntype = mujoco.mjtTrn.mjTRN_JOINT
        try:
            model = spec.compile()
        except ValueError as exc:  # MuJoCo's compiler errors
            message = " ".join(str(exc).split())
            raise TaskSpecError(f"{source}: MuJoCo cannot compile it: {message}") from None
        model.opt.timestep = task.control_period / task.sim_substeps
        model.opt.gravity[:] = (0.0, 0.0, -GRAVITY)
        model.opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
        if task.mjcf is None:
            model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
        return model

    def _set_servo_gains(self) -> None:
        """Motor (effort) or servo (velocity, position) parameters of the spec's actuators."""
        task, m = self.task, self.model
        data = mujoco.MjData(m)
        data.qpos[self._qpos] = task.initial_position
        mujoco.mj_forward(m, data)
        inertia = np.zeros(m.nv)  # diagonal of M (mj_mulM: the same call in MuJoCo 3 and 4)
        unit, column = np.zeros(m.nv), np.zeros(m.nv)
        for dof in self._dofs:
            unit[:] = 0.0
            unit[dof] = 1.0
            mujoco.mj_mulM(m, data, column, unit)
            inertia[dof] = column[dof]
        omega = math.pi / task.control_period
        self._lead = 2.0 / omega  # kv / kp of the position servo: its position loop's time constant
        for i, dof in enumerate(self._dofs[: task.action_dim]):
            m.actuator_gainprm[i, :] = 0.0
            m.actuator_biasprm[i, :] = 0.0
            m.actuator_ctrllimited[i] = 0  # the command is clipped before it gets here
            m.actuator_gear[i, :] = 0.0
            m.actuator_gear[i, 0] = 1.0
            # Effort: gain × torque, unclipped after the gain as in PyBullet; servos: the limit.
            m.actuator_forcelimited[i] = int(task.command_interface != "effort")
            m.actuator_forcerange[i] = (-task.effort_limit[i], task.effort_limit[i])
            kv = 2.0 * inertia[dof] * omega  # with kp = I ω² (kp / kv = 1 / lead): critical
            if task.command_interface == "effort":
                m.actuator_gainprm[i, 0] = 1.0
            else:  # velocity, and position's velocity loop (its position loop is in step)
                m.actuator_gainprm[i, 0] = kv
                m.actuator_biasprm[i, 2] = -kv
            m.actuator_biastype[i] = mujoco.mjtBias.mjBIAS_AFFINE
            m.actuator_gaintype[i] = mujoco.mjtGain.mjGAIN_FIXED
            m.actuator_dyntype[i] = mujoco.mjtDyn.mjDYN_NONE

    def _randomize(self, rng: np.random.Generator) -> None:
        """Nominal model, then the spec's randomisation: mass and inertia per body (the URDF's
        links), damping and friction per joint, actuator gain (effort and velocity)."""
        m, task, cfg = self.model, self.task, self.randomization
        for name, value in self._nominal.items():
            getattr(m, name)[:] = value
        n = task.action_dim
        scales = sample_range(rng, cfg.mass_scale, m.nbody - 1)
        if cfg.mass_scale != (1.0, 1.0):
            m.body_mass[1:] *= scales
            m.body_inertia[1:] *= scales[:, None]
        sensed = len(self._dofs)  # passive joints' damping and friction are randomised too
        m.dof_damping[self._dofs] = task.joint_damping + sample_range(
            rng, cfg.joint_damping, sensed
        )
        friction = task.joint_friction + sample_range(rng, cfg.joint_friction, sensed)
        m.dof_frictionloss[self._dofs] = friction
        self._gain = sample_range(rng, cfg.actuator_gain, n)

    # ---- state -----------------------------------------------------------------------------------
    def _write_joints(self, position, velocity) -> None:
        self.data.qpos[self._qpos] = np.asarray(position, dtype=np.float64)
        self.data.qvel[self._dofs] = np.asarray(velocity, dtype=np.float64)
        mujoco.mj_forward(self.model, self.data)

    def _body(self, link: str) -> int:
        """The body of a link (every URDF link is one: fusestatic is off); one line naming the
        model otherwise."""
        if link in self._bodies:
            return self._bodies[link]
        source = self.task.mjcf or self.task.urdf.source
        raise TaskSpecError(f"{source}: link {link!r} is no body of the MuJoCo model")

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray | None:
        goal = self.task.sample_goal(rng)
        if goal is None:
            return None
        goal = np.asarray(goal, dtype=np.float64).copy()
        frame = self.task.goal.frame
        if frame == "world":
            return goal
        body = self._body(frame)
        return self.data.xpos[body] + self.data.xmat[body].reshape(3, 3) @ goal

    def _joint_readings(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.qpos[self._qpos].copy(), self.data.qvel[self._dofs].copy()

    def _link_position(self, link: str) -> np.ndarray:
        return self.data.xpos[self._body(link)].copy()

    def _link_z_axis(self, link: str) -> np.ndarray:
        return self.data.xmat[self._body(link)].reshape(3, 3)[:, 2].copy()
