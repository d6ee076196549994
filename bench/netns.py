"""Two "computers" on one machine: network namespaces joined by a veth pair, and ROS 2 across it.

``veth_namespaces()`` creates namespaces ``ddpgnet-a-<pid>`` and ``ddpgnet-b-<pid>``, each with
its loopback and one end of a veth pair (10.231.0.1/24 in A, 10.231.0.2/24 in B). Nothing else is
in them: no default route, no other interface, so traffic goes only between the two. Fast DDS
needs no multicast route there: it sends its discovery multicast out of each interface it finds
(a talker/listener pair found each other with and without a 224.0.0.0/4 route). The namespaces
are removed on exit, Ctrl-C, SIGTERM or an exception; a run killed outright leaves them behind,
and the next run removes every ``ddpgnet-*-<pid>`` whose process is gone. Needs root
(CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2.

``run_across_veth(link, in_a, in_b, until=...)`` runs commands in the two namespaces (each with
``ip netns exec``: the process itself, no shell, in its own process group, stopped with SIGINT
then SIGKILL, and sent SIGINT if this process dies) until the named one exits or the time limit
passes, and counts the bytes and packets across the veth (A's end, ``ip -s link``) over the run.

The benchmark (``python -m bench netns``, ``./run bench netns``) trains the pendulum in lockstep
with the sim node in A and the controller node in B (``train_cli.train_commands``: the command
lines ``./run train`` starts), and again with both in A for the same-computer baseline, and
reports run time, env steps/s and the DDS bytes/s across the veth; then it sends an actor's
weights from A to B with the policy topic's QoS (``bench/weights_probe.py``), to a subscriber
listening and to one that joins late. Discovery is each set-up of docs/fleet-and-networking.md,
"Robots on other computers" (``discovery_env``): ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET``
(multicast), or ``LOCALHOST`` with ``ROS_STATIC_PEERS``, or ``LOCALHOST`` with
``ROS_DISCOVERY_SERVER``, on a ``ROS_DOMAIN_ID`` of the run's own; no Fast DDS setting
besides. The namespaces look like two computers to Fast DDS: its host id hashes the host name and
the IPv4 addresses a process sees, which differ, so it sends the data over UDP across the veth,
not through the shared memory both namespaces could reach.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddpg_controller.processes import NodeProcess

PREFIX = "ddpgnet"
SUBNET = "10.231.0"
_NAME = re.compile(rf"^{PREFIX}-[ab]-(\d+)$")
IP_TIMEOUT_S = 10.0  # every `ip` call; they take milliseconds


class NetnsUnavailableError(RuntimeError):
    """This process may not create network namespaces (not root, or no iproute2)."""


@dataclass(frozen=True)
class Side:
    """One "computer": a network namespace, its veth end and that end's IPv4 address."""

    namespace: str
    device: str
    address: str

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def counters(self) -> dict[str, int]:
        """Bytes and packets received and sent on this side's veth end since it was created."""
        out = _ip("-n", self.namespace, "-s", "-j", "link", "show", "dev", self.device)
        stats = json.loads(out)[0]["stats64"]
        return {
            "rx_bytes": stats["rx"]["bytes"],
            "tx_bytes": stats["tx"]["bytes"],
            "rx_packets": stats["rx"]["packets"],
            "tx_packets": stats["tx"]["packets"],
        }


@dataclass(frozen=True)
class VethLink:
    """Two namespaces joined by one veth pair."""

    a: Side
    b: Side


@dataclass(frozen=True)
class Command:
    """A command line for one side, its whole environment and the file its output goes to."""

    argv: Sequence[str]
    env: Mapping[str, str]
    log: Path


