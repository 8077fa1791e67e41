"""What the benches share: identities, the tmpfs journal directory, the verify reference, router status.

Processes (routers, workers, a broker) are started and stopped by :mod:`.procs`; what is read about them
from ``/proc`` is in :mod:`.procstat`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ..client import Client
from ..wave import (
    EntitySecret,
    MemoryStore,
    ObjectType,
    Statement,
    build_proof,
    create_attestation,
    create_entity,
    save_entity_secret,
)
from ..wave.files import write_armored

__all__ = [
    "DAY_S",
    "BenchError",
    "BenchUsageError",
    "free_port",
    "grant_and_prove",
    "machine_summary",
    "router_status",
    "status_int",
    "subscription_depth",
    "tmpfs_mkdtemp",
    "tmpfs_root",
    "verify_rate",
]

#: Lifetime of the bench's entities and grants: longer than any run.
DAY_S: Final = 86400


class BenchError(Exception):
    """A bench run failed (a process did not start, a worker failed or timed out). The message is the
    whole line to print, starting with the command (``wavemq-edge bench: ...``)."""


class BenchUsageError(BenchError):
    """The bench's flags are out of range: bad usage, not a failed run."""


# ---------------------------------------------------------------------- timing and ratios


def verify_rate(seconds: float = 1.0, cpus: Sequence[int] | None = None) -> float:
    """This machine's single-core Ed25519 verify rate (per CPU second): the router's ceiling per message.

    Measured on ``cpus`` (the router's CPU, before the router starts) when given, so the reference and
    the router share a core.
    """
    previous = os.sched_getaffinity(0) if cpus is not None else None
    if cpus is not None:
        os.sched_setaffinity(0, set(cpus))
    try:
        return _verify_rate(seconds)
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)


def _verify_rate(seconds: float) -> float:
    # CPU time of this thread, not wall time: on a busy machine the router's figure is CPU time too, so
    # the two stay comparable when other processes share the core
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    signed = key.sign(b"x" * 200)
    vk = key.verify_key
    n = 0
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        for _ in range(100):
            vk.verify(signed)
        n += 100
    return n / (time.thread_time() - t0)


def machine_summary() -> str:
    """``N CPUs (model), python X.Y.Z``: the first words of each bench's report."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs{f' ({model})' if model else ''}, python {sys.version.split()[0]}"


# ---------------------------------------------------------------------- files and identities


def tmpfs_root() -> Path | None:
    """Where the routers the benches start keep their crash journals: ``$XDG_RUNTIME_DIR`` or ``/dev/shm``
    (tmpfs, as in production: a journal on a disk would add its writes to every figure), or None."""
    for candidate in (os.environ.get("XDG_RUNTIME_DIR", ""), "/dev/shm"):
        if candidate and Path(candidate).is_dir() and os.access(candidate, os.W_OK):
            return Path(candidate)
    return None


def tmpfs_mkdtemp(prefix: str, fallback: Path) -> Path:
    """A new directory under :func:`tmpfs_root`, else under ``fallback``; the caller removes it."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tmpfs_root() or fallback))


def grant_and_prove(store: MemoryStore, namespace: EntitySecret, grantee: EntitySecret,
                    statements: Sequence[Statement], now: float, *, proof: Path, secret: Path) -> None:
    """Grant ``statements`` on ``namespace`` to ``grantee``; write the grantee's proof and secret files."""
    store.put_attestation(create_attestation(namespace, grantee.entity, namespace.id, list(statements),
                                             now=now - 30, expiry_s=DAY_S))
    built = build_proof(store, grantee.id, namespace.id, list(statements), now=now)
    write_armored(proof, ObjectType.PROOF, built.to_bytes())
    save_entity_secret(secret, grantee)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a listener that must be configured in advance)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- the routers' status


async def _status(address: str) -> dict[str, object]:
    # status needs no grant: like ``wavemq-edge status``, authenticate as a throwaway entity
    async with await Client.connect(address, entity=create_entity(time.time() - 60, 3600),
                                    reconnect=False) as client:
        return await client.status()


def router_status(address: str) -> dict[str, object]:
    """One STATUS reply of the router at ``address`` (a short connection of its own)."""
    return asyncio.run(_status(address))


def status_int(status: dict[str, object], key: str) -> int:
    """An integer field of a status reply (0 when absent); for a map field, the sum of its values."""
    value = status.get(key, 0)
    if isinstance(value, dict):
        return sum(int(v) for v in value.values() if isinstance(v, int))
    return int(value) if isinstance(value, int) else 0


def subscription_depth(status: dict[str, object]) -> int:
    """Messages waiting in (or in flight from) the router's subscription queues, from ``queue_detail``
    (``queued_items`` counts the router's own queues too)."""
    detail = status.get("queue_detail")
    if not isinstance(detail, list):
        return status_int(status, "queued_items")
    return sum(int(q.get("depth", 0)) for q in detail if isinstance(q, dict) and q.get("kind") == "subscription")
