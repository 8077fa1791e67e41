"""Helpers for integration tests: real `wavemq-edge run` processes on 127.0.0.1 with ephemeral ports.

Every process started here is killed at the end of its test (``RouterProcess.stop`` in a fixture
finaliser), and every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from loopback_config import config_text

__all__ = ["RouterProcess", "Site", "config_text", "run", "wv"]

BIN = Path(sys.executable).parent
WAVEMQ = str(BIN / "wavemq-edge")
WV = str(BIN / "wv")
START_TIMEOUT_S = 20.0


@dataclass
class RouterProcess:
    """A router process whose output goes to a log file (a pipe nobody reads would block it)."""

    config: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    address: str = ""
    log_path: Path | None = None
    _log: BinaryIO | None = None

    def start(self, listen: str = "127.0.0.1:0") -> RouterProcess:
        n = 0
        while True:
            self.log_path = self.config.parent / f"router-{n}.log"
            if not self.log_path.exists():
                break
            n += 1
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([WAVEMQ, "--log-level", "INFO", "run", str(self.config), "--listen", listen],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            m = re.search(r"listening:\s+(\S+) \(agents\)", self.drain())
            if m:
                self.address = m.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"router did not start: {self.drain()}")

    def drain(self) -> str:
        """Everything the router printed so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

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


def run(cmd: list[str], env: dict[str, str], *, input: bytes | None = None, timeout: float = 30.0,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, env=env, input=input if input is not None else b"", capture_output=True,
                       timeout=timeout, cwd=cwd)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                       r.stderr.decode(errors="replace"))


def wv(env: dict[str, str], cwd: Path, *args: str) -> str:
    r = run([WV, *args], env, cwd=cwd)
    assert r.returncode == 0, f"wv {' '.join(args)} failed: {r.stderr}"
    return r.stdout


@dataclass
class Site:
    """A directory with a namespace, a service entity granted on it, and a router config."""

    dir: Path
    env: dict[str, str]
    config: Path

    def entity(self, name: str, grant: str | None = "wavemq:subscribe,publish,query@namespace.ent/*",
               expiry: str = "1y") -> Path:
        wv(self.env, self.dir, "mke", "-o", f"{name}.ent", "--expiry", expiry, "--nopassphrase")
        if grant:
            wv(self.env, self.dir, "rtgrant", "--attester", "namespace.ent", "--subject", f"{name}.ent",
               "--expiry", expiry, grant)
        return self.dir / f"{name}.ent"
