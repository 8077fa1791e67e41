"""Self-authenticating revocation (reference §7.5).

Every entity and attestation commits, inside its signed TBS, to ``C = H(r)`` where the preimage
``r = BLAKE2b-256(key=revocation_seed, data=b"wl-rvk" || object_nonce)`` is derivable only from the
secret file of its creator (the entity itself, or the attester). Revoking = publishing ``r`` as the
object ``[5, 1, {1: r}]``. Anyone checks ``H(r) == C``: no signature is needed, nobody but the key holder
can produce it, and a store or router can withhold it but not forge it. Verifiers therefore keep a *set
of revealed commitments*; "is X revoked" is a set lookup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from .envelope import ObjectType, open_envelope, seal_envelope
from .fields import check_keys, get_bytes
from .ids import object_id

__all__ = [
    "MAX_REVOCATION_BYTES",
    "Revocation",
    "commitment_of",
    "revocation_preimage",
]

_PREIMAGE_TAG: Final = b"wl-rvk"
_COMMIT_PERSON: Final = b"wl-rvk-commit"
#: A revocation is 3 bytes of envelope + a 36-byte map; 128 bytes bounds it with room.
MAX_REVOCATION_BYTES: Final = 128


def revocation_preimage(revocation_seed: bytes, object_nonce: bytes) -> bytes:
    return hashlib.blake2b(_PREIMAGE_TAG + object_nonce, digest_size=32, key=revocation_seed).digest()


def commitment_of(preimage: bytes) -> bytes:
    return hashlib.blake2b(preimage, digest_size=32, person=_COMMIT_PERSON).digest()


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revealed preimage; ``commitment`` is what entities/attestations carry."""

    preimage: bytes
    commitment: bytes
    raw: bytes
    id: bytes

    @classmethod
    def from_preimage(cls, preimage: bytes) -> Revocation:
        raw = seal_envelope(ObjectType.REVOCATION, {1: preimage}, None)
        return cls(preimage, commitment_of(preimage), raw, object_id(raw))

    @classmethod
    def from_bytes(cls, data: bytes) -> Revocation:
        opened = open_envelope(data, ObjectType.REVOCATION, MAX_REVOCATION_BYTES)
        check_keys(opened.tbs, (1,), "revocation")
        preimage = get_bytes(opened.tbs, 1, "preimage", "revocation", 32)
        return cls(preimage, commitment_of(preimage), bytes(data), object_id(data))

    def to_bytes(self) -> bytes:
        return self.raw
