"""Proof verification: the pure function at the heart of authorization (reference §7.4).

``verify_proof`` takes the proof bytes, ``now`` (seconds since the epoch, passed in: this module never
reads a clock), the clock skew, the set of revealed revocation commitments and an optional lookup for
entities not included in the proof, and returns a :class:`ProofResult` or raises a
``VerificationError`` whose ``reason`` names the first rule broken. The rules, in the order checked:

1. strict decoding within the bounds of :mod:`.proof` (OVERSIZE / NON_CANONICAL / MALFORMED);
2. path shape: non-empty, in range, no attestation twice in a path or in the list (BAD_PATH); a proof
   with no path is only valid when the subject is the namespace itself;
3. included entities: self-signatures (BAD_SIGNATURE); entities from the lookup are re-hashed
   (ID_MISMATCH) -- an ID is a content hash, so a lookup cannot substitute another entity;
4. attestations: same namespace as the proof (WRONG_NAMESPACE), attester known (UNKNOWN_ENTITY),
   signature by that attester (BAD_SIGNATURE);
5. chains: ``path[0].attester == namespace`` (NOT_FROM_NAMESPACE -- the check WAVE 3 lacks, which let a
   self-issued grant claim any namespace); ``subject(a_i) == attester(a_i+1)`` (BROKEN_LINK); **every**
   path ends at the proof's subject (WRONG_SUBJECT -- WAVE 3 skipped the last path);
6. validity at ``now`` of every entity used and every attestation: ``not_before - skew <= now <
   not_after`` (NOT_YET_VALID / EXPIRED; expiry is strict, skew applies to ``not_before`` only) and
   revocation (REVOKED);
7. folding along each path with WAVE's ``Intersect`` and ``ttl := min(ttl - 1, next.ttl) >= 0``
   (TTL_EXCEEDED); then the union of paths.

What the proof grants to whom is then asked with :meth:`ProofResult.require`, which also checks that the
party presenting the proof is its subject (reference §7.4 step 6) -- on every use, never cached away.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final

from ..uri import Pattern
from .attestation import Attestation
from .entity import Entity
from .errors import Reason, VerificationError
from .ids import check_id, format_id
from .policy import Statement, covered, fold, union
from .proof import Proof

__all__ = ["DEFAULT_SKEW_S", "EntityLookup", "ProofResult", "verify_proof"]

#: Clock skew tolerated on ``not_before`` and message timestamps: Pi-class gateways without an RTC may
#: run minutes off until NTP syncs; 5 minutes is the Kerberos precedent.
DEFAULT_SKEW_S: Final = 300.0

EntityLookup = Callable[[bytes], "Entity | None"]


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What a valid proof grants: to ``subject`` in ``namespace``, the ``statements``, until ``expiry``."""

    proof_id: bytes
    subject: bytes
    namespace: bytes
    statements: tuple[Statement, ...]
    #: Earliest ``not_after`` of every entity and attestation used (seconds since the epoch; exclusive).
    expiry: int
    #: Latest ``not_before`` of everything used (the proof was checked at a time after ``it - skew``).
    not_before: int
    #: Revocation commitments and entity IDs this result depends on: revealing any one invalidates it.
    depends: frozenset[bytes]
    #: Further re-delegations the chains still allow (WAVE's "Indirections"; min over paths).
    indirections: int = 0

    def require(self, subject: bytes, namespace: bytes, pset: bytes, permission: str, resource: Pattern) -> None:
        """Raise unless this proof grants ``subject`` ``permission`` of ``pset`` on ``namespace/resource``."""
        if subject != self.subject:
            raise VerificationError(
                Reason.WRONG_SUBJECT,
                f"proof {format_id(self.proof_id)} is for {format_id(self.subject)}, presented by {format_id(subject)}",
            )
        if namespace != self.namespace:
            raise VerificationError(
                Reason.WRONG_NAMESPACE,
                f"proof {format_id(self.proof_id)} is for namespace {format_id(self.namespace)}, "
                f"not {format_id(namespace)}",
            )
        if self.subject == self.namespace and not self.statements:
            return  # the namespace acts in its own namespace (zero-path proof)
        wanted = Statement(pset, frozenset((permission,)), resource)
        if not covered(wanted, self.statements):
            raise VerificationError(
                Reason.INSUFFICIENT_PERMISSION,
                f"proof {format_id(self.proof_id)} does not grant {wanted.describe()}; it grants "
                + (", ".join(s.describe() for s in self.statements) or "nothing"),
            )

    def require_all(self, subject: bytes, namespace: bytes, statements: tuple[Statement, ...]) -> None:
        for s in statements:
            for perm in sorted(s.permissions):
                self.require(subject, namespace, s.pset, perm, s.resource)


