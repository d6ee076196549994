"""What the fleet's actor nodes and its learner node say to each other over DDS, in one place.

ROS 2 from PyPI cannot generate message packages, so the fleet speaks ``std_msgs`` with a layout
fixed here (format ``FORMAT``); every encoder has its decoder beside it, and nothing else in the
package reads these messages' fields.

- **Transition batches** (``/fleet/transitions``, std_msgs/Float64MultiArray, reliable): one row
  per transition, ``TRANSITION_COLUMNS`` then obs, action (env units), next obs. ``layout.dim[0]``
  carries the batch header as JSON in its label (robot id, actor session, batch sequence number,
  dimensions) and the row count in its size; ``layout.dim[1]`` the row width. Float64 holds every
  integer field exactly (to 2**53).
- **Policies** (``/fleet/policy``, Float64MultiArray, reliable + transient local depth 1, so a
  robot that joins late gets the newest at once): ``layout.dim[0]`` is the JSON header (version,
  fleet env steps, warm-up flag, noise settings, network layout), each further dim one named block
  of ``data`` (the observation normaliser's mean and std, then every actor parameter flattened,
  in ``actor.named_parameters()`` order).
- **Stored acknowledgements** (``/fleet/stored``, std_msgs/String, JSON ``{"<robot>/<session>":
  last batch stored}``, twice a second): an actor keeps each batch until it is acknowledged and
  sends the unacknowledged ones again when a learner (re)appears, which stores each once.
- **Episode reports** and **evaluation requests** (std_msgs/String, JSON): small and rare.
"""

from __future__ import annotations

import array
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String

FORMAT = 1
TRANSITIONS_TOPIC = "/fleet/transitions"
POLICY_TOPIC = "/fleet/policy"
EPISODES_TOPIC = "/fleet/episodes"
EVALUATE_TOPIC = "/fleet/evaluate"
STORED_TOPIC = "/fleet/stored"

TRANSITION_COLUMNS = (
    "episode",
    "step",
    "policy_version",
    "created_unix_s",  # wall clock at the robot: latency robot -> replay (clocks must agree)
    "reward",
    "terminated",
    "truncated",
)


class FleetMessageError(ValueError):
    """A fleet message that does not follow this module's layout."""


@dataclass
class TransitionBatch:
    robot: str
    session: int  # random per actor process: a restarted actor's sequence starts again
    sequence: int  # 0, 1, 2, ... per (robot, session)
    rows: np.ndarray  # (n, width) float64
    obs_dim: int
    action_dim: int

    def column(self, name: str) -> np.ndarray:
        return self.rows[:, TRANSITION_COLUMNS.index(name)]

    @property
    def obs(self) -> np.ndarray:
        start = len(TRANSITION_COLUMNS)
        return self.rows[:, start : start + self.obs_dim]

    @property
    def actions(self) -> np.ndarray:
        start = len(TRANSITION_COLUMNS) + self.obs_dim
        return self.rows[:, start : start + self.action_dim]

    @property
    def next_obs(self) -> np.ndarray:
        return self.rows[:, len(TRANSITION_COLUMNS) + self.obs_dim + self.action_dim :]


def actor_key(robot: str, session: int) -> str:
    """How the learner's sequence table and the acknowledgements name one actor process."""
    return f"{robot}/{session}"


class Outbox:
    """An actor's transitions on their way to the learner, kept until it acknowledges them.

    ``add`` takes rows; ``seal`` makes the rows so far the next numbered batch (beyond
    ``max_batches`` unacknowledged batches the oldest is dropped and counted); ``to_send`` gives
    the batches the learner there is now has not been sent, all unacknowledged ones again when a
    learner has (re)appeared; ``acknowledge`` forgets the batches the learner has stored.
    """

    def __init__(
        self, robot: str, session: int, obs_dim: int, action_dim: int, max_batches: int
    ) -> None:
        self.robot, self.session = robot, session
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.max_batches = max(1, max_batches)
        self.rows: list[np.ndarray] = []
        self.batches: deque[TransitionBatch] = deque()
        self.sequence = 0  # of the next batch
        self.sent_upto = -1  # the last batch sent to the learner there is now
        self.counters = {"batches_sent": 0, "batches_dropped": 0, "transitions_dropped": 0}

    def add(self, row: np.ndarray) -> None:
        self.rows.append(row)

    def seal(self) -> None:
        if not self.rows:
            return
        rows, self.rows = np.stack(self.rows), []
        batch = TransitionBatch(
            self.robot, self.session, self.sequence, rows, self.obs_dim, self.action_dim
        )
        self.batches.append(batch)
        self.sequence += 1
        while len(self.batches) > self.max_batches:
            dropped = self.batches.popleft()
            self.counters["batches_dropped"] += 1
            self.counters["transitions_dropped"] += len(dropped.rows)

    def to_send(self, learner_returned: bool) -> list[TransitionBatch]:
        if learner_returned:
            self.sent_upto = -1
        batches = [batch for batch in self.batches if batch.sequence > self.sent_upto]
        self.sent_upto = self.sequence - 1
        self.counters["batches_sent"] += len(batches)
        return batches

    def acknowledge(self, stored: int) -> None:
        while self.batches and self.batches[0].sequence <= stored:
            self.batches.popleft()


@dataclass
class Inbox:
    """What the learner has stored from each actor process: each batch once, in order."""

    sequences: dict[str, int] = field(default_factory=dict)  # actor_key -> last batch stored

    def accept(self, batch: TransitionBatch) -> int | None:
        """The number of batches missing before ``batch`` when it is new (it is recorded as
        stored); None for a batch stored already or older than one stored."""
        key = actor_key(batch.robot, batch.session)
        last = self.sequences.get(key, -1)
        if batch.sequence <= last:
            return None
        self.sequences[key] = batch.sequence
        return batch.sequence - last - 1


