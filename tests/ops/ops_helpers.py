"""Helpers for the ops tests: a real ``wavemq-edge run`` process on 127.0.0.1 (port 0), a test-owned
NOTIFY_SOCKET, and a WAVE site with a namespace and a granted service entity.

Every process started here is killed by ``OpsRouter.stop`` (called from fixtures' finalisers) and every
wait is bounded.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from router_proc import WAVEMQ, WV, RouterProc, config_text

__all__ = ["WAVEMQ", "NotifyListener", "OpsRouter", "base_env", "make_site", "ops_config", "run"]


def ops_config(tmp: Path, extra: str = "", flush_interval: int = 30) -> Path:
    cfg = tmp / "wavemq.toml"
    metrics = '[MetricsConfig]\n  listenAddr = "127.0.0.1:0"\n'
    cfg.write_text(config_text(tmp, flush_interval=flush_interval, extra=metrics + extra))
    return cfg


def base_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "WAVEMQ_ROUTER",
              "WAVEMQ_ENTITY", "WAVEMQ_EDGE_DEBUG_STALL_S"):
        env.pop(k, None)
    env["WAVE_HOME"] = str(tmp / "wave")
    env["HOME"] = str(tmp / "home")
    return env


class OpsRouter(RouterProc):
    """A router whose start-up also reports the metrics address (``event=ops_started ... metrics=``)."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        super().__init__(config, env)
        self.metrics = ""

    def start(self, wait_ready: bool = True, extra_args: tuple[str, ...] = ()) -> OpsRouter:
        super().start(wait_ready, extra_args)
        return self

    def started(self, output: str) -> None:
        mm = re.search(r"event=ops_started .* metrics=(\S+)", output)
        self.metrics = mm.group(1) if mm and mm.group(1) != "off" else ""


class NotifyListener:
    """A datagram socket standing in for systemd's notification socket; records (time, fields)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, dict[str, str]]] = []

    def receive(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(8192)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key: str, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.receive(max(0.01, deadline - time.monotonic()))
            if msg is not None and key in msg:
                return msg
        raise AssertionError(f"no {key} within {timeout} s; got {[m for _, m in self.messages]}")

    def close(self) -> None:
        self.sock.close()


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, cwd=cwd)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(errors="replace"),
                                       r.stderr.decode(errors="replace"))


def make_site(tmp: Path, env: dict[str, str]) -> None:
    """namespace.ent and service.ent (granted subscribe, publish, query on everything) in ``tmp``."""
    for name in ("namespace", "service"):
        r = run([WV, "mke", "-o", f"{name}.ent", "--expiry", "1y", "--nopassphrase"], env, tmp)
        assert r.returncode == 0, r.stderr
    r = run([WV, "rtgrant", "--attester", "namespace.ent", "--subject", "service.ent", "--expiry", "1y",
             "wavemq:subscribe,publish,query@namespace.ent/*"], env, tmp)
    assert r.returncode == 0, r.stderr
