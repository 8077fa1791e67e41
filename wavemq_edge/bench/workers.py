"""The bench's load workers: ``wavemq-edge bench --role pub|sub|subs`` as separate processes.

The orchestrators (:mod:`.router`, :mod:`.tier`) start them with :func:`.common.start_worker` on the
CPUs the router does not use. A worker reads the identity files its orchestrator wrote to ``--dir``,
signals readiness by writing a file there, and prints one JSON object (its figures) on standard output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from ..client import Client

__all__ = ["ROLES", "run_role"]

#: Durable subscriptions the ``subs`` role holds: ``CONNECTIONS`` x ``SUBS_PER_CONNECTION`` = 1000.
IDLE_CONNECTIONS: Final = 4
IDLE_SUBS_PER_CONNECTION: Final = 250
#: Poll interval of the ``subs`` role waiting for its stop file.
STOP_POLL_S: Final = 0.1


async def _connect(args: argparse.Namespace, d: Path) -> Client:
    return await Client.connect(args.router, entity=args.entity, proofs=[d / "proof.pem"], reconnect=False)


async def _publish_all(args: argparse.Namespace, one: Callable[[int], Coroutine[Any, Any, None]], t0: float) -> None:
    if args.rate > 0:
        # Paced (open loop at a fixed rate below capacity): latency then measures the router, not a
        # queue of signed messages waiting in the publisher.
        tasks: list[asyncio.Task[None]] = []
        for i in range(args.messages):
            due = t0 + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*[one(i) for i in range(args.messages)])


async def _role_pub(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    client = await _connect(args, d)
    payload = os.urandom(args.payload)
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        async with sem:
            await client.publish(ns, f"{args.prefix}/p{args.tag}/m{i % 100}", [("b", payload)])

    await _publish_all(args, one, t0)
    elapsed = time.perf_counter() - t0
    await client.close()
    return {"published": args.messages, "seconds": elapsed}


async def _role_sub(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    client = await _connect(args, d)
    latencies: list[float] = []
    async with client.subscribe(ns, f"{args.prefix}/*", identifier=args.identifier) as sub:
        (d / f"sub-{args.prefix}.ready").write_text("1")
        first = last = 0.0
        async for msg in sub:
            now = time.time()
            if not latencies:
                first = time.perf_counter()
            latencies.append(now - msg.timestamp_ms / 1000.0)
            last = time.perf_counter()
            if len(latencies) >= args.messages:
                break
    await client.close()
    latencies.sort()
    return {
        "received": len(latencies),
        "seconds": last - first,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


async def _role_subs(args: argparse.Namespace) -> dict[str, Any]:
    """Open 1000 durable subscriptions (250 per connection) and hold them until told to stop."""
    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    clients = [await _connect(args, d) for _ in range(IDLE_CONNECTIONS)]
    subs = []
    for c, client in enumerate(clients):
        for i in range(IDLE_SUBS_PER_CONNECTION):
            sub = client.subscribe(ns, f"idle/{c}/{i}/*", identifier=f"idle-{c}-{i}")
            await sub.start()
            subs.append(sub)
    (d / "subs.ready").write_text(str(len(subs)))
    while not (d / "subs.stop").exists():
        await asyncio.sleep(STOP_POLL_S)
    for client in clients:
        for s in list(subs):
            if s.client is client:
                await client.unsubscribe(s.identifier)
        await client.close()
    return {"subscriptions": len(subs)}


ROLES: Final[dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]]] = {
    "pub": _role_pub,
    "sub": _role_sub,
    "subs": _role_subs,
}


def run_role(args: argparse.Namespace) -> int:
    """Run the worker role ``args.role`` and print its figures as one JSON line."""
    print(json.dumps(asyncio.run(ROLES[args.role](args))))
    return 0