def _check_validity(what: str, not_before: int, not_after: int, now: float, skew_s: float) -> None:
    if now >= not_after:
        raise VerificationError(Reason.EXPIRED, f"{what} expired at {not_after} (now {now:.0f})")
    if now < not_before - skew_s:
        raise VerificationError(
            Reason.NOT_YET_VALID, f"{what} is valid from {not_before}, now {now:.0f} is earlier than the skew allows"
        )


def _check_paths(proof: Proof, pid: str) -> None:
    """Step 2: every path is non-empty, in range and without a cycle."""
    n = len(proof.attestations)
    if not proof.paths and proof.subject_id != proof.namespace_id:
        raise VerificationError(Reason.BAD_PATH, f"proof {pid} has no path and its subject is not the namespace")
    for p, path in enumerate(proof.paths):
        if not path:
            raise VerificationError(Reason.BAD_PATH, f"proof {pid}: path {p} is empty")
        for i in path:
            if i >= n:
                raise VerificationError(Reason.BAD_PATH, f"proof {pid}: path {p} refers to attestation {i} of {n}")
        if len(set(path)) != len(path):
            raise VerificationError(Reason.BAD_PATH, f"proof {pid}: path {p} uses an attestation twice (a cycle)")


class _Entities:
    """Step 3: the entities a proof carries, then the local store's (checked against their ids)."""

    def __init__(self, proof: Proof, pid: str, lookup: EntityLookup | None) -> None:
        self._pid = pid
        self._lookup = lookup
        self._known: dict[bytes, Entity] = {}
        for raw in proof.entities:
            entity = Entity.from_bytes(raw)
            self._known[entity.id] = entity

    def resolve(self, entity_id: bytes, role: str) -> Entity:
        entity = self._known.get(entity_id)
        if entity is None and self._lookup is not None:
            entity = self._lookup(entity_id)
            if entity is not None:
                check_id(entity_id, entity.raw, f"{role} {format_id(entity_id)} from the local store")
                self._known[entity_id] = entity
        if entity is None:
            raise VerificationError(
                Reason.UNKNOWN_ENTITY, f"proof {self._pid}: {role} {format_id(entity_id)} is neither included nor known"
            )
        return entity


def _attestations(proof: Proof, pid: str, entities: _Entities) -> list[Attestation]:
    """Step 4: each attestation once, in the proof's namespace, signed by its attester."""
    attestations: list[Attestation] = []
    seen: set[bytes] = set()
    for raw in proof.attestations:
        att = Attestation.parse(raw)
        if att.id in seen:
            raise VerificationError(Reason.BAD_PATH, f"proof {pid}: attestation {format_id(att.id)} included twice")
        seen.add(att.id)
        if att.namespace_id != proof.namespace_id:
            raise VerificationError(
                Reason.WRONG_NAMESPACE,
                f"proof {pid}: attestation {format_id(att.id)} is in namespace {format_id(att.namespace_id)}, "
                f"the proof is for {format_id(proof.namespace_id)}",
            )
        att.verify(entities.resolve(att.attester_id, "attester"))
        attestations.append(att)
    return attestations


