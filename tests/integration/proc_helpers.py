"""Helpers for integration tests: real `wavemq-edge run` processes on 127.0.0.1 with ephemeral ports.

Every process started here is killed at the end of its test (``RouterProcess.stop`` in a fixture
finaliser), and every wait is bounded.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from router_proc import WAVEMQ, WV, RouterProc, config_text

__all__ = ["WAVEMQ", "RouterProcess", "Site", "config_text", "run", "wv"]


class RouterProcess(RouterProc):
    """A router on the loopback config, agents on an ephemeral port (``--listen``)."""

    def start(self, wait_ready: bool = True, extra_args: tuple[str, ...] = ("--listen", "127.0.0.1:0"),
              ) -> RouterProcess:
        super().start(wait_ready, extra_args)
        return self

    def drain(self) -> str:
        return self.output()


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
