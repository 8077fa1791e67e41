"""Helpers for the WAVE-lite tests: a small world of entities and grants at a fixed time.

Everything runs at ``T0`` (a fixed epoch second) so tests are deterministic; nothing reads the clock.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from wavemq_edge.uri import parse_pattern
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    Attestation,
    Entity,
    EntitySecret,
    MemoryStore,
    Proof,
    Statement,
    create_attestation,
    create_entity,
)
from wavemq_edge.wave.canonical import CborValue
from wavemq_edge.wave.envelope import ObjectType, seal_envelope
from wavemq_edge.wave.revocation import commitment_of, revocation_preimage

T0 = 1_700_000_000.0
DAY = 86400
YEAR = 365 * DAY


def st(perms: str, resource: str, pset: bytes = PSET_WAVEMQ) -> Statement:
    return Statement(pset, frozenset(perms.split(",")), parse_pattern(resource))


def raw_attestation(
    signer: EntitySecret,
    *,
    attester_id: bytes,
    subject_id: bytes,
    namespace_id: bytes,
    statements: Sequence[Statement],
    not_before: int,
    not_after: int,
    ttl: int = 0,
) -> Attestation:
    """An attestation built field by field (no creation rules), signed by ``signer``."""
    nonce = os.urandom(16)
    tbs: dict[int, CborValue] = {
        1: attester_id,
        2: subject_id,
        3: namespace_id,
        4: not_before,
        5: not_after,
        6: ttl,
        7: [s.to_cbor() for s in statements],
        8: commitment_of(revocation_preimage(signer.revocation_seed, nonce)),
        11: nonce,
    }
    return Attestation.parse(seal_envelope(ObjectType.ATTESTATION, tbs, signer.signing_key))


@dataclass
class World:
    """Namespace ``ns``; entities a, b, c; helper to grant and to assemble proofs by hand."""

    ns: EntitySecret
    a: EntitySecret
    b: EntitySecret
    c: EntitySecret
    store: MemoryStore = field(default_factory=MemoryStore)

    def __post_init__(self) -> None:
        for e in (self.ns, self.a, self.b, self.c):
            self.store.put_entity(e.entity)

    def grant(
        self,
        attester: EntitySecret,
        subject: EntitySecret | Entity,
        statements: Sequence[Statement],
        *,
        ttl: int = 0,
        now: float = T0,
        expiry_s: int = YEAR,
        namespace: bytes | None = None,
    ) -> Attestation:
        subj = subject.entity if isinstance(subject, EntitySecret) else subject
        att = create_attestation(
            attester,
            subj,
            namespace if namespace is not None else self.ns.id,
            statements,
            now=now,
            expiry_s=expiry_s,
            ttl=ttl,
        )
        self.store.put_attestation(att)
        return att

    def proof(
        self,
        subject: bytes,
        chain: Sequence[Attestation],
        *,
        paths: Sequence[Sequence[int]] | None = None,
        namespace: bytes | None = None,
        entities: Sequence[Entity] | None = None,
    ) -> Proof:
        ents = entities if entities is not None else [self.ns.entity, self.a.entity, self.b.entity, self.c.entity]
        return Proof.create(
            subject,
            namespace if namespace is not None else self.ns.id,
            [a.raw for a in chain],
            paths if paths is not None else [list(range(len(chain)))],
            [e.raw for e in ents],
            int(T0),
        )


def make_world() -> World:
    return World(*(create_entity(T0 - DAY, 2 * YEAR) for _ in range(4)))