def _check_chains(proof: Proof, pid: str, attestations: list[Attestation]) -> None:
    """Step 5: each path runs from the namespace, link to link, to the subject."""
    for p, path in enumerate(proof.paths):
        first = attestations[path[0]]
        if first.attester_id != proof.namespace_id:
            raise VerificationError(
                Reason.NOT_FROM_NAMESPACE,
                f"proof {pid}: path {p} starts with a grant by {format_id(first.attester_id)}, "
                f"not by the namespace {format_id(proof.namespace_id)}",
            )
        for k in range(1, len(path)):
            prev, cur = attestations[path[k - 1]], attestations[path[k]]
            if prev.subject_id != cur.attester_id:
                raise VerificationError(
                    Reason.BROKEN_LINK,
                    f"proof {pid}: path {p} link {k}: granted to {format_id(prev.subject_id)} "
                    f"but the next grant is by {format_id(cur.attester_id)}",
                )
        last = attestations[path[-1]]
        if last.subject_id != proof.subject_id:
            raise VerificationError(
                Reason.WRONG_SUBJECT,
                f"proof {pid}: path {p} ends at {format_id(last.subject_id)}, not at the subject "
                f"{format_id(proof.subject_id)}",
            )


def _check_windows(proof: Proof, attestations: list[Attestation], entities: _Entities, now: float, skew_s: float,
                   revoked: Container[bytes]) -> tuple[frozenset[bytes], int, int]:
    """Step 6: validity and revocation of everything used; returns (depends, expiry, latest start)."""
    used: list[Entity] = [entities.resolve(proof.namespace_id, "namespace")]
    for att in attestations:
        used.append(entities.resolve(att.attester_id, "attester"))
        used.append(entities.resolve(att.subject_id, "subject"))
    depends: set[bytes] = set()
    expiry = 1 << 64
    latest_start = 0
    for entity in used:
        what = f"entity {format_id(entity.id)}"
        _check_validity(what, entity.not_before, entity.not_after, now, skew_s)
        if entity.revocation_commitment in revoked:
            raise VerificationError(Reason.REVOKED, f"{what} has been revoked")
        depends.add(entity.revocation_commitment)
        depends.add(entity.id)
        expiry = min(expiry, entity.not_after)
        latest_start = max(latest_start, entity.not_before)
    for att in attestations:
        what = f"attestation {format_id(att.id)}"
        _check_validity(what, att.not_before, att.not_after, now, skew_s)
        if att.revocation_commitment in revoked:
            raise VerificationError(Reason.REVOKED, f"{what} has been revoked")
        depends.add(att.revocation_commitment)
        expiry = min(expiry, att.not_after)
        latest_start = max(latest_start, att.not_before)
    return frozenset(depends), expiry, latest_start


def _fold_paths(proof: Proof, pid: str, attestations: list[Attestation]) -> tuple[list[tuple[Statement, ...]], int]:
    """Step 7: fold each path (narrowing, TTL); returns the policies and the remaining indirections."""
    policies: list[tuple[Statement, ...]] = []
    indirections = 255
    for p, path in enumerate(proof.paths):
        policy = attestations[path[0]].statements
        ttl = attestations[path[0]].ttl
        for k in range(1, len(path)):
            att = attestations[path[k]]
            ttl = min(ttl - 1, att.ttl)
            if ttl < 0:
                raise VerificationError(
                    Reason.TTL_EXCEEDED,
                    f"proof {pid}: path {p} link {k}: re-delegation beyond the TTL of an earlier grant",
                )
            policy = fold(policy, att.statements)
        policies.append(policy)
        indirections = min(indirections, ttl)
    return policies, indirections


def verify_proof(
    data: bytes | Proof,
    *,
    now: float,
    skew_s: float = DEFAULT_SKEW_S,
    revoked: Container[bytes] = frozenset(),
    lookup: EntityLookup | None = None,
) -> ProofResult:
    """Verify every signature, link, validity window, revocation and TTL; see the module docstring."""
    proof = data if isinstance(data, Proof) else Proof.from_bytes(data)
    pid = format_id(proof.id)
    _check_paths(proof, pid)
    entities = _Entities(proof, pid, lookup)
    attestations = _attestations(proof, pid, entities)
    _check_chains(proof, pid, attestations)
    depends, expiry, latest_start = _check_windows(proof, attestations, entities, now, skew_s, revoked)
    policies, indirections = _fold_paths(proof, pid, attestations)
    return ProofResult(
        proof_id=proof.id,
        subject=proof.subject_id,
        namespace=proof.namespace_id,
        statements=union(policies),
        expiry=expiry,
        not_before=latest_start,
        depends=depends,
        indirections=indirections,
    )
