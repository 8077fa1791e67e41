"""Benchmark of the WAVE-lite hot paths: message sign/verify, proof verification cold and cached.

Run: ``.venv/bin/python ci/bench/bench_wave.py`` (about 10 s). Prints per-operation cost and rate, and
the cost of a cached proof check relative to one Ed25519 signature verification (goal: < 0.2).
Deterministic inputs, fixed ``now``; no clock is read by the code under test, only by the timer here.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

from wavemq_edge.uri import parse_pattern, parse_uri
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    Message,
    Proof,
    Statement,
    Verifier,
    create_attestation,
    create_entity,
    sign_message,
    verify_proof,
)

NOW = 1_700_000_000.0
YEAR = 365 * 86400


def bench(name: str, fn: Callable[[], object], min_time_s: float = 1.0) -> float:
    """Seconds per call of ``fn`` (best of 3 batches sized to ``min_time_s`` / 3 each)."""
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > min_time_s / 10:
            break
        n *= 2
    per_batch = max(1, int(n * (min_time_s / 3) / dt))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(per_batch):
            fn()
        best = min(best, (time.perf_counter() - t) / per_batch)
    print(f"{name:<46} {best * 1e6:10.2f} us/op {1 / best:12,.0f} ops/s")
    return best


def main() -> None:
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    ns, router, service = (create_entity(NOW - 3600, 2 * YEAR) for _ in range(3))
    wavemq = lambda perms, res: Statement(PSET_WAVEMQ, frozenset(perms), parse_pattern(res))  # noqa: E731
    first = create_attestation(
        ns, router.entity, ns.id, [wavemq({"publish", "subscribe"}, "*")], now=NOW, expiry_s=YEAR, ttl=1
    )
    second = create_attestation(router, service.entity, ns.id, [wavemq({"publish"}, "site1/*")], now=NOW, expiry_s=YEAR)
    proof = Proof.create(
        service.id, ns.id, [first.raw, second.raw], [[0, 1]], [ns.entity.raw, router.entity.raw, service.entity.raw],
        int(NOW),
    )  # fmt: skip
    print(f"proof: 2 links, {len(proof.raw)} bytes")

    payload = [("text/plain", b"x" * 200)]
    uri = "site1/building/room/temperature"
    msg = sign_message(service, namespace=ns.id, uri=uri, payload=payload, proof_id=proof.id, now=NOW)
    print(f"message: {len(payload[0][1])}-byte payload, {len(msg.raw)} bytes signed")

    signed_bytes = service.signing_key.sign(b"y" * len(msg.raw))
    vk = service.entity.verify_key
    ed = bench("Ed25519 verify (raw libsodium, baseline)", lambda: vk.verify(signed_bytes))
    bench("message sign", lambda: sign_message(service, namespace=ns.id, uri=uri, payload=payload,
                                                proof_id=proof.id, now=NOW))  # fmt: skip
    bench("message parse + verify", lambda: Message.parse(msg.raw).verify(service.entity, now=NOW))
    bench("proof verify, cold (2 links, 3 entities)", lambda: verify_proof(proof.raw, now=NOW))

    verifier = Verifier()
    resource = parse_uri(uri)

    def cached() -> object:
        return verifier.check(
            proof.raw, subject=service.id, namespace=ns.id, pset=PSET_WAVEMQ, permission="publish",
            resource=resource, now=NOW,
        )  # fmt: skip

    def cached_by_id() -> object:
        return verifier.check_id(
            proof.id, subject=service.id, namespace=ns.id, pset=PSET_WAVEMQ, permission="publish",
            resource=resource, now=NOW,
        )  # fmt: skip

    cached()
    hit = bench("proof check, cached (by proof bytes)", cached)
    hit_id = bench("proof check, cached (by proof id, elided)", cached_by_id)
    print(f"cached check / Ed25519 verify: {hit / ed:.3f} (bytes), {hit_id / ed:.3f} (id); goal < 0.2")


if __name__ == "__main__":
    main()
