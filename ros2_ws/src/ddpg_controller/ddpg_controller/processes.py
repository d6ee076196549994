"""Nodes as child processes, started and stopped the way ``ros2 launch`` does it.

Each child gets its own process group (so Ctrl-C in a terminal reaches this launcher only, which
forwards SIGINT: background children of a non-interactive shell would otherwise ignore it) and is
escalated to SIGKILL only if it does not exit in time. A child also gets SIGINT when its launcher
dies, however it dies, so no node is left running without it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _interrupt_when_parent_dies() -> None:
    """Runs in the child before exec (Linux): SIGINT on the launcher's death."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class NodeProcess:
    """One node process whose output goes to ``log_path`` (or is inherited when None); its
    environment is ``env``, or this process's when None."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "wb") if log_path else None  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            env=None if env is None else dict(env),
            start_new_session=True,
            preexec_fn=_interrupt_when_parent_dies,
        )

    def output(self) -> str:
        if self._log is None or self.log_path is None:
            return ""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (the node saves what it must), then SIGKILL after ``timeout`` seconds."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
                if self._log is not None:  # say so where the node's own last words would be
                    self._log.write(
                        f"[launcher] no exit {timeout} s after SIGINT: SIGKILL\n".encode()
                    )
        if self._log is not None:
            self._log.close()
        return self.popen.returncode
