"""The DDPG learner as a background thread beside a control loop.

The control loop must never wait for a training step, so it acts with a CPU copy of the actor that
the learner replaces (one reference assignment, atomic under the GIL) every ``sync_every`` updates.
In lockstep the learner does exactly the updates the agent owes (``DDPG.updates_due``: the
``updates_per_step`` ratio) and the control loop holds the next command until they are done: the
simulation waits, which costs no simulated time, so results do not depend on the machine's speed.
In real time it runs free once there is enough data.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ddpg_controller.learning.ddpg import DDPG


class BackgroundLearner:
    """Runs ``agent.train_step()`` in a thread, under a quota of updates per environment step."""

    def __init__(
        self,
        agent: DDPG,
        lockstep: bool,
        sync_every: int,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.agent = agent
        self.lockstep = lockstep
        self.sync_every = max(1, sync_every)
        self.on_progress = on_progress
        self.policy = agent.acting_policy()
        self.updates_done = 0
        # Updates whose bookkeeping (policy refresh) is complete: until it equals the agent's
        # count, an update is still in flight and acting now would race it.
        self.settled_updates = agent.num_updates
        self.last_losses: dict[str, float] = {}
        self.failure: str | None = None
        self._wake = threading.Condition()
        self._step_lock = threading.Lock()  # held for the whole of one training step
        self._stopping = False
        self._rate_window: list[float] = []
        self._thread = threading.Thread(target=self._run, name="ddpg-learner", daemon=True)

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

    def _may_update(self) -> bool:
        if self.lockstep:
            return self.agent.updates_due() > 0
        return self.agent.total_steps >= self.agent.learning_starts

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stopping and not self._may_update():
                        self._wake.wait(0.1)
                    if self._stopping:
                        return
                with self._step_lock:
                    losses = self.agent.train_step()
                if losses is None:
                    time.sleep(0.001)
                    continue
                self.last_losses = losses
                self.updates_done += 1
                self._rate_window = [*self._rate_window[-99:], time.monotonic()]
                if self.updates_done % self.sync_every == 0:
                    self.policy = self.agent.acting_policy()
                self.settled_updates = self.agent.num_updates
                if self.on_progress is not None:
                    self.on_progress()
        except Exception:
            self.failure = traceback.format_exc()
            if self.on_progress is not None:
                self.on_progress()
