"""Real `wavemq-edge run` processes for tests: one loopback config and one process wrapper shared by the
integration and ops tests (tests/ is on sys.path through tests/conftest.py).

Output goes to a log file (a pipe nobody reads would block the router); every wait is bounded, and
``stop()`` (called from fixtures' finalisers) kills what is still running.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["START_TIMEOUT_S", "WAVEMQ", "WV", "RouterProc", "config_text"]

BIN = Path(sys.executable).parent
WAVEMQ = str(BIN / "wavemq-edge")
WV = str(BIN / "wv")
START_TIMEOUT_S = 20.0


def config_text(tmp: Path, *, flush_interval: int = 1, extra: str = "") -> str:
    """Everything in one temporary directory, listeners on 127.0.0.1 with ephemeral ports."""
    return f"""
[WaveConfig]
  database = "{tmp}/wave"
[QueueConfig]
  queueDataStore = "{tmp}/queue"
  flushInterval = {flush_interval}
  journalDir = "{tmp}/journal"
[LocalConfig]
  listenAddr = "127.0.0.1:0"
[PeerConfig]
  listenAddr = "127.0.0.1:0"
[RoutingConfig]
  PersistDataStore = "{tmp}/persist"
  RouterEntityFile = "{tmp}/router.ent"
{extra}
"""


class RouterProc:
    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.log_path = config.parent / "router.log"
        self._log: BinaryIO | None = None

    def start(self, wait_ready: bool = True, extra_args: tuple[str, ...] = ()) -> RouterProc:
        n = 0
        while (self.config.parent / f"router-{n}.log").exists():
            n += 1
        self.log_path = self.config.parent / f"router-{n}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([WAVEMQ, "--log-level", "INFO", "run", str(self.config), *extra_args],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        if not wait_ready:
            return self
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            out = self.output()
            m = re.search(r"listening:\s+(\S+) \(agents\)", out)
            if m:
                self.address = m.group(1)
                self.started(out)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"router did not start: {self.output()}")

    def started(self, output: str) -> None:
        """Hook for subclasses: read more from the start-up output."""

    def output(self) -> str:
        """Everything the router printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
