"""``ddpg-deploy`` (``./run deploy``): run an exported policy on the sim node as a stand-in robot.

Starts the nodes of ``launch/deploy.launch.py`` plus the simulator, as two processes talking over
DDS (``sim_node`` in ``realtime`` mode by default, and the lifecycle node ``deploy_node``), with
the same parameter file and command lines ``ros2 launch`` would use (``train_cli``'s helpers).
It then plays the lifecycle manager and the evaluator:

1. ``configure`` through ``/deploy/change_state`` (lifecycle_msgs/srv/ChangeState);
2. per episode: ``activate``, (``--seed``: set the sim's ``seed`` parameter to seed + episode)
   ``sim/reset``, observe ``task.max_episode_steps`` steps from the reset's state, ``deactivate``
   (the node publishes the safe command); in lockstep, wait until the sim is idle in between;
3. the episode return is ``sum task.reward(s_k, a_k, s_k+1)`` over the states this process
   received, with a_k the command the deploy node published for s_k (``deploy/command_state``);
4. prints the returns and their mean, the node's latency line, and stops both nodes (SIGINT).

With ``--sim-mode lockstep`` and ``--seed`` the returns equal an in-process evaluation of the same
policy on ``RobotEnv`` with seeds seed, seed+1, ... (``learning.training.evaluate``), given no
rate limit (``--param max_delta:=[0.0]``): tests/test_deploy_reproduces_eval.py checks it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import numpy as np

from ddpg_controller.processes import NodeProcess
from ddpg_controller.ros_common import isolate_ros_traffic, make_executor, reset_stamp_ns
from ddpg_controller.train_cli import (
    SIM_NODE,
    NodeSpec,
    add_task_arguments,
    list_tasks,
    node_command,
    resolve_task,
    task_file_parameter,
)

DEPLOY_NODE = NodeSpec(executable="deploy_node", name="deploy")


def launch_parameters(spec: NodeSpec, args: argparse.Namespace) -> dict[str, object]:
    """The per-node parameters ``launch/deploy.launch.py`` sets from its arguments (the sim node
    is the CLI's stand-in robot and not part of the launch file)."""
    task_file = task_file_parameter(args)
    if spec == SIM_NODE:
        return {
            "task": args.task or args.policy_task or "pendulum",
            "task_file": task_file,
            "mode": args.sim_mode,
            "seed": args.seed or 0,
            "engine": args.engine,
        }
    policy = str(Path(args.policy).resolve())
    return {"task": args.task or "", "task_file": task_file, "policy": policy}


def policy_task(policy: Path) -> str:
    """The built-in task a policy was trained on (``--task`` left out): the deploy node then runs
    the spec the policy carries, and the stand-in simulator that built-in task."""
    from ddpg_controller.learning.export import PolicyFileError, load_policy
    from ddpg_controller.tasks import builtin_task_names

    try:
        name = load_policy(policy).metadata.get("task")
    except PolicyFileError as exc:
        raise SystemExit(f"[ddpg-deploy] {exc}") from None
    if name not in builtin_task_names():
        raise SystemExit(
            f"[ddpg-deploy] policy {policy} was trained on task {name!r}, not a built-in one: "
            "give --task-file <its spec>.yaml (the simulator needs its URDF)"
        )
    return name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ddpg-deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", type=Path, help="exported policy file (required)")
    add_task_arguments(parser, default_task=None)
    parser.set_defaults(policy_task=None)  # main: the task the policy carries, for the sim
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--config", type=Path, help="parameter file (default: the task's)")
    parser.add_argument(
        "--seed", type=int, help="episode i resets the sim with seed+i (default: sim's RNG)"
    )
    parser.add_argument("--sim-mode", choices=("realtime", "lockstep"), default="realtime")
    parser.add_argument("--namespace", default="", help="ROS namespace of both nodes")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="extra deploy node parameter, e.g. --param max_delta:=[0.5] (repeatable)",
    )
    parser.add_argument("--log-dir", type=Path, help="default: runs/deploy-<task>-<time>")
    parser.add_argument(
        "--record",
        action="store_true",
        help="the sim node writes <log-dir>/rollout.mp4 (a GIF without ffmpeg) of the run",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per episode at most")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_tasks:
        print(list_tasks())
        return 0
    if args.policy is None or not args.policy.is_file():
        raise SystemExit(f"policy file not found: {args.policy} (--policy is required)")
    if args.task is None and args.task_file is None:
        args.policy_task = policy_task(args.policy)
    task, config = resolve_task(args, args.policy_task)
    task_name = task.name
    if not config.exists():
        raise SystemExit(f"parameter file not found: {config}")
    log_dir = args.log_dir or Path("runs") / f"deploy-{task_name}-{datetime.now():%m%d-%H%M%S}"
    log_dir.mkdir(parents=True, exist_ok=True)
    if "ROS_DOMAIN_ID" not in os.environ:
        isolate_ros_traffic()
    deploy_parameters = dict(launch_parameters(DEPLOY_NODE, args))
    deploy_parameters["exact_signal_stamps"] = args.sim_mode == "lockstep"
    if args.sim_mode == "lockstep":
        # In lockstep a watchdog command would step the sim: only a real stall may trip it.
        deploy_parameters["state_timeout"] = 2.0
    for item in args.param:
        key, sep, value = item.partition(":=")
        if not sep:
            raise SystemExit(f"--param takes NAME:=VALUE, got {item!r}")
        deploy_parameters[key] = value
    sim_parameters = dict(launch_parameters(SIM_NODE, args))
    if args.record:  # the simulator renders: the deploy node stays as a robot computer runs it
        sim_parameters["record"] = str((log_dir / "rollout.mp4").resolve())
    sim = NodeProcess(
        node_command(SIM_NODE, config, sim_parameters, args.namespace),
        log_dir / "sim_node.log",
    )
    deploy = NodeProcess(
        node_command(DEPLOY_NODE, config, deploy_parameters, args.namespace),
        log_dir / "deploy_node.log",
    )
    print(
        f"[ddpg-deploy] task {task_name}, policy {args.policy}, sim {args.engine} {args.sim_mode}"
    )
    print(f"[ddpg-deploy] ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID')}, logs in {log_dir}")
    driver = None
    code = 1
    try:
        driver = DeployDriver(
            str(args.task_file or task_name), args.namespace, lockstep=args.sim_mode == "lockstep"
        )
        driver.trace = open(log_dir / "steps.csv", "w")  # noqa: SIM115 (closed in close())
        driver.trace.write("episode,stamp_ns,position,velocity,command\n")
        returns = driver.run(args.episodes, args.seed, args.timeout, (sim, deploy))
        for i, value in enumerate(returns):
            distance = driver.final_distances[i] if driver.final_distances else None
            reach = "" if distance is None else f", final end-effector distance {distance:.6f} m"
            print(f"[ddpg-deploy] episode {i}: return {value:.6f}{reach}")
        print(f"[ddpg-deploy] mean return {float(np.mean(returns)):.6f} over {len(returns)}")
        code = 0
    except KeyboardInterrupt:
        print("\n[ddpg-deploy] interrupted", file=sys.stderr)
    except DeployError as exc:
        print(f"[ddpg-deploy] {exc}", file=sys.stderr)
        print(deploy.output()[-3000:], file=sys.stderr)
    finally:
        if driver is not None:
            driver.close()
        deploy.stop()
        sim.stop()
    latency = re.findall(r"shutdown: (latency .*)", deploy.output())
    if latency:
        print(f"[ddpg-deploy] deploy node {latency[-1]}")
    recording = re.findall(r"recording: (.*)", sim.output())
    if recording:
        print(f"[ddpg-deploy] video {recording[-1]}")
    return code


class DeployError(RuntimeError):
    """A lifecycle transition failed, a node died or an episode timed out."""


class DeployDriver:
    """An rclpy node in this process: lifecycle manager of ``deploy`` and evaluator of episodes."""

    def __init__(self, task_name: str, namespace: str = "", lockstep: bool = False) -> None:
        import rclpy
        from geometry_msgs.msg import PointStamped
        from lifecycle_msgs.srv import ChangeState
        from rcl_interfaces.srv import SetParameters
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_srvs.srv import Trigger

        # The observer must not lose a state: a deep reliable queue (a lockstep chain runs at
        # kHz rates while this process computes).
        observer_qos = QoSProfile(
            reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10_000
        )
        from ddpg_controller.state_assembly import StateAssembler
        from ddpg_controller.tasks import load_task

        self._rclpy = rclpy
        self.task = load_task(task_name)
        self.lockstep = lockstep
        prefix = f"/{namespace.strip('/')}" if namespace.strip("/") else ""
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"deploy_driver_{os.getpid()}", context=self.context)
        self.executor = make_executor(self.context)
        self.executor.add_node(self.node)
        node = self.node
        self.change_state_client = node.create_client(ChangeState, f"{prefix}/deploy/change_state")
        self.reset_client = node.create_client(Trigger, f"{prefix}/sim/reset")
        self.parameters_client = node.create_client(SetParameters, f"{prefix}/sim/set_parameters")
        self.assembler = StateAssembler(
            self.task.signal_names, exact_stamps=lockstep, driven_joints=self.task.action_dim
        )
        self.states: dict[int, object] = {}  # stamp_ns -> RobotState of the current episode
        self.episode_start: int | None = None  # stamp of the episode's first state
        self.commands: dict[int, np.ndarray] = {}  # state stamp -> command answering it
        self.last_state_time = time.monotonic()
        self.processes: tuple = ()  # NodeProcess objects that must stay alive
        self.trace = None  # file: one line per step (episode, stamp, position, velocity, command)
        self.episodes_done = 0
        self.final_distances: list[float] = []  # reach tasks: end effector to goal, episode end
        self.joint_states_topic = f"{prefix}/joint_states"
        self.signal_topics = [f"{prefix}/{name}" for name in self.task.signal_names]
        for name, topic in zip(self.task.signal_names, self.signal_topics, strict=True):
            node.create_subscription(
                PointStamped, topic, partial(self._on_signal, name), observer_qos
            )
        node.create_subscription(
            JointState, self.joint_states_topic, self._on_joint_states, observer_qos
        )
        node.create_subscription(
            JointState, f"{prefix}/deploy/command_state", self._on_command_state, observer_qos
        )

    # ---- ROS plumbing --------------------------------------------------------------------------
    def spin_until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            for process in self.processes:
                if not process.alive():
                    raise DeployError(f"{process.args[0]} exited:\n{process.output()[-3000:]}")
            self.executor.spin_once(timeout_sec=0.01)
        return True

    def call(self, client, request, timeout: float = 10.0):
        if not self.spin_until(client.service_is_ready, timeout):
            raise DeployError(f"service {client.srv_name} not available after {timeout:.0f} s")
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout) or future.result() is None:
            raise DeployError(f"service {client.srv_name} did not answer")
        return future.result()

    def transition(self, label: str, timeout: float = 30.0) -> None:
        """``configure``, ``activate``, ``deactivate``, ``cleanup``, ``shutdown``."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {
            "configure": Transition.TRANSITION_CONFIGURE,
            "activate": Transition.TRANSITION_ACTIVATE,
            "deactivate": Transition.TRANSITION_DEACTIVATE,
            "cleanup": Transition.TRANSITION_CLEANUP,
        }
        request = ChangeState.Request()
        request.transition.id = ids[label]
        if not self.call(self.change_state_client, request, timeout).success:
            raise DeployError(f"lifecycle transition {label!r} of the deploy node failed")

    def _on_signal(self, name: str, msg) -> None:
        from ddpg_controller.ros_common import stamp_to_ns

        value = np.array([msg.point.x, msg.point.y, msg.point.z])
        self._store(self.assembler.add_signal(name, stamp_to_ns(msg.header.stamp), value))

    def _on_joint_states(self, msg) -> None:
        from ddpg_controller.ros_common import joint_state_by_name, stamp_to_ns

        self.last_state_time = time.monotonic()
        position, velocity = joint_state_by_name(msg, self.task.sensed_joint_names)
        stamp = stamp_to_ns(msg.header.stamp)
        self._store(self.assembler.add_joints(stamp, position, velocity))

    def _store(self, complete) -> None:
        if complete is not None and self.episode_start is not None:
            stamp, state = complete
            if stamp >= self.episode_start:
                self.states[stamp] = state

    def _on_command_state(self, msg) -> None:
        from ddpg_controller.ros_common import stamp_to_ns

        stamp = stamp_to_ns(msg.header.stamp)
        values = getattr(msg, self.task.command_interface)
        if stamp:
            self.commands[stamp] = np.asarray(values, dtype=np.float64)

    # ---- episodes ------------------------------------------------------------------------------
    def run(
        self, episodes: int, seed: int | None, timeout: float, processes: tuple = ()
    ) -> list[float]:
        from std_srvs.srv import Trigger

        self.processes = tuple(processes)
        self.transition("configure")
        self.wait_for_deploy_endpoints()
        # A first reset ends the lockstep sim's re-publication of its start-up state, which an
        # active node would otherwise answer (a second command in flight in lockstep).
        self.call(self.reset_client, Trigger.Request())
        returns = []
        for episode in range(episodes):
            returns.append(self.episode(None if seed is None else seed + episode, timeout))
        self.transition("cleanup")
        return returns

    def wait_for_deploy_endpoints(self, timeout: float = 10.0) -> None:
        """After configure: the deploy node's state subscriptions exist in the graph; then a
        margin so the sim's publishers match them before the first reset (a state lost to
        discovery would leave a lockstep episode to the watchdog)."""
        topics = [self.joint_states_topic, *self.signal_topics]

        def ready() -> bool:
            return all(
                any(i.node_name == "deploy" for i in self.node.get_subscriptions_info_by_topic(t))
                for t in topics
            )

        if not self.spin_until(ready, timeout):
            raise DeployError(f"the deploy node's subscriptions to {topics} did not appear")
        self.spin_until(lambda: False, 0.5)

    def episode(self, seed: int | None, timeout: float) -> float:
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        from std_srvs.srv import Trigger

        if self.lockstep:  # let in-flight commands of the last episode step the sim first
            # Active before the reset: the node acts on the episode's first state and every later
            # one (in lockstep nothing else moves the sim meanwhile).
            self.spin_until(lambda: time.monotonic() - self.last_state_time > 0.2, 5.0)
            self.transition("activate")
        if seed is not None:
            value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=seed)
            request = SetParameters.Request(parameters=[Parameter(name="seed", value=value)])
            result = self.call(self.parameters_client, request).results[0]
            if not result.successful:
                raise DeployError(f"setting the sim's seed failed: {result.reason}")
        self.states, self.episode_start = {}, 0  # the first state may come before the answer
        response = self.call(self.reset_client, Trigger.Request())
        start = reset_stamp_ns(response.message)
        if not self.lockstep:
            # Active after the reset, as an operator starts a policy on a robot at rest: active
            # before, the node's answer to a state of the robot's old pose could land after the
            # reset, and its rate limiter would ramp from that pose (at the velocity limit). The
            # robot holds the reset pose until the first command (the first state's command is
            # that hold).
            self.transition("activate")
        steps = self.task.max_episode_steps

        self.states = {s: v for s, v in self.states.items() if s >= start}
        self.episode_start = start
        if not self.spin_until(lambda: len(self.states) > steps, timeout):
            raise DeployError(f"episode did not finish: {len(self.states)} of {steps} states")
        self.transition("deactivate")
        self.episode_start = None
        states = sorted(self.states.items())[: steps + 1]
        if states[0][0] != start:
            raise DeployError("this process missed the episode's first state")
        if self.lockstep:
            period = round(self.task.control_period * 1e9)
            gaps = [b - a for (a, _), (b, _) in itertools.pairwise(states) if b - a != period]
            if gaps:
                raise DeployError(f"this process missed lockstep states (stamp gaps {gaps[:5]})")
        self.spin_until(lambda: states[-2][0] in self.commands, 2.0)
        total, missing = 0.0, 0
        previous = np.zeros(self.task.action_dim)
        for (stamp, state), (_, next_state) in itertools.pairwise(states):
            command = self.commands.get(stamp)
            if command is None:  # the node did not answer this state (cannot happen in lockstep)
                missing += stamp != start  # real time: the first state is the reset's hold
                command = self.task.hold_command(state)
            action = self.task.action_of_command(command, state)
            total += self.task.reward(state, action, next_state, previous)
            previous = action
        if missing:
            print(f"[ddpg-deploy] {missing} states had no command (reward with zeros)")
        signals = states[-1][1].signals
        if "end_effector" in signals and "goal" in signals:
            self.final_distances.append(
                float(np.linalg.norm(signals["end_effector"] - signals["goal"]))
            )
        if self.trace is not None:
            for (stamp, state), _ in itertools.pairwise(states):
                command = self.commands.get(stamp, ())  # empty: the node did not answer
                columns = (state.position, state.velocity, command)
                text = ",".join(" ".join(f"{float(v):.17g}" for v in c) for c in columns)
                self.trace.write(f"{self.episodes_done},{stamp},{text}\n")
            self.trace.flush()
        self.episodes_done += 1
        self.states = {}
        return total

    def close(self) -> None:
        if self.trace is not None:
            self.trace.close()
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


if __name__ == "__main__":
    sys.exit(main())
