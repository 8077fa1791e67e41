"""One host cannot lock every agent out (connection slots): a real router, 2 000 hostile connections
from one address (half never finishing the handshake, half authenticated with throw-away keys and
trickling a frame a byte a second, each reopened as soon as the router closes it), and a good client
on another address that connects, subscribes, publishes and receives 30 times: 30 of 30.

Before the slot policy (net/slots.py) a good client got in 3 times out of 33 under this load.

Two configurations: the defaults (the per-address caps keep the host to its share), and a small router
(24 slots) whose every slot one address may take (``maxConnectionsPerAddress = maxConnections``, as
when every agent shares an address): then evicting connections that never made an authorised request
is what lets the good client in.
"""

from __future__ import annotations

import asyncio
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from proc_helpers import RouterProcess, Site, config_text
from waiting import await_until, wait_until

from wavemq_edge.client import Client
from wavemq_edge.wave import load_entity_secret

HOSTILE = Path(__file__).with_name("hostile_agents.py")
HOSTILE_SOURCE = "127.0.0.2"
N_SILENT = 1000
N_TRICKLE = 1000
ROUNDS = 30
#: descriptors: the test process holds the good client, the router its 1 024 slots plus the ones it
#: is refusing, the hostile process its 2 000 (every child inherits this limit)
NOFILE = 8192
STATS = re.compile(r"opened=(\d+) open=(\d+) silent_open=(\d+) trickling=(\d+) closed_by_router=(\d+)")


@pytest.fixture
def nofile() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if want < N_SILENT + N_TRICKLE + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below what the test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Hostile:
    def __init__(self, address: str, log: Path) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, str(HOSTILE), address, HOSTILE_SOURCE, str(N_SILENT),
                                      str(N_TRICKLE)], stdout=self._out, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)

    def reports(self) -> int:
        return len(STATS.findall(self.log.read_text())) if self.log.exists() else 0

    def stats(self) -> dict[str, int]:
        lines = STATS.findall(self.log.read_text()) if self.log.exists() else []
        if not lines:
            return {}
        keys = ("opened", "open", "silent_open", "trickling", "closed_by_router")
        return dict(zip(keys, map(int, lines[-1]), strict=True))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()


async def good_rounds(address: str, entity: Path, wave_db: Path, ns: bytes) -> list[str]:
    """Connect, subscribe, publish, receive and close, ``ROUNDS`` times; the failures, if any."""
    failures: list[str] = []
    for i in range(ROUNDS):
        try:
            c = await asyncio.wait_for(Client.connect(address, entity=entity, wave_db=wave_db, reconnect=False), 15)
            async with c, c.subscribe(ns, f"good/{i}") as sub:
                await asyncio.wait_for(c.publish(ns, f"good/{i}", str(i)), 15)
                msg = await asyncio.wait_for(sub.__anext__(), 15)
                assert msg.text == str(i)
        except Exception as exc:
            failures.append(f"round {i}: {exc!r}")
    return failures


#: the defaults (the per-address caps keep one host to its share); and a small router (24 slots) whose
#: every slot one address may take, so that evicting connections that never made an authorised request
#: is what lets the good client in
CONFIGS = {
    "defaults": "",
    "slots_full": "\n[LimitsConfig]\n  maxConnections = 24\n  maxConnectionsPerAddress = 24\n",
}


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_good_client_gets_in_30_of_30_under_2000_hostile_connections(
        site: Site, router_factory: Callable[..., RouterProcess], tmp_path: Path, nofile: None,
        config: str) -> None:
    cfg = tmp_path / "slots.toml"
    cfg.write_text(config_text(tmp_path) + CONFIGS[config])
    router = router_factory(cfg).start()
    entity = site.entity("good")
    ns = load_entity_secret(site.dir / "namespace.ent").id
    hostile = Hostile(router.address, tmp_path / "hostile.log")
    try:
        # the attack in full swing: every hostile connection opened, a handshake timeout (5 s) gone by,
        # and some throw-away keys authenticated and trickling
        wait_until(lambda: hostile.reports() >= 7 and hostile.stats().get("opened", 0) >= N_SILENT + N_TRICKLE
                   and hostile.stats().get("trickling", 0) >= 8, 60, "the attack in full swing")
        before = hostile.stats()
        t0 = time.monotonic()
        failures = asyncio.run(asyncio.wait_for(good_rounds(router.address, entity, site.dir / "wave", ns), 120))
        elapsed = time.monotonic() - t0
        seen = hostile.reports()
        wait_until(lambda: hostile.reports() > seen, 10, "the hostile process's next report")
        after = hostile.stats()
        status = asyncio.run(asyncio.wait_for(_status(router.address, entity, site.dir / "wave"), 30))
    finally:
        hostile.stop()
    print(f"\n{config}: {ROUNDS - len(failures)}/{ROUNDS} good rounds in {elapsed:.1f} s; hostile "
          f"{before} -> {after}; admission {status.get('admission')}")
    assert not failures, failures
    assert after["opened"] > before["opened"]  # the attack went on throughout
    admission = status["admission"]
    assert isinstance(admission, dict)
    refused, evicted, timed_out = admission["refused"], admission["evicted"], admission["timed_out"]
    assert isinstance(refused, dict) and isinstance(evicted, dict) and isinstance(timed_out, dict)
    assert refused["handshakes_per_address"] > 0 and timed_out["handshake"] > 0
    if config == "slots_full":
        assert evicted["max_connections"] + evicted["per_address"] > 0


async def _status(address: str, entity: Path, wave_db: Path) -> dict[str, object]:
    async def ask() -> dict[str, object] | None:
        try:
            async with await Client.connect(address, entity=entity, wave_db=wave_db, reconnect=False) as c:
                return await c.status()
        except Exception:
            return None

    result: dict[str, object] | None = None

    async def got() -> bool:
        nonlocal result
        result = await ask()
        return result is not None

    await await_until(got, 20, "a status reply")
    assert result is not None
    return result
