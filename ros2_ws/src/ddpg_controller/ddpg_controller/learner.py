"""The DDPG learner as a background thread beside a control loop.

The control loop must never wait for a training step, so it acts with a preallocated CPU copy of
the actor (``policy``) that the learner refreshes in place every ``sync_every`` updates (through
pinned buffers and an event on CUDA, so the control thread never waits on the GPU).

Both modes hold the ``updates_per_step`` ratio (``DDPG.updates_due``). In lockstep the control
loop holds the next command until the owed updates are done: the simulation waits, which costs no
simulated time, so results do not depend on the machine's speed. In real time nothing waits: the
learner does the owed updates as fast as it can, and when it has fallen more than
``max_backlog`` updates behind it drops the oldest owed ones, so it catches up a bounded burst
and then holds the ratio again instead of running behind (or ahead) forever.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ddpg_controller.learning.config import DDPGConfig
from ddpg_controller.learning.ddpg import DDPG
from ddpg_controller.learning.policy import ActingPolicy, PolicyRefresher
from ddpg_controller.tasks import Task


def make_agent(task: Task, config: DDPGConfig, seed: int, torch_threads: int) -> DDPG:
    """The DDPG agent for ``task``'s observations and action bounds; ``torch_threads`` > 0 caps
    torch's CPU threads (a node leaves a core to its control loop and the simulator)."""
    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    return DDPG(
        task.observation_dim,
        task.action_dim,
        task.action_low,
        task.action_high,
        config,
        seed=seed,
    )


class BackgroundLearner:
    """Runs ``agent.train_step()`` in a thread, under a quota of updates per environment step."""

    def __init__(
        self,
        agent: DDPG,
        lockstep: bool,
        sync_every: int,
        max_backlog: int = 100,
        log_every: int = 100,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.agent = agent
        self.lockstep = lockstep
        self.sync_every = max(1, sync_every)
        self.max_backlog = max(1, max_backlog)
        self.log_every = max(1, log_every)
        self.on_progress = on_progress
        self._refresher = PolicyRefresher(agent.acting_policy(), agent.actor)
        self.updates_done = 0
        self.updates_dropped = 0  # real time: owed updates given up beyond the backlog
        # Updates whose bookkeeping (policy refresh) is complete: until it equals the agent's
        # count, an update is still in flight and acting now would race it.
        self.settled_updates = agent.num_updates
        self.last_losses: dict[str, float] = {}  # read from the device every log_every updates
        self.failure: str | None = None
        self._wake = threading.Condition()
        self._step_lock = threading.Lock()  # held for the whole of one training step
        self._stopping = False
        self._rate_window: list[float] = []
        self._thread = threading.Thread(target=self._run, name="ddpg-learner", daemon=True)

    @property
    def policy(self) -> ActingPolicy:
        """The CPU policy copy the control loop acts with (one object, refreshed in place)."""
        return self._refresher.policy

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.failure is None

    def notify(self) -> None:
        """The agent has observed a transition: there may be updates due."""
        with self._wake:
            self._wake.notify()

    def caught_up(self) -> bool:
        """True when the control loop may go on: no update is owed, or no quota binds."""
        if not self.lockstep or not self.alive:
            return True
        return self.agent.updates_due() == 0 and self.settled_updates == self.agent.num_updates

    def updates_per_second(self) -> float:
        window = self._rate_window
        if len(window) < 2 or window[-1] <= window[0]:
            return 0.0
        return (len(window) - 1) / (window[-1] - window[0])

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No training step runs inside this block: the agent can be saved consistently."""
        with self._step_lock:
            yield

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and join: a process exiting while this thread is inside torch aborts."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _owed(self) -> int:
        """Updates to do now; in real time at most ``max_backlog`` (the rest are dropped)."""
        owed = self.agent.updates_due() - self.updates_dropped
        if not self.lockstep and owed > self.max_backlog:
            self.updates_dropped += owed - self.max_backlog
            owed = self.max_backlog
        return owed

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stopping and self._owed() <= 0:
                        self._refresher.poll()
                        self._wake.wait(0.1)
                    if self._stopping:
                        return
                with self._step_lock:
                    losses = self.agent.train_step()
                if losses is None:
                    time.sleep(0.001)
                    continue
                self.updates_done += 1
                self._rate_window = [*self._rate_window[-99:], time.monotonic()]
                if self.updates_done % self.sync_every == 0:
                    self._refresher.begin(self.agent.frozen_normalizer())
                # Lockstep: the next action must come from the refreshed policy, so this thread
                # waits for the copy; in real time it swaps the copy in whenever it has landed.
                self._refresher.poll(wait=self.lockstep)
                if (self.updates_done - 1) % self.log_every == 0:
                    self.last_losses = {name: float(value) for name, value in losses.items()}
                self.settled_updates = self.agent.num_updates
                if self.on_progress is not None:
                    self.on_progress()
        except Exception:
            self.failure = traceback.format_exc()
            if self.on_progress is not None:
                self.on_progress()
