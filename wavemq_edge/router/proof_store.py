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
from typing import Final

import cbor2

from ..lru import LRU
from ..storage import QueueLimits, QueueStore
from .records import RecordLog

__all__ = ["MAX_PROOFS", "PROOF_RECORDS", "ProofStore"]

log = logging.getLogger("wavemq_edge.router")

PROOF_RECORDS: Final = "router:proofs"
#: Distinct proofs kept: a site has tens of services, a designated router every site's publishers.
#: 4096 proofs of ~1.5 KiB are 6 MiB at most.
MAX_PROOFS: Final = 4096
_COMPACT_FACTOR: Final = 4
_COMPACT_MIN: Final = 64
_LIMITS: Final = QueueLimits(max_length=1_000_000, max_bytes=512 * 1024 * 1024, expiry_s=0)


class ProofStore:
    def __init__(self, queues: QueueStore, now: float) -> None:
        self._proofs: LRU[bytes, bytes] = LRU(MAX_PROOFS)
        self._log = RecordLog(queues, PROOF_RECORDS, _LIMITS, now, compact_factor=_COMPACT_FACTOR,
                              min_records=_COMPACT_MIN)
        for seq, body in self._log.replay():
            try:
                proof_id, proof = cbor2.loads(body)
            except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
                log.error("event=bad_proof_record seq=%d error=%r", seq, str(exc))
                continue
            if isinstance(proof_id, bytes) and isinstance(proof, bytes):
                self._proofs.put(proof_id, proof)

    def __len__(self) -> int:
        return len(self._proofs)

    def get(self, proof_id: bytes) -> bytes | None:
        return self._proofs.get(proof_id)

    def remember(self, proof_id: bytes, proof: bytes, now: float) -> None:
        if self._proofs.get(proof_id) is not None:
            return
        self._proofs.put(proof_id, proof)
        self._log.append(cbor2.dumps([proof_id, proof]), now, len(self._proofs),
                         lambda: [cbor2.dumps([pid, raw]) for pid, raw in self._proofs.items()])
