"""The memory-budget load: a durable subscriber that stops reading its socket, publishers sending many
large messages, and a sampler of the router's ``/proc/PID/status`` (``VmRSS``, ``RssAnon``) throughout.

Used by ``test_ops_memory_budget.py``; also runnable by hand against a running router to measure::

    .venv/bin/python tests/ops/memory_load.py ADDRESS PID SITE_DIR COUNT SIZE
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from wavemq_edge.client import Client, ClientError
from wavemq_edge.wave import load_entity_secret

__all__ = ["FloodResult", "LoadReport", "RssSampler", "flood", "read_rss", "run_load"]

KB = 1024


def read_rss(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of ``pid`` in bytes, from ``/proc/PID/status``."""
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * KB
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * KB
    return rss, anon


class RssSampler:
    """Samples a process's memory every ``interval_s`` in a thread until ``stop``; keeps every sample."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                rss, anon = read_rss(self.pid)
                self.samples.append((time.monotonic(), rss, anon))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def max_anon(self) -> int:
        return max((s[2] for s in self.samples), default=0)

    @property
    def max_rss(self) -> int:
        return max((s[1] for s in self.samples), default=0)


@dataclass
class FloodResult:
    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the slowest single publish (s): publishers held back by the budget wait, they are not refused
    slowest_s: float = 0.0


async def flood(client: Client, namespace: bytes, count: int, size: int, concurrency: int = 8,
                prefix: str = "load") -> FloodResult:
    """``count`` publishes of ``size`` bytes on ``concurrency`` pipelines; every reply recorded."""
    result = FloodResult()
    start = time.monotonic()
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            uri = f"{prefix}/{i}"
            payload = i.to_bytes(4, "big") * (size // 4)
            t0 = time.monotonic()
            try:
                await client.publish(namespace, uri, payload)
            except ClientError as exc:
                result.refused.append(f"{uri}: {exc}")
                continue
            result.slowest_s = max(result.slowest_s, time.monotonic() - t0)
            result.accepted.append(uri)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.monotonic() - start
    return result


@dataclass
class LoadReport:
    flood: FloodResult
    #: (monotonic time, VmRSS, RssAnon) of the router, every ``interval_s`` from before the flood to the end
    samples: list[tuple[float, int, int]]
    #: RssAnon before the flood, once the flood was over, and after every message was delivered and acked
    anon_before: int
    anon_after_flood: int
    anon_after_drain: int
    delivered: set[str]
    #: payloads that came back different from what was published
    corrupt: int


async def run_load(address: str, pid: int, site: Path, count: int, size: int, *, concurrency: int = 8,
                   settle: Callable[[], Awaitable[None]] | None = None, timeout_s: float = 600.0) -> LoadReport:
    """A durable subscriber that stops reading its socket, ``count`` publishes of ``size`` bytes, then the
    subscriber reads and acknowledges everything. ``settle`` runs after the drain (the caller waits for
    the router's budget watch there) before the last memory reading."""
    service = load_entity_secret(site / "service.ent")
    ns = load_entity_secret(site / "namespace.ent").id
    deadline = time.monotonic() + timeout_s
    async with await Client.connect(address, entity=service, wave_db=site / "wave") as sub_client:
        sub = sub_client.subscribe(ns, "load/*", "slow")
        await sub.start()
        writer = sub_client._writer
        assert writer is not None
        writer.transport.pause_reading()  # a subscriber that never reads
        with RssSampler(pid) as sampler:
            anon_before = read_rss(pid)[1]
            async with await Client.connect(address, entity=service, wave_db=site / "wave") as pub:
                flood_result = await flood(pub, ns, count, size, concurrency)
            anon_after_flood = read_rss(pid)[1]
            writer.transport.resume_reading()
            delivered: set[str] = set()
            corrupt = 0
            while len(delivered) < len(flood_result.accepted):
                msg = await asyncio.wait_for(sub.__anext__(), max(0.1, deadline - time.monotonic()))
                i = int(msg.uri.rsplit("/", 1)[1])
                corrupt += msg.data != i.to_bytes(4, "big") * (size // 4)
                delivered.add(msg.uri)
            await sub.close()  # acknowledges the last one
            if settle is not None:
                await settle()
            anon_after_drain = read_rss(pid)[1]
    return LoadReport(flood_result, list(sampler.samples), anon_before, anon_after_flood, anon_after_drain,
                      delivered, corrupt)


async def _main(address: str, pid: int, site: Path, count: int, size: int) -> None:
    r = await run_load(address, pid, site, count, size)
    mb = 2**20
    print(f"published {len(r.flood.accepted)} refused {len(r.flood.refused)} in {r.flood.seconds:.1f} s "
          f"(slowest {r.flood.slowest_s:.2f} s); delivered {len(r.delivered)} corrupt {r.corrupt}")
    print(f"RssAnon: before {r.anon_before / mb:.1f} MB, max {max(s[2] for s in r.samples) / mb:.1f} MB "
          f"(VmRSS max {max(s[1] for s in r.samples) / mb:.1f} MB), after the flood "
          f"{r.anon_after_flood / mb:.1f} MB, after the drain {r.anon_after_drain / mb:.1f} MB")


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(_main(a[1], int(a[2]), Path(a[3]), int(a[4]), int(a[5])))
