"""Proofs the router has accepted messages under, kept so queued messages can be forwarded later.

A trunk or a downstream delivery sends each message with its publisher's proof (once per connection),
but queues hold only the signed message bytes, which name the proof by id. This store maps proof id to
proof bytes, bounded (``MAX_PROOFS``, least recently used out) and durable the same way as everything
else: each new proof is appended to a dedicated store queue (journaled, flushed in batches), and the
queue is compacted when it holds several times more records than live proofs. A proof is written once,
not per message, so this costs no flash per message.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Final

import cbor2

from ..storage import QueueKind, QueueLimits, QueueStore

__all__ = ["MAX_PROOFS", "PROOF_RECORDS", "ProofStore"]

log = logging.getLogger("wavemq_edge.router")

PROOF_RECORDS: Final = "router:proofs"
#: Distinct proofs kept: a site has tens of services, a designated router every site's publishers.
#: 4096 proofs of ~1.5 KiB are 6 MiB at most.
MAX_PROOFS: Final = 4096
_COMPACT_FACTOR: Final = 4
_LIMITS: Final = QueueLimits(max_length=1_000_000, max_bytes=512 * 1024 * 1024, expiry_s=0)


class ProofStore:
    def __init__(self, queues: QueueStore, now: float) -> None:
        self._queues = queues
        self._proofs: OrderedDict[bytes, bytes] = OrderedDict()
        queues.create_queue(PROOF_RECORDS, QueueKind.TRUNK, _LIMITS, now)
        after = -1
        while True:
            batch = queues.peek(PROOF_RECORDS, after, 1024)
            if not batch:
                break
            for seq, body in batch:
                after = seq
                try:
                    proof_id, proof = cbor2.loads(body)
                except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
                    log.error("event=bad_proof_record seq=%d error=%r", seq, str(exc))
                    continue
                if isinstance(proof_id, bytes) and isinstance(proof, bytes):
                    self._proofs[proof_id] = proof
                    self._proofs.move_to_end(proof_id)
        while len(self._proofs) > MAX_PROOFS:
            self._proofs.popitem(last=False)

    def __len__(self) -> int:
        return len(self._proofs)

    def get(self, proof_id: bytes) -> bytes | None:
        proof = self._proofs.get(proof_id)
        if proof is not None:
            self._proofs.move_to_end(proof_id)
        return proof

    def remember(self, proof_id: bytes, proof: bytes, now: float) -> None:
        if proof_id in self._proofs:
            self._proofs.move_to_end(proof_id)
            return
        self._proofs[proof_id] = proof
        while len(self._proofs) > MAX_PROOFS:
            self._proofs.popitem(last=False)
        self._queues.append(PROOF_RECORDS, cbor2.dumps([proof_id, proof]), now)
        depth = self._queues.stats(PROOF_RECORDS).depth
        if depth > _COMPACT_FACTOR * max(len(self._proofs), 64):
            upto = self._queues.stats(PROOF_RECORDS).tail - 1
            for pid, raw in self._proofs.items():
                self._queues.append(PROOF_RECORDS, cbor2.dumps([pid, raw]), now)
            self._queues.ack(PROOF_RECORDS, upto)