def transition_row(
    episode: int,
    step: int,
    policy_version: int,
    created_unix_s: float,
    reward: float,
    terminated: bool,
    truncated: bool,
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
) -> np.ndarray:
    head = (episode, step, policy_version, created_unix_s, reward, terminated, truncated)
    return np.concatenate([np.asarray(head, np.float64), obs, action, next_obs])


def encode_transitions(batch: TransitionBatch) -> Float64MultiArray:
    rows = np.ascontiguousarray(batch.rows, dtype=np.float64)
    header = {
        "format": FORMAT,
        "robot": batch.robot,
        "session": batch.session,
        "sequence": batch.sequence,
        "obs_dim": batch.obs_dim,
        "action_dim": batch.action_dim,
    }
    msg = Float64MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label=json.dumps(header), size=rows.shape[0], stride=rows.size),
        MultiArrayDimension(label="transition", size=rows.shape[1], stride=rows.shape[1]),
    ]
    msg.data = array.array("d", rows.tobytes())
    return msg


def decode_transitions(msg: Float64MultiArray) -> TransitionBatch:
    try:
        header = json.loads(msg.layout.dim[0].label)
        count, width = msg.layout.dim[0].size, msg.layout.dim[1].size
        obs_dim, action_dim = int(header["obs_dim"]), int(header["action_dim"])
        batch = TransitionBatch(
            str(header["robot"]),
            int(header["session"]),
            int(header["sequence"]),
            np.frombuffer(msg.data, dtype=np.float64).reshape(count, width),
            obs_dim,
            action_dim,
        )
    except (IndexError, KeyError, TypeError, ValueError) as error:
        raise FleetMessageError(f"not a transition batch: {error}") from None
    if header.get("format") != FORMAT:
        raise FleetMessageError(f"transition batch format {header.get('format')}, not {FORMAT}")
    if width != len(TRANSITION_COLUMNS) + 2 * obs_dim + action_dim:
        raise FleetMessageError(f"transition rows of {width} values for {obs_dim}/{action_dim}")
    return batch


@dataclass
class PolicyWeights:
    run: str  # the learner's run directory: versions count within one run
    version: int  # the learner's update count when the policy was taken
    published_unix_s: float  # wall clock at the learner when it was published
    env_steps: int  # transitions the learner has stored over the whole fleet
    warmup: bool  # the learner is still collecting uniformly random actions
    steps_per_robot: int  # lockstep: steps each robot may take on this policy; -1: no limit
    noise: dict[str, Any]  # the learner's NoiseConfig as a dict; the actors explore with it
    noise_scale: float  # the noise schedule's multiplier at env_steps
    actor_hidden: list[int]
    obs_clip: float  # the observation normaliser's clip
    blocks: dict[str, np.ndarray]  # obs_mean, obs_std, then actor parameters (flat)
    training_done: bool = False  # the learner's last word: the actors stop acting


def encode_policy(policy: PolicyWeights) -> Float64MultiArray:
    header = {
        "format": FORMAT,
        "run": policy.run,
        "version": policy.version,
        "published_unix_s": policy.published_unix_s,
        "env_steps": policy.env_steps,
        "warmup": policy.warmup,
        "steps_per_robot": policy.steps_per_robot,
        "noise": policy.noise,
        "noise_scale": policy.noise_scale,
        "actor_hidden": list(policy.actor_hidden),
        "obs_clip": policy.obs_clip,
        "training_done": policy.training_done,
    }
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=json.dumps(header), size=0, stride=0)] + [
        MultiArrayDimension(label=name, size=values.size, stride=values.size)
        for name, values in policy.blocks.items()
    ]
    flat = np.concatenate([np.ravel(values) for values in policy.blocks.values()])
    msg.data = array.array("d", flat.astype(np.float64).tobytes())
    return msg


def decode_policy(msg: Float64MultiArray) -> PolicyWeights:
    try:
        header = json.loads(msg.layout.dim[0].label)
        data = np.frombuffer(msg.data, dtype=np.float64).copy()  # writable: torch loads from it
        blocks, offset = {}, 0
        for dim in msg.layout.dim[1:]:
            blocks[dim.label] = data[offset : offset + dim.size]
            offset += dim.size
        if offset != data.size:
            raise ValueError(f"{data.size} values for blocks of {offset}")
        policy = PolicyWeights(
            str(header["run"]),
            int(header["version"]),
            float(header["published_unix_s"]),
            int(header["env_steps"]),
            bool(header["warmup"]),
            int(header["steps_per_robot"]),
            dict(header["noise"]),
            float(header["noise_scale"]),
            [int(size) for size in header["actor_hidden"]],
            float(header["obs_clip"]),
            blocks,
            bool(header["training_done"]),
        )
    except (IndexError, KeyError, TypeError, ValueError) as error:
        raise FleetMessageError(f"not a policy message: {error}") from None
    if header.get("format") != FORMAT:
        raise FleetMessageError(f"policy format {header.get('format')}, not {FORMAT}")
    return policy


def encode_json(content: dict[str, Any]) -> String:
    return String(data=json.dumps(content))


def decode_json(msg: String) -> dict[str, Any]:
    try:
        content = json.loads(msg.data)
    except ValueError as error:
        raise FleetMessageError(f"not JSON: {error}") from None
    if not isinstance(content, dict):
        raise FleetMessageError("not a JSON object")
    return content
