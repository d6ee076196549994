"""Control latency: time from a state's arrival to the command it caused being published, and the
states a node never saw because a newer one replaced them."""

from __future__ import annotations

from collections import deque

import numpy as np


class LatencyMeter:
    """Keeps the last ``window`` latencies (seconds) and reports percentiles in milliseconds."""

    def __init__(self, window: int = 20_000) -> None:
        self._samples: deque[float] = deque(maxlen=window)

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)

    def __len__(self) -> int:
        return len(self._samples)

    def percentile_ms(self, q: float) -> float:
        if not self._samples:
            return float("nan")
        return float(np.percentile(np.fromiter(self._samples, dtype=np.float64), q) * 1e3)

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": self.percentile_ms(50),
            "p99": self.percentile_ms(99),
            "max": self.percentile_ms(100),
        }


class SkippedStates:
    """Counts the states a subscription with a queue of one never delivered (a newer one replaced
    them), from the gaps between the stamps received: a gap of k robot periods skipped k - 1
    states. The robot's period is the smallest gap seen (a robot's controller stamps its states
    on its period, with little jitter: the rounding absorbs it); a node that never gets two
    states in a row cannot see it and undercounts. Gaps longer than ``longest_s`` (the watchdog's
    timeout: the node stalled, or the robot paused, which stamps cannot tell apart) count apart,
    in ``in_outages``; stamps that go back (reordered) or jump against the steady clock by more
    than ``longest_s`` (a clock reset) count nothing."""

    def __init__(self, longest_s: float) -> None:
        self.count = 0
        self.in_outages = 0
        self._longest_ns = longest_s * 1e9
        self._period_ns: int | None = None
        self._last: tuple[int, float] | None = None  # stamp, steady-clock seconds

    def restart(self) -> None:
        """The node was not listening (inactive): the next gap is no skip."""
        self._last = None

    def add(self, stamp_ns: int, now: float) -> None:
        last = self._last
        if last is not None and 0 <= last[0] - stamp_ns <= self._longest_ns:
            return  # a duplicate or reordered state
        self._last = (stamp_ns, now)
        if last is None:
            return
        gap = stamp_ns - last[0]
        if abs(gap - (now - last[1]) * 1e9) > self._longest_ns:
            return  # a clock reset
        if gap > self._longest_ns:
            if self._period_ns is not None:
                self.in_outages += max(0, round(gap / self._period_ns) - 1)
            return
        self._period_ns = gap if self._period_ns is None else min(self._period_ns, gap)
        self.count += max(0, round(gap / self._period_ns) - 1)
