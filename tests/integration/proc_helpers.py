"""Helpers for integration tests: real `wavemq-edge run` processes on 127.0.0.1 with ephemeral ports.

Every process started here is killed at the end of its test (``RouterProcess.stop`` in a fixture
finaliser), and every wait is bounded.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
WAVEMQ = str(BIN / "wavemq-edge")
WV = str(BIN / "wv")
START_TIMEOUT_S = 20.0


def config_text(tmp: Path, *, flush_interval: int = 1, extra: str = "") -> str:
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


@dataclass
class RouterProcess:
    config: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    address: str = ""
    output: list[str] = field(default_factory=list)

    def start(self, listen: str = "127.0.0.1:0") -> RouterProcess:
        self.proc = subprocess.Popen([WAVEMQ, "--log-level", "INFO", "run", str(self.config), "--listen", listen],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.proc.stdout is not None
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"listening:\s+(\S+) \(agents\)", buf)
                if m:
                    self.address = m.group(1).decode()
                    self.output.append(buf.decode(errors="replace"))
                    return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"router did not start: {buf.decode(errors='replace')}")

    def drain(self) -> str:
        """Output so far (non-blocking)."""
        if self.proc is None or self.proc.stdout is None:
            return "".join(self.output)
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0)
            if not ready:
                break
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.output.append(chunk.decode(errors="replace"))
        return "".join(self.output)

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
        if self.proc is not None and self.proc.stdout is not None:
            self.drain()
            self.proc.stdout.close()


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
