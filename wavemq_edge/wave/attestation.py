"""Attestations (grants): the attester grants the subject some statements on a namespace.

TBS (reference §7.3): ``{1: attester_id, 2: subject_id, 3: namespace_id, 4: not_before, 5: not_after,
6: ttl, 7: statements, 8: revocation_commitment, 9: revocation_location?, 10: addendum_digest?,
11: nonce(16)}``, signed by the attester under ``DOMAIN("attestation")``.

Unlike WAVE 3 there is no ephemeral outer key and no encrypted body: the attester is visible to whoever
holds the file (accepted privacy loss, reference §7.3), and verifiers need no decryption keys.
``ttl`` is WAVE's ``indirections``: how many further links may follow this one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .canonical import CborValue
from .entity import Entity, EntitySecret
from .envelope import ObjectType, Opened, open_envelope, seal_envelope, verify_signature
from .errors import GrantError, Reason, VerificationError
from .fields import check_keys, get_bytes, get_list, get_optional_bytes, get_optional_text, get_uint
from .ids import ID_BYTES, format_id, object_id
from .policy import MAX_GRANT_STATEMENTS, Statement, statement_from_cbor, validate_grant
from .revocation import Revocation, commitment_of, revocation_preimage

__all__ = [
    "MAX_ATTESTATION_BYTES",
    "MAX_GRANT_RANGE_S",
    "MAX_TTL",
    "Attestation",
    "create_attestation",
    "revoke_attestation",
]

#: An attestation with 10 statements of 256-byte resources stays under 4 KiB.
MAX_ATTESTATION_BYTES: Final = 4096
#: WAVE refuses validity ranges over about 3 years.
MAX_GRANT_RANGE_S: Final = 3 * 366 * 86400
MAX_TTL: Final = 255
_WHAT: Final = "attestation"


@dataclass(frozen=True, slots=True)
class Attestation:
    attester_id: bytes
    subject_id: bytes
    namespace_id: bytes
    not_before: int
    not_after: int
    ttl: int
    statements: tuple[Statement, ...]
    revocation_commitment: bytes
    revocation_location: str | None
    addendum_digest: bytes | None
    nonce: bytes
    raw: bytes
    id: bytes
    opened: Opened

    @classmethod
    def parse(cls, data: bytes) -> Attestation:
        """Decode without checking the signature (the attester may not be known yet): see :meth:`verify`."""
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.ATTESTATION, MAX_ATTESTATION_BYTES)
        tbs = opened.tbs
        check_keys(tbs, range(1, 12), _WHAT)
        not_before = get_uint(tbs, 4, "not_before", _WHAT)
        not_after = get_uint(tbs, 5, "not_after", _WHAT)
        if not_after <= not_before:
            raise VerificationError(Reason.MALFORMED, "attestation: not_after is not after not_before")
        raw_statements = get_list(tbs, 7, "statements", _WHAT, MAX_GRANT_STATEMENTS)
        if not raw_statements:
            raise VerificationError(Reason.MALFORMED, "attestation: no statements")
        return cls(
            attester_id=get_bytes(tbs, 1, "attester_id", _WHAT, ID_BYTES),
            subject_id=get_bytes(tbs, 2, "subject_id", _WHAT, ID_BYTES),
            namespace_id=get_bytes(tbs, 3, "namespace_id", _WHAT, ID_BYTES),
            not_before=not_before,
            not_after=not_after,
            ttl=get_uint(tbs, 6, "ttl", _WHAT, MAX_TTL),
            statements=tuple(statement_from_cbor(s, _WHAT) for s in raw_statements),
            revocation_commitment=get_bytes(tbs, 8, "revocation_commitment", _WHAT, 32),
            revocation_location=get_optional_text(tbs, 9, "revocation_location", _WHAT, 128),
            addendum_digest=get_optional_bytes(tbs, 10, "addendum_digest", _WHAT, 32),
            nonce=get_bytes(tbs, 11, "nonce", _WHAT, 16),
            raw=raw,
            id=object_id(raw),
            opened=opened,
        )

    def verify(self, attester: Entity) -> None:
        """Check that ``attester`` is the named attester and signed this attestation."""
        if attester.id != self.attester_id:
            raise VerificationError(
                Reason.ID_MISMATCH,
                f"attestation {format_id(self.id)}: names attester {format_id(self.attester_id)}, "
                f"given {format_id(attester.id)}",
            )
        verify_signature(attester.verify_key, self.opened, f"attester {format_id(self.attester_id)}")

    @classmethod
    def from_bytes(cls, data: bytes, attester: Entity) -> Attestation:
        att = cls.parse(data)
        att.verify(attester)
        return att

    def to_bytes(self) -> bytes:
        return self.raw

    def is_valid_at(self, now: float, skew_s: float = 0.0) -> bool:
        return self.not_before - skew_s <= now < self.not_after


def create_attestation(
    attester: EntitySecret,
    subject: Entity,
    namespace_id: bytes,
    statements: Sequence[Statement],
    *,
    now: float,
    expiry_s: int,
    ttl: int = 0,
    revocation_location: str | None = None,
) -> Attestation:
    """Sign a grant valid from ``now`` for ``expiry_s``, clamped to both entities' validity."""
    validate_grant(statements)
    if not 0 <= ttl <= MAX_TTL:
        raise GrantError(f"ttl {ttl} is outside 0..{MAX_TTL}")
    if len(namespace_id) != ID_BYTES:
        raise GrantError("the namespace must be a WAVE-lite entity (a WAVE 3 hash cannot be granted on)")
    not_before = int(now)
    requested = not_before + int(expiry_s)
    not_after = min(requested, attester.entity.not_after, subject.not_after)
    if not_after - not_before > MAX_GRANT_RANGE_S:
        raise GrantError(f"validity of {not_after - not_before} s exceeds the 3-year maximum")
    if not_after <= not_before:
        raise GrantError("the attester or the subject has already expired: the grant would never be valid")
    nonce = os.urandom(16)
    tbs: dict[int, CborValue] = {
        1: attester.entity.id,
        2: subject.id,
        3: namespace_id,
        4: not_before,
        5: not_after,
        6: ttl,
        7: [s.to_cbor() for s in statements],
        8: commitment_of(revocation_preimage(attester.revocation_seed, nonce)),
        11: nonce,
    }
    if revocation_location is not None:
        tbs[9] = revocation_location
    raw = seal_envelope(ObjectType.ATTESTATION, tbs, attester.signing_key)
    return Attestation.from_bytes(raw, attester.entity)


def revoke_attestation(attester: EntitySecret, attestation: Attestation) -> Revocation:
    """The revocation for ``attestation``; only its attester's secret can produce it."""
    if attestation.attester_id != attester.entity.id:
        raise GrantError("only the attester can revoke an attestation")
    return Revocation.from_preimage(revocation_preimage(attester.revocation_seed, attestation.nonce))
