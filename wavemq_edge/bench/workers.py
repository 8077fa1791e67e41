"""The bench's load workers: ``wavemq-edge bench --role ROLE`` as separate processes.

The orchestrators (:mod:`.router`, :mod:`.tier`, :mod:`.compare`) start them with
:func:`.common.start_worker` on the CPUs the router does not use. A worker reads the identity files its
orchestrator wrote to ``--dir``, signals readiness by writing a file there, and prints one JSON object (its
figures) on standard output. Every wait is bounded (``--timeout``).

Roles:

* ``pub``: sign ``--messages`` messages, encode their frames into one buffer (:mod:`.load`), write
  ``pub-PREFIX-TAG.ready``, wait for the ``go`` file, then write them: at full speed with ``--concurrency``
  publishes unanswered, or paced at ``--rate`` msg/s, each message's signed timestamp its due time (so
  the subscriber's latency is the router's, not a queue in the publisher's).
* ``sub``: subscribe to ``PREFIX/*`` (durable with ``--identifier``), write ``sub-PREFIX.ready``, receive
  and acknowledge until ``--messages`` arrived or ``sub-PREFIX.stop`` appears on a quiet stream.
* ``subs``: hold 1000 idle durable subscriptions until ``subs.stop`` appears.
* ``mqtt-pub`` / ``mqtt-sub``: the same load shape against an MQTT broker (:mod:`.mqtt`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..client import Client
from ..client.events import MessageDelivered
from ..client.proofs import load_proofs
from ..wave import load_entity_secret, sign_subscribe
from . import load
from .common import BenchError
from .procstat import summarize

__all__ = ["ROLES", "run_role", "wait_for_go"]

#: Durable subscriptions the ``subs`` role holds: ``CONNECTIONS`` x ``SUBS_PER_CONNECTION`` = 1000.
IDLE_CONNECTIONS: Final = 4
IDLE_SUBS_PER_CONNECTION: Final = 250
#: Poll interval of a worker waiting for its go or stop file.
FILE_POLL_S: Final = 0.01
#: Seconds between the end of signing and the first due time of a paced publisher, on top of 1.5 times
#: the signing time measured on a sample (the orchestrator writes ``go`` in that margin).
PACED_MARGIN_S: Final = 1.0
PACED_SAMPLE: Final = 50
#: URIs a publisher cycles through (``PREFIX/pTAG/mN``): a few, as a sensor gateway has.
URIS_PER_PUBLISHER: Final = 100


def wait_for_go(d: Path, deadline: float) -> None:
    """Wait for the orchestrator's ``go`` file in ``d``; raise :class:`.load.LoadError` at ``deadline``."""
    while not (d / "go").exists():
        if time.monotonic() > deadline:
            raise load.LoadError("no go signal from the orchestrator in time")
        time.sleep(FILE_POLL_S)


def _stamps(args: argparse.Namespace, sign_one: Callable[[float], object]) -> list[float]:
    """Each message's timestamp: now (full speed), or its due time at ``--rate`` msg/s after a margin."""
    if args.rate <= 0:
        return [time.time()] * args.messages
    t = time.perf_counter()
    for _ in range(PACED_SAMPLE):
        sign_one(time.time())
    per_msg = (time.perf_counter() - t) / PACED_SAMPLE
    t0 = time.time() + 1.5 * per_msg * args.messages + PACED_MARGIN_S
    return [t0 + i / args.rate for i in range(args.messages)]


