"""A designated router and site routers as real processes, wired through fault proxies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fault_proxy import FaultProxy
from router_proc import ask_status
from waiting import wait_until

from wavemq_edge.client import Client, ReceivedMessage, Subscription
from wavemq_edge.wave import format_id, load_entity

BIN = Path(sys.executable).parent
WAVEMQ = str(BIN / "wavemq-edge")
WV = str(BIN / "wv")


def wv(env: dict[str, str], cwd: Path, *args: str) -> str:
    r = subprocess.run([WV, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, input="")
    assert r.returncode == 0, f"wv {' '.join(args)}: {r.stderr}"
    return r.stdout


@dataclass
class Router:
    name: str
    dir: Path
    env: dict[str, str]
    extra: str = ""
    proc: subprocess.Popen[bytes] | None = None
    agent_address: str = ""
    peer_address: str = ""
    _log: BinaryIO | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"

    def config(self, routers: str = "", designated: list[Path] | None = None, flush: int = 1) -> None:
        d = self.dir
        files = ", ".join(f'"{p}"' for p in designated or [])
        (d / f"{self.name}.toml").write_text(f"""
[WaveConfig]
  database = "{d}/{self.name}-wave"
[QueueConfig]
  queueDataStore = "{d}/{self.name}-queue"
  journalDir = "{d}/{self.name}-journal"
  flushInterval = {flush}
[LocalConfig]
  listenAddr = "127.0.0.1:0"
[PeerConfig]
  listenAddr = "127.0.0.1:{self._peer_port()}"
  keepaliveInterval = 1
  deadAfter = 3
  reconnectMin = 0.2
  reconnectMax = 2
[RoutingConfig]
  PersistDataStore = "{d}/{self.name}-persist"
  RouterEntityFile = "{d}/{self.name}.ent"
  DesignatedNamespaceFiles = [{files}]
{routers}
{self.extra}
""")

    def _peer_port(self) -> int:
        # a fixed port per router across restarts, so sites reconnect to a restarted DR
        m = re.search(r":(\d+)$", self.peer_address)
        return int(m.group(1)) if m else 0

    def start(self, timeout: float = 20.0) -> Router:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([WAVEMQ, "run", str(self.dir / f"{self.name}.toml"), "--listen", "127.0.0.1:0"],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=self.dir)
        self.starts += 1
        proc = self.proc

        def listening() -> tuple[str, str] | bool:
            banners = self.output().split("wavemq-edge 0.1.0 router")
            if len(banners) > self.starts:
                last = banners[-1]
                m = re.search(r"listening:\s+(\S+) \(agents\)", last)
                if m:
                    p = re.search(r"listening:\s+(\S+) \(peers", last)
                    return m.group(1), p.group(1) if p else ""
            return proc.poll() is not None

        with contextlib.suppress(AssertionError):  # a timeout is reported below, with the router's output
            started = wait_until(listening, timeout, f"{self.name}'s listening line")
            if isinstance(started, tuple):
                self.agent_address = started[0]
                if started[1]:
                    self.peer_address = started[1]
                return self
        raise AssertionError(f"{self.name} did not start:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Tier:
    dir: Path
    env: dict[str, str]
    dr: Router
    sites: list[Router] = field(default_factory=list)
    proxies: list[FaultProxy] = field(default_factory=list)
    ns_hash: str = ""

    def stop(self) -> None:
        for p in self.proxies:
            p.stop()
        for r in [*self.sites, self.dr]:
            r.stop()


def make_tier(tmp: Path, n_sites: int = 1, site_extra: str = "") -> Tier:
    env = dict(os.environ)
    env["WAVE_HOME"] = str(tmp / "wave")
    env["HOME"] = str(tmp / "home")
    for k in ("WAVEMQ_ROUTER", "WAVEMQ_ENTITY", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(k, None)
    wv(env, tmp, "mke", "-o", "namespace.ent", "--expiry", "1y", "--nopassphrase")
    wv(env, tmp, "mke", "-o", "dr.ent", "--expiry", "1y", "--nopassphrase")
    wv(env, tmp, "mke", "-o", "service.ent", "--expiry", "1y", "--nopassphrase")
    wv(env, tmp, "rtgrant", "--attester", "namespace.ent", "--subject", "service.ent", "--expiry", "1y",
       "wavemq:subscribe,publish,query@namespace.ent/*")
    wv(env, tmp, "rtgrant", "--attester", "namespace.ent", "--subject", "dr.ent", "--expiry", "1y",
       "wavemq:route@namespace.ent/*")
    wv(env, tmp, "rtprove", "--subject", "dr.ent", "-o", "routerproof.pem", "wavemq:route@namespace.ent/*")
    ns_hash = format_id(load_entity(tmp / "namespace.ent").id)
    dr = Router("dr", tmp, env)
    dr.config(designated=[tmp / "routerproof.pem"])
    # RouterEntityFile of the DR is dr.ent: the entity the route proof names
    dr.start()
    tier = Tier(tmp, env, dr, ns_hash=ns_hash)
    host, _, port = dr.peer_address.rpartition(":")
    for i in range(n_sites):
        proxy = FaultProxy(host, int(port))
        site = Router(f"site{i}", tmp, env, extra=site_extra)
        site.config(routers=f'[[RoutingConfig.Router]]\n  Namespace = "{ns_hash}"\n  Address = "{proxy.address}"\n')
        site.start()
        tier.proxies.append(proxy)
        tier.sites.append(site)
    dr.config(designated=[tmp / "routerproof.pem"])  # pin the peer port for restarts
    return tier


async def client(router: Router, tier: Tier, reconnect: bool = True, entity: str = "service.ent") -> Client:
    return await Client.connect(router.agent_address, entity=tier.dir / entity, wave_db=tier.dir / "wave",
                                reconnect=reconnect)


def another_publisher(tier: Tier, name: str) -> str:
    """A second entity granted publish and subscribe in the namespace (a distinct publisher); its file
    name, for ``client(..., entity=)``."""
    wv(tier.env, tier.dir, "mke", "-o", name, "--expiry", "1y", "--nopassphrase")
    wv(tier.env, tier.dir, "rtgrant", "--attester", "namespace.ent", "--subject", name, "--expiry", "1y",
       "wavemq:subscribe,publish@namespace.ent/*")
    return name


async def collect(sub: Subscription, n: int, timeout: float) -> list[ReceivedMessage]:
    out: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            out.append(await asyncio.wait_for(sub.__anext__(), left))
        except asyncio.TimeoutError:
            break
    return out


async def status(router: Router) -> dict[str, object]:
    """The router's STATUS reply (no grant needed)."""
    return await ask_status(router.agent_address)


async def subscriptions(router: Router) -> int:
    n = (await status(router))["subscriptions"]
    assert isinstance(n, int)
    return n


async def uplink_reconnects(router: Router) -> int:
    """How many times the site's (first) uplink connection ended, failed attempts included."""
    uplinks = (await status(router))["uplinks"]
    assert isinstance(uplinks, list)
    return int(uplinks[0]["reconnects"])