def _ip(*args: str) -> str:
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete the namespaces (and with them their veth ends) of earlier runs whose process is
    gone, a run killed with SIGKILL cannot clean up after itself, and any left under this
    process's own id by a dead run that had it before."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME.match(name)
        pid = int(match.group(1)) if match else None
        if pid is not None and (pid == os.getpid() or not _pid_alive(pid)):
            _ip("netns", "delete", name)
            removed.append(name)
    return removed


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so the ``finally`` that removes the namespaces runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def veth_namespaces(subnet: str = SUBNET) -> Iterator[VethLink]:
    """Namespaces A and B joined by a veth pair, ``<subnet>.1/24`` in A and ``<subnet>.2/24`` in
    B, removed when the block ends however it ends (see the module docstring). One at a time per
    process: the names carry the process id."""
    reason = unavailable_reason()
    if reason:
        raise NetnsUnavailableError(reason)
    stale = remove_stale()
    if stale:
        print(f"[netns] removed namespaces of dead runs: {stale}", flush=True)
    pid = os.getpid()
    link = VethLink(
        a=Side(f"{PREFIX}-a-{pid}", f"dna{pid}", f"{subnet}.1"),
        b=Side(f"{PREFIX}-b-{pid}", f"dnb{pid}", f"{subnet}.2"),
    )
    with _sigterm_as_exit():
        try:
            for side in (link.a, link.b):
                try:
                    _ip("netns", "add", side.namespace)
                except RuntimeError as exc:  # root in a container without CAP_SYS_ADMIN
                    raise NetnsUnavailableError(str(exc)) from None
            _ip(
                "link", "add", link.a.device, "netns", link.a.namespace, "type", "veth",
                "peer", "name", link.b.device, "netns", link.b.namespace,
            )  # fmt: skip
            for side in (link.a, link.b):
                ns = ("-n", side.namespace)
                _ip(*ns, "addr", "add", f"{side.address}/24", "dev", side.device)
                _ip(*ns, "link", "set", "lo", "up")
                _ip(*ns, "link", "set", side.device, "up")
            yield link
        finally:
            for side in (link.a, link.b):
                try:
                    _ip("netns", "delete", side.namespace)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    if side.namespace in _ip("netns", "list"):
                        print(f"[netns] could not remove {side.namespace}: {exc}", flush=True)


def _traffic(
    before: dict[str, int],
    after: dict[str, int],
    seconds: float,
    timeline: list[tuple[float, int, int]],
) -> dict[str, Any]:
    """Bytes and packets across the veth, bytes/s over the run and in its busiest sample."""
    delta = {key: after[key] - before[key] for key in before}
    total = delta["rx_bytes"] + delta["tx_bytes"]
    peak = max(
        (
            (rx1 + tx1 - rx0 - tx0) / (t1 - t0)
            for (t0, rx0, tx0), (t1, rx1, tx1) in itertools.pairwise(timeline)
        ),
        default=0.0,
    )
    return {
        **delta,
        "bytes": total,
        "bytes_per_s": total / seconds if seconds > 0 else 0.0,
        "peak_bytes_per_s": peak,
    }


def run_across_veth(
    link: VethLink,
    in_a: Sequence[Command],
    in_b: Sequence[Command],
    *,
    until: Command,
    end_when_any_exits: bool = True,
    timeout_s: float = 300.0,
    stop_timeout_s: float = 20.0,
    sample_every_s: float = 1.0,
) -> dict[str, Any]:
    """Run the commands ``in_a`` in namespace A and ``in_b`` in B, each in its own process,
    until ``until`` (one of them) exits, or any of them when ``end_when_any_exits``, or
    ``timeout_s`` passes; then stop the rest (SIGINT, SIGKILL after ``stop_timeout_s``). Returns
    per process its side, log and exit code, the wall time, whether it timed out, ``veth`` (bytes
    and packets each way at A's end, their sum, bytes/s over the run and in the busiest sample)
    and ``timeline`` (seconds, rx and tx bytes at A's end, once per ``sample_every_s``)."""
    placed = [(link.a, c) for c in in_a] + [(link.b, c) for c in in_b]
    waited = next((i for i, (_, c) in enumerate(placed) if c is until), None)
    if waited is None:
        raise ValueError("`until` must be one of the commands in_a or in_b")
    before = link.a.counters()
    start = time.monotonic()
    processes: list[NodeProcess] = []
    timeline: list[tuple[float, int, int]] = [(0.0, 0, 0)]
    timed_out = False
    try:
        for side, command in placed:
            processes.append(NodeProcess(side.exec_argv(command.argv), command.log, command.env))
        while processes[waited].alive():
            if end_when_any_exits and not all(p.alive() for p in processes):
                break
            if time.monotonic() - start > timeout_s:
                timed_out = True
                break
            time.sleep(min(sample_every_s, 0.2))
            now = time.monotonic() - start
            if now - timeline[-1][0] >= sample_every_s:
                c = link.a.counters()
                timeline.append(
                    (now, c["rx_bytes"] - before["rx_bytes"], c["tx_bytes"] - before["tx_bytes"])
                )
    finally:
        codes = [p.stop(timeout=stop_timeout_s) for p in processes]
    wall = time.monotonic() - start
    after = link.a.counters()
    return {
        "processes": [
            {"side": "a" if side == link.a else "b", "log": str(command.log), "returncode": code}
            for (side, command), code in zip(placed, codes, strict=True)
        ],
        "until_returncode": codes[waited],
        "wall_s": wall,
        "timed_out": timed_out,
        "veth": _traffic(before, after, wall, timeline),
        "timeline": timeline,
    }


