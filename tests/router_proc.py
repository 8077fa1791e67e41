"""Real `wavemq-edge run` processes for tests: one loopback config and one process wrapper shared by the
integration and ops tests (tests/ is on sys.path through tests/conftest.py).

Output goes to a log file (a pipe nobody reads would block the router); every wait is bounded, and
``stop()`` (called from fixtures' finalisers) kills what is still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from waiting import wait_until

from wavemq_edge.client import Client
from wavemq_edge.wave import create_entity

__all__ = ["START_TIMEOUT_S", "WAVEMQ", "WV", "RouterProc", "ask_status", "config_text", "router_status"]

BIN = Path(sys.executable).parent
WAVEMQ = str(BIN / "wavemq-edge")
WV = str(BIN / "wv")
START_TIMEOUT_S = 20.0
LISTENING = re.compile(r"listening:\s+(\S+) \(agents\)")


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


def with_operator_socket(config: str, sock: Path) -> str:
    """``config`` (a ``config_text``) with a Unix socket: full status is for the local operator."""
    return config.replace("[LocalConfig]\n", f'[LocalConfig]\n  unixSocket = "{sock}"\n', 1)


async def ask_status(address: str) -> dict[str, object]:
    """One STATUS request to the router at ``address``. Status needs no grant: like ``wavemq-edge
    status``, authenticate as a throwaway entity."""
    async with await Client.connect(address, entity=create_entity(time.time() - 60, 3600),
                                    reconnect=False) as client:
        return await client.status()


def router_status(address: str, timeout: float = 10.0) -> dict[str, object]:
    """``ask_status`` for synchronous tests."""
    return asyncio.run(asyncio.wait_for(ask_status(address), timeout))


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
        proc = self.proc
        with contextlib.suppress(AssertionError):  # a timeout is reported below, with the router's output
            wait_until(lambda: LISTENING.search(self.output()) or proc.poll() is not None, START_TIMEOUT_S,
                       "the router's listening line")
        m = LISTENING.search(self.output())
        if m is None:
            self.stop()
            raise AssertionError(f"router did not start: {self.output()}")
        self.address = m.group(1)
        self.started(self.output())
        return self

    def started(self, output: str) -> None:
        """Hook for subclasses: read more from the start-up output."""

    def output(self) -> str:
        """Everything the router printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict[str, object]:
        """The router's STATUS reply, asked in-process (what ``wavemq-edge status`` asks, without
        starting a Python process per poll). Over the config's Unix socket when it has one (the full
        reply, as the local operator gets it: ``with_operator_socket``), else the TCP summary."""
        match = re.search(r'unixSocket\s*=\s*"([^"]+)"', self.config.read_text())
        return router_status(f"unix:{match.group(1)}" if match else self.address)

    def subscriptions(self) -> int:
        """How many subscriptions the router holds (its status count)."""
        n = self.status()["subscriptions"]
        assert isinstance(n, int)
        return n

    def wait_subscriptions(self, at_least: int, timeout: float = 15.0) -> None:
        """Until the router holds ``at_least`` subscriptions: ``wavemq-edge sub`` prints nothing once it
        has subscribed, so a test publishing to an ephemeral subscription waits for the router's count."""
        wait_until(lambda: self.subscriptions() >= at_least, timeout, f"{at_least} subscription(s) at the router")

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
