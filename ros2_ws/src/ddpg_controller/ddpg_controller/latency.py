"""Control latency: time from a state's arrival to the command it caused being published."""

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