# --- the benchmark -------------------------------------------------------------------------------

DISCOVERY_PORT = 11811  # the Fast DDS discovery server's default UDP port
DISCOVERY_KINDS = ("multicast", "static_peers", "discovery_server")
# Short runs: one final evaluation episode, no periodic evaluation or checkpoint.
CONTROLLER_OVERRIDES = {
    "eval_every_steps": 0,
    "final_eval_episodes": 1,
    "checkpoint_every_steps": 0,
}


def _isolated_env() -> dict[str, str]:
    """This process's environment less every ROS and Fast DDS setting, on a ROS domain that no
    other run on this machine holds (each benchmark run sets its discovery explicitly)."""
    from ddpg_controller.ros_common import claim_free_domain_id

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROS_", "FASTDDS_"))}
    env["ROS_DOMAIN_ID"] = str(claim_free_domain_id())
    return env


def discovery_env(kind: str, link: VethLink, side: Side) -> dict[str, str]:
    """What a user sets on the computer ``side`` so that the two find each other
    (docs/fleet-and-networking.md, "Robots on other computers"): ``multicast`` on the subnet,
    ``static_peers`` (unicast to the other computer's address, ./run's LOCALHOST range kept) or
    ``discovery_server`` (a Fast DDS discovery server on A, the LOCALHOST range kept)."""
    other = link.b if side == link.a else link.a
    if kind == "multicast":
        return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    if kind == "static_peers":
        return {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_STATIC_PEERS": other.address}
    if kind == "discovery_server":
        return {
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_DISCOVERY_SERVER": f"{link.a.address}:{DISCOVERY_PORT}",
        }
    raise ValueError(f"unknown discovery kind {kind!r}; choose from {DISCOVERY_KINDS}")


def _training_commands(run_dir: Path, steps: int) -> tuple[list[str], list[str]]:
    """The sim and controller command lines of ``./run train --task pendulum --steps N``."""
    from ddpg_controller import train_cli

    args = train_cli.parse_args(
        ["--task", "pendulum", "--steps", str(steps), "--seed", "0", "--run-dir", str(run_dir)]
    )
    _, config = train_cli.resolve_task(args)
    sim, controller = train_cli.train_commands(args, config, run_dir, steps)
    for key, value in CONTROLLER_OVERRIDES.items():
        controller += ["-p", f"{key}:={value}"]
    return sim, controller


def _training(
    link: VethLink, run_dir: Path, steps: int, discovery: str, cross: bool
) -> dict[str, Any]:
    """One training run: the sim node in A, the controller node in B (``cross``) or in A."""
    run_dir.mkdir(parents=True)
    base = _isolated_env()
    controller_side = link.b if cross else link.a
    sim_argv, controller_argv = _training_commands(run_dir, steps)
    sim = Command(sim_argv, {**base, **discovery_env(discovery, link, link.a)}, run_dir / "sim.log")
    controller = Command(
        controller_argv,
        {**base, **discovery_env(discovery, link, controller_side)},
        run_dir / "controller.log",
    )
    server = None
    if discovery == "discovery_server":
        server = NodeProcess(
            link.a.exec_argv(
                ["fastdds", "discovery", "-l", link.a.address, "-p", str(DISCOVERY_PORT)]
            ),
            run_dir / "discovery_server.log",
            env=base,
        )
    try:
        result = run_across_veth(
            link,
            [sim] if cross else [sim, controller],
            [controller] if cross else [],
            until=controller,
            timeout_s=120 + steps / 10,
        )
    finally:
        if server is not None:
            server.stop()
    result["discovery"] = discovery
    result["env"] = {
        "sim": {k: v for k, v in sim.env.items() if k.startswith("ROS_")},
        "controller": {k: v for k, v in controller.env.items() if k.startswith("ROS_")},
    }
    summary_path = run_dir / "summary.yaml"
    if result["until_returncode"] != 0 or not summary_path.exists():
        result["error"] = (
            f"controller exited {result['until_returncode']}:\n"
            f"{controller.log.read_text(errors='replace')[-1500:]}\n"
            f"sim:\n{sim.log.read_text(errors='replace')[-1500:]}"
        )
        return result
    import yaml

    summary = yaml.safe_load(summary_path.read_text())
    keep = ("env_steps", "wall_time_s", "env_steps_per_s", "latency_p50_ms", "latency_p99_ms")
    result["summary"] = {k: summary.get(k) for k in keep}
    result["veth"]["bytes_per_env_step"] = result["veth"]["bytes"] / max(summary["env_steps"], 1)
    return result


def _fleet(link: VethLink, run_dir: Path, robots: int, steps: int) -> dict[str, Any]:
    """Fleet training across the veth: the learner node in A, ``robots`` robots (sim + actor
    node each) in B, real time, multicast discovery (``train_cli.fleet_commands``)."""
    import yaml

    from ddpg_controller import train_cli

    run_dir.mkdir(parents=True)
    argv = ["--task", "pendulum", "--steps", str(steps), "--seed", "0", "--run-dir", str(run_dir)]
    args = train_cli.parse_args([*argv, "--robots", str(robots), "--sim-mode", "realtime"])
    _, config = train_cli.resolve_task(args)
    robot_argvs, learner_argv = train_cli.fleet_commands(args, config, run_dir, steps)
    for key, value in CONTROLLER_OVERRIDES.items():
        learner_argv += ["-p", f"{key}:={value}"]
    base = _isolated_env()
    learner = Command(
        learner_argv, {**base, **discovery_env("multicast", link, link.a)}, run_dir / "learner.log"
    )
    in_b = [
        Command(
            robot_argv,
            {**base, **discovery_env("multicast", link, link.b)},
            run_dir / f"{name}.log",
        )
        for name, robot_argv in robot_argvs
    ]
    result = run_across_veth(
        link, [learner], in_b, until=learner, end_when_any_exits=False, timeout_s=120 + steps / 5
    )
    summary_path = run_dir / "summary.yaml"
    if result["until_returncode"] != 0 or not summary_path.exists():
        result["error"] = learner.log.read_text(errors="replace")[-1500:]
        return result
    summary = yaml.safe_load(summary_path.read_text())
    keep = ("env_steps", "env_steps_by_robot", "updates", "wall_time_s", "env_steps_per_s")
    keep += ("final_eval_return", "policy_staleness_updates_p50", "policy_staleness_updates_p99")
    keep += ("transition_latency_p50_ms", "transition_latency_p99_ms", "learner_counters")
    result["summary"] = {k: summary.get(k) for k in keep}
    return result


def actor_weights(task: str = "pendulum") -> int:
    """Float64 values of the task's actor (config/<task>.yaml's ``actor_hidden``)."""
    import yaml

    from ddpg_controller import train_cli
    from ddpg_controller.learning.networks import Actor
    from ddpg_controller.tasks import load_task

    spec = load_task(task)
    config = yaml.safe_load(train_cli.package_config(task).read_text())
    hidden = config["/**/controller"]["ros__parameters"]["ddpg"]["actor_hidden"]
    actor = Actor(spec.observation_dim, spec.action_dim, hidden)
    return sum(p.numel() for p in actor.parameters())


def _weights(link: VethLink, run_dir: Path, values: int, late: bool) -> dict[str, Any]:
    """The policy topic's QoS across the veth: weights every 0.5 s to a listening subscriber, or
    one message to a subscriber that starts 4 s after it was sent (``late``)."""
    run_dir.mkdir(parents=True)
    base = _isolated_env()
    probe = [sys.executable, "-m", "bench.weights_probe"]
    timing = (
        ["--period", "1000", "--duration", "9"] if late else ["--period", "0.5", "--duration", "12"]
    )
    publisher = Command(
        [*probe, "publish", "--values", str(values), *timing],
        {**base, **discovery_env("multicast", link, link.a)},
        run_dir / "publisher.log",
    )
    received = run_dir / "received.json"
    listen = ["--start-after", "4", "--duration", "4"] if late else ["--duration", "10"]
    subscriber = Command(
        [*probe, "subscribe", "--values", str(values), *listen, "--out", str(received)],
        {**base, **discovery_env("multicast", link, link.b)},
        run_dir / "subscriber.log",
    )
    result = run_across_veth(
        link, [publisher], [subscriber], until=publisher, end_when_any_exits=False, timeout_s=60
    )
    if not received.exists():
        result["error"] = subscriber.log.read_text(errors="replace")[-1500:]
        return result
    got = json.loads(received.read_text())["received"]
    latencies = sorted(g["latency_ms"] for g in got)
    result["received"] = len(got)
    result["versions"] = [int(g["version"]) for g in got]
    result["first_at_s"] = got[0]["at_s"] if got else None
    result["latency_ms_p50"] = latencies[len(latencies) // 2] if got else None
    result["latency_ms_max"] = latencies[-1] if got else None
    return result


def run(quick: bool) -> dict[str, Any]:
    """The pendulum across the veth (sim in A, controller in B) with each way of discovery, and
    with both nodes in A (the same-computer baseline), side by side."""
    steps = 300 if quick else 2_000
    short = steps // 4
    out: dict[str, Any] = {"steps": steps, "subnet": f"{SUBNET}.0/24", "runs": {}}
    tmp = Path(tempfile.mkdtemp(prefix="bench_netns_"))
    plan = [(f"across_veth/{kind}", kind, True, steps) for kind in DISCOVERY_KINDS]
    # A short run beside the long one: the difference is the traffic of the extra steps alone,
    # without the start-up, discovery and shutdown both runs share.
    plan.append((f"across_veth/multicast/{short}_steps", "multicast", True, short))
    plan.append(("same_namespace/multicast", "multicast", False, steps))
    try:
        with veth_namespaces() as link:
            out["link"] = {
                "a": [link.a.namespace, link.a.device, link.a.address],
                "b": [link.b.namespace, link.b.device, link.b.address],
                "routes_a": _ip("-n", link.a.namespace, "route", "show", "table", "all"),
            }
            for key, kind, cross, run_steps in plan:
                r = _training(link, tmp / key.replace("/", "-"), run_steps, kind, cross)
                out["runs"][key] = r
                print(
                    f"[netns] {key}: {r.get('summary', r.get('error'))}; {r['wall_s']:.1f} s, "
                    f"veth {r['veth']['bytes']} B ({r['veth']['bytes_per_s']:.0f} B/s, busiest "
                    f"second {r['veth']['peak_bytes_per_s']:.0f} B/s)",
                    flush=True,
                )
            values = actor_weights() + 2  # the version and the send time ride along
            out["weights_values"] = values
            for key, late in (("weights/streaming", False), ("weights/late_joiner", True)):
                r = _weights(link, tmp / key.replace("/", "-"), values, late)
                out["runs"][key] = r
                print(
                    f"[netns] {key}: {r.get('received')} received, versions "
                    f"{r.get('versions', [])[:3]}..., latency p50 {r.get('latency_ms_p50')} ms, "
                    f"first after {r.get('first_at_s')} s; veth {r['veth']['bytes']} B",
                    flush=True,
                )
            key = "fleet/learner_in_a/2_robots_in_b"
            r = _fleet(link, tmp / key.replace("/", "-"), robots=2, steps=steps // 2)
            out["runs"][key] = r
            print(f"[netns] {key}: {r.get('summary', r.get('error'))}; veth {r['veth']}")
    except NetnsUnavailableError as exc:
        print(f"[netns] skipped: {exc}", flush=True)
        return {"skipped": str(exc)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    long, brief = out["runs"]["across_veth/multicast"], out["runs"][plan[-2][0]]
    if "summary" in long and "summary" in brief:
        extra_steps = long["summary"]["env_steps"] - brief["summary"]["env_steps"]
        out["bytes_per_extra_env_step"] = (
            long["veth"]["bytes"] - brief["veth"]["bytes"]
        ) / extra_steps
        print(f"[netns] bytes per extra env step: {out['bytes_per_extra_env_step']:.0f}")
    return out