def _role_pub(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    deadline = time.monotonic() + args.timeout
    entity = load_entity_secret(args.entity)
    ns = (d / "ns.id").read_bytes()
    proof = load_proofs([d / "proof.pem"])[0]
    with load.connect(args.router) as sock:
        proto, router_id = load.handshake(sock, entity)
        proof_id = load.send_proof(sock, proto, proof)
        uris = [f"{args.prefix}/p{args.tag}/m{i}" for i in range(URIS_PER_PUBLISHER)]
        payload = os.urandom(args.payload)

        def sign_one(stamp: float) -> object:
            return load.presign(entity, namespace=ns, proof_id=proof_id, router_id=router_id, uris=uris,
                                payload=payload, stamps=[stamp])

        stamps = _stamps(args, sign_one)
        messages = load.presign(entity, namespace=ns, proof_id=proof_id, router_id=router_id, uris=uris,
                                payload=payload, stamps=stamps)
        buf, offsets = load.encode_publish_frames(messages, proto.last_request + 1)
        (d / f"pub-{args.prefix}-{args.tag}.ready").write_text(str(len(buf)))
        wait_for_go(d, deadline)
        t0, cpu0 = time.perf_counter(), time.process_time()
        if args.rate > 0:
            counter = load.publish_paced(sock, buf, offsets, stamps, args.concurrency, deadline)
        else:
            counter = load.publish_saturated(sock, buf, offsets, args.concurrency, deadline)
        elapsed = time.perf_counter() - t0
    return {"published": counter.ok, "refused": counter.refused, "first_refusal": counter.first_refusal,
            "seconds": elapsed, "frame_bytes": len(buf), "cpu_s": time.process_time() - cpu0,
            "late_ms": 1000 * counter.late_s}


def _role_sub(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    deadline = time.monotonic() + args.timeout
    entity = load_entity_secret(args.entity)
    ns = (d / "ns.id").read_bytes()
    proof = load_proofs([d / "proof.pem"])[0]
    ident = args.identifier or f"bench-{os.getpid()}"
    with load.connect(args.router) as sock:
        proto, router_id = load.handshake(sock, entity)
        proof_id = load.send_proof(sock, proto, proof)
        req = sign_subscribe(entity, namespace=ns, uri=f"{args.prefix}/*", sub_id=ident, router_id=router_id,
                             proof_id=proof_id, now=time.time())
        early: list[MessageDelivered] = []
        n, _ = proto.send_subscribe(ident, req.raw, args.identifier is None)
        load.exchange(sock, proto, n, early)
        result = load.Consumed(args.latency)
        for event in early:
            result.take(proto, event, time.time())
        (d / f"sub-{args.prefix}.ready").write_text("1")
        cpu0 = time.process_time()
        load.consume(sock, proto, args.messages, d / f"sub-{args.prefix}.stop", deadline, result)
        proto.send_acks()
        out = proto.bytes_to_send()
        if out:
            sock.sendall(out)
    lat = sorted(result.latencies)
    return {
        "received": result.received,
        "first_wall": result.first,
        "last_wall": result.last,
        "seconds": result.last - result.first,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else 0.0,
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        "max_ms": 1000 * summarize(lat).max if lat else 0.0,
        "cpu_s": time.process_time() - cpu0,
    }


async def _role_subs_async(args: argparse.Namespace) -> dict[str, Any]:
    """Open 1000 durable subscriptions (250 per connection) and hold them until told to stop."""
    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    deadline = time.monotonic() + args.timeout
    clients = [await Client.connect(args.router, entity=args.entity, proofs=[d / "proof.pem"], reconnect=False)
               for _ in range(IDLE_CONNECTIONS)]
    subs = []
    for c, client in enumerate(clients):
        for i in range(IDLE_SUBS_PER_CONNECTION):
            sub = client.subscribe(ns, f"idle/{c}/{i}/*", identifier=f"idle-{c}-{i}")
            await sub.start()
            subs.append(sub)
    (d / "subs.ready").write_text(str(len(subs)))
    while not (d / "subs.stop").exists() and time.monotonic() < deadline:
        await asyncio.sleep(FILE_POLL_S * 10)
    for client in clients:
        for s in list(subs):
            if s.client is client:
                await client.unsubscribe(s.identifier)
        await client.close()
    return {"subscriptions": len(subs)}


def _role_subs(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_role_subs_async(args))


def _mqtt_role(name: str) -> Callable[[argparse.Namespace], dict[str, Any]]:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        from . import mqtt

        result: dict[str, Any] = getattr(mqtt, name)(args)
        return result

    return run


ROLES: Final[dict[str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "pub": _role_pub,
    "sub": _role_sub,
    "subs": _role_subs,
    "mqtt-pub": _mqtt_role("role_pub"),
    "mqtt-sub": _mqtt_role("role_sub"),
}


def run_role(args: argparse.Namespace) -> int:
    """Run the worker role ``args.role`` and print its figures as one JSON line."""
    try:
        figures = ROLES[args.role](args)
    except (load.LoadError, OSError) as exc:
        raise BenchError(f"wavemq-edge bench --role {args.role}: {exc}") from exc
    print(json.dumps(figures))
    return 0
