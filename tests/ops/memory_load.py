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
from dataclasses import dataclass, field
from pathlib import Path

from wavemq_edge.client import Client, ClientError
from wavemq_edge.wave import load_entity_secret

__all__ = ["FloodResult", "RssSampler", "drain", "flood", "read_rss"]

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


async def drain(client: Client, namespace: bytes, identifier: str, expect: int, timeout_s: float,
                prefix: str = "load") -> set[str]:
    """Resume the durable subscription ``identifier`` and read until ``expect`` distinct messages (or the
    timeout); returns the URIs received."""
    got: set[str] = set()
    deadline = time.monotonic() + timeout_s
    async with client.subscribe(namespace, f"{prefix}/*", identifier) as sub:
        while len(got) < expect:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                msg = await asyncio.wait_for(sub.__anext__(), left)
            except asyncio.TimeoutError:
                break
            got.add(msg.uri)
    return got


async def _main(address: str, pid: int, site: Path, count: int, size: int) -> None:
    service = load_entity_secret(site / "service.ent")
    ns = load_entity_secret(site / "namespace.ent").id
    async with await Client.connect(address, entity=service, wave_db=site / "wave") as sub_client:
        sub = sub_client.subscribe(ns, "load/*", "slow")
        await sub.start()
        writer = sub_client._writer
        assert writer is not None
        writer.transport.pause_reading()  # a subscriber that never reads
        with RssSampler(pid) as sampler:
            async with await Client.connect(address, entity=service, wave_db=site / "wave") as pub:
                res = await flood(pub, ns, count, size)
            print(f"published {len(res.accepted)} refused {len(res.refused)} in {res.seconds:.1f} s, "
                  f"slowest {res.slowest_s:.2f} s; max RSS {sampler.max_rss / 2**20:.1f} MB "
                  f"RssAnon {sampler.max_anon / 2**20:.1f} MB")
            writer.transport.resume_reading()
            await sub.close()
        rss, anon = read_rss(pid)
        print(f"after publish: RSS {rss / 2**20:.1f} MB RssAnon {anon / 2**20:.1f} MB")


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(_main(a[1], int(a[2]), Path(a[3]), int(a[4]), int(a[5])))
