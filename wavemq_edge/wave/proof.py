"""Proofs: self-contained bundles of the attestation chains that give a subject some statements.

Proof (reference §7.4): ``[3, 1, {1: subject_id, 2: namespace_id, 3: [attestation envelope...],
4: [[index...]...] (paths, each namespace -> subject), 5: [entity envelope...], 6: created}]``; its ID is
the hash of the bytes. A proof is not signed and not secret: it grants nothing unless the presenter also
signs as its subject, which every user of a proof checks (:mod:`.verify`, :mod:`.proof_cache`).

Building (:func:`build_proof`) is a breadth-first search from the namespace over the store, separately per
required statement (shortest chain for each), pruning a branch as soon as its folded policy no longer
covers the statement (links only narrow, so a longer chain cannot recover it) or its TTL runs out. The
result is the union of one path per statement.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from .attestation import Attestation
from .canonical import CborValue
from .entity import Entity
from .envelope import ObjectType, open_envelope, seal_envelope
from .errors import NoProofError, Reason, VerificationError
from .fields import check_keys, get_bytes, get_list, get_uint
from .ids import ID_BYTES, format_id, object_id
from .policy import Statement, covered, fold

__all__ = [
    "MAX_PATHS",
    "MAX_PATH_LENGTH",
    "MAX_PROOF_ATTESTATIONS",
    "MAX_PROOF_BYTES",
    "Proof",
    "ProofSource",
    "build_proof",
]

#: Bounds of reference §7.4: they cap the work an attacker-supplied proof can cause.
MAX_PROOF_BYTES: Final = 64 * 1024
MAX_PROOF_ATTESTATIONS: Final = 32
MAX_PROOF_ENTITIES: Final = 2 * MAX_PROOF_ATTESTATIONS + 1
MAX_PATHS: Final = 8
MAX_PATH_LENGTH: Final = 16
_WHAT: Final = "proof"


@dataclass(frozen=True, slots=True)
class Proof:
    subject_id: bytes
    namespace_id: bytes
    attestations: tuple[bytes, ...]
    paths: tuple[tuple[int, ...], ...]
    entities: tuple[bytes, ...]
    created: int
    raw: bytes
    id: bytes

    @classmethod
    def create(
        cls,
        subject_id: bytes,
        namespace_id: bytes,
        attestations: Sequence[bytes],
        paths: Sequence[Sequence[int]],
        entities: Sequence[bytes],
        created: int,
    ) -> Proof:
        tbs: dict[int, CborValue] = {
            1: subject_id,
            2: namespace_id,
            3: list(attestations),
            4: [list(p) for p in paths],
            5: list(entities),
            6: created,
        }
        return cls.from_bytes(seal_envelope(ObjectType.PROOF, tbs, None))

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        """Decode and check the shape and bounds; :func:`.verify.verify_proof` checks the content."""
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.PROOF, MAX_PROOF_BYTES)
        tbs = opened.tbs
        check_keys(tbs, range(1, 7), _WHAT)
        attestations = _bytes_list(get_list(tbs, 3, "attestations", _WHAT, MAX_PROOF_ATTESTATIONS), "attestation")
        entities = _bytes_list(get_list(tbs, 5, "entities", _WHAT, MAX_PROOF_ENTITIES), "entity")
        paths: list[tuple[int, ...]] = []
        for path in get_list(tbs, 4, "paths", _WHAT, MAX_PATHS):
            if not isinstance(path, list):
                raise VerificationError(Reason.MALFORMED, "proof: a path is not an array")
            if len(path) > MAX_PATH_LENGTH:
                raise VerificationError(Reason.OVERSIZE, f"proof: a path is longer than {MAX_PATH_LENGTH}")
            if not all(type(i) is int and i >= 0 for i in path):
                raise VerificationError(Reason.MALFORMED, "proof: a path entry is not an unsigned integer")
            paths.append(tuple(i for i in path if isinstance(i, int)))
        return cls(
            subject_id=get_bytes(tbs, 1, "subject_id", _WHAT, ID_BYTES),
            namespace_id=get_bytes(tbs, 2, "namespace_id", _WHAT, ID_BYTES),
            attestations=attestations,
            paths=tuple(paths),
            entities=entities,
            created=get_uint(tbs, 6, "created", _WHAT),
            raw=raw,
            id=object_id(raw),
        )

    def to_bytes(self) -> bytes:
        return self.raw


def _bytes_list(items: list[CborValue], what: str) -> tuple[bytes, ...]:
    out: list[bytes] = []
    for item in items:
        if not isinstance(item, bytes):
            raise VerificationError(Reason.MALFORMED, f"proof: an included {what} is not a byte string")
        out.append(item)
    return tuple(out)


class ProofSource(Protocol):
    """What :func:`build_proof` needs from a store (``WaveStore`` and ``MemoryStore`` provide it)."""

    def get_entity(self, entity_id: bytes) -> Entity | None: ...

    def attestations_by_attester(self, attester_id: bytes) -> list[Attestation]: ...

    def is_revoked(self, commitment: bytes) -> bool: ...


def _usable_entity(source: ProofSource, entity_id: bytes, now: float) -> Entity | None:
    entity = source.get_entity(entity_id)
    if entity is None or not entity.is_valid_at(now) or source.is_revoked(entity.revocation_commitment):
        return None
    return entity


def _shortest_path(
    source: ProofSource, subject_id: bytes, namespace_id: bytes, required: Statement, now: float
) -> list[Attestation] | None:
    # State: (entity reached, path so far, folded policy, remaining TTL). A state is worth expanding only
    # if it reaches its entity with more TTL than any earlier (hence no longer) path did.
    best_ttl: dict[bytes, int] = {}
    queue: deque[tuple[bytes, list[Attestation], tuple[Statement, ...], int]] = deque()
    queue.append((namespace_id, [], (), MAX_PATH_LENGTH))
    while queue:
        entity_id, path, policy, ttl = queue.popleft()
        if len(path) >= MAX_PATH_LENGTH or _usable_entity(source, entity_id, now) is None:
            continue
        for att in source.attestations_by_attester(entity_id):
            if (
                att.namespace_id != namespace_id
                or not att.is_valid_at(now)
                or source.is_revoked(att.revocation_commitment)
                or any(a.id == att.id for a in path)
                or _usable_entity(source, att.subject_id, now) is None
            ):
                continue
            if path:
                new_policy = fold(policy, att.statements)
                new_ttl = min(ttl - 1, att.ttl)
                if new_ttl < 0:
                    continue
            else:
                new_policy, new_ttl = att.statements, att.ttl
            if not covered(required, new_policy):
                continue
            new_path = [*path, att]
            if att.subject_id == subject_id:
                return new_path
            if best_ttl.get(att.subject_id, -1) < new_ttl:
                best_ttl[att.subject_id] = new_ttl
                queue.append((att.subject_id, new_path, new_policy, new_ttl))
    return None


def build_proof(
    source: ProofSource,
    subject_id: bytes,
    namespace_id: bytes,
    required: Sequence[Statement],
    *,
    now: float,
) -> Proof:
    """The smallest union of shortest chains that grants every required statement to the subject."""
    entity_ids: list[bytes] = []

    def add_entity(entity_id: bytes) -> None:
        if entity_id not in entity_ids:
            entity_ids.append(entity_id)

    add_entity(namespace_id)
    attestations: list[Attestation] = []
    paths: list[tuple[int, ...]] = []
    if subject_id != namespace_id:
        for statement in required:
            path = _shortest_path(source, subject_id, namespace_id, statement, now)
            if path is None:
                raise NoProofError(
                    f"no valid chain of grants gives {format_id(subject_id)} {statement.describe()} "
                    f"in namespace {format_id(namespace_id)}"
                )
            indices: list[int] = []
            for att in path:
                if att not in attestations:
                    attestations.append(att)
                indices.append(attestations.index(att))
                add_entity(att.attester_id)
                add_entity(att.subject_id)
            if tuple(indices) not in paths:
                paths.append(tuple(indices))
    entities: list[bytes] = []
    for entity_id in entity_ids:
        entity = source.get_entity(entity_id)
        if entity is None:
            raise NoProofError(f"entity {format_id(entity_id)} is not in the store")
        entities.append(entity.raw)
    return Proof.create(subject_id, namespace_id, [a.raw for a in attestations], paths, entities, int(now))
