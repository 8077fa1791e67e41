"""The envelope every WAVE-lite object travels in, domain-separated signing, and typed field access.

Envelope (reference §7.1): ``[type: uint, version: 1, tbs: map, sig: bstr(64)]``; proofs and revocations
carry no signature and are ``[type, 1, tbs]``. A signature is always Ed25519 over
``DOMAIN(kind) || canonical_cbor(tbs)`` with ``DOMAIN(kind) = b"WAVELITE\\x00v1\\x00" + kind + b"\\x00"``,
so a signature made for one purpose (say a subscribe) can never verify as another (a message), even if
the two TBS maps happened to encode to the same bytes.

Because the decoder is strict, the TBS bytes inside an accepted envelope are exactly
``canonical_cbor(tbs)``; :func:`open_envelope` slices them out instead of re-encoding (cheaper on the hot
path, and by construction the same bytes).
"""

from __future__ import annotations

import enum
from typing import Final, NamedTuple

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from .canonical import CborValue, decode, encode
from .errors import Reason, VerificationError

__all__ = [
    "ENVELOPE_VERSION",
    "SIGNATURE_BYTES",
    "ObjectType",
    "Opened",
    "domain",
    "open_envelope",
    "seal_envelope",
    "verify_signature",
]

ENVELOPE_VERSION: Final = 1
SIGNATURE_BYTES: Final = 64
_DOMAIN_PREFIX: Final = b"WAVELITE\x00v1\x00"


class ObjectType(enum.IntEnum):
    """Envelope type numbers (reference §7.1) and the signature domain of each."""

    ENTITY = 1
    ATTESTATION = 2
    PROOF = 3
    ENTITY_SECRET = 4
    REVOCATION = 5
    NAME = 6
    MESSAGE = 10
    SUBSCRIBE = 11
    QUERY = 12
    UNSUBSCRIBE = 13
    E2EE_ANNOUNCE = 14
    HANDSHAKE = 15

    @property
    def kind(self) -> str:
        return self.name.lower().replace("_", "-")


_UNSIGNED: Final = frozenset({ObjectType.PROOF, ObjectType.REVOCATION, ObjectType.ENTITY_SECRET})
_DOMAINS: Final = {t: _DOMAIN_PREFIX + t.kind.encode("ascii") + b"\x00" for t in ObjectType}


def domain(kind: ObjectType) -> bytes:
    return _DOMAINS[kind]


class Opened(NamedTuple):
    """A decoded envelope: its type, TBS map, the exact TBS bytes that were signed, and the signature.
    A NamedTuple: one is built per message, in half the time of a frozen dataclass."""

    type: ObjectType
    tbs: dict[int, CborValue]
    tbs_bytes: bytes
    signature: bytes


def seal_envelope(kind: ObjectType, tbs: dict[int, CborValue], key: SigningKey | None) -> bytes:
    """Encode ``tbs`` in an envelope of ``kind``, signed with ``key`` unless the kind is unsigned."""
    tbs_bytes = encode(tbs)
    if kind in _UNSIGNED:
        return _unsigned(kind, tbs_bytes)
    if key is None:
        raise ValueError(f"{kind.kind} objects are signed; a signing key is required")
    signature = key.sign(_DOMAINS[kind] + tbs_bytes).signature
    # [type, 1, tbs, sig]: 0x84, type (< 24: one byte), 0x01, tbs, 0x58 0x40 sig
    return bytes((0x84, int(kind), ENVELOPE_VERSION)) + tbs_bytes + b"\x58\x40" + signature


def _unsigned(kind: ObjectType, tbs_bytes: bytes) -> bytes:
    return bytes((0x83, int(kind), ENVELOPE_VERSION)) + tbs_bytes


def open_envelope(data: bytes, expected: ObjectType, max_bytes: int) -> Opened:
    """Strictly decode an envelope of the ``expected`` type; refuse other kinds, versions and shapes.

    Type and version must be integers, not merely equal to one: ``true == 1`` in Python, and accepting
    ``0xf5`` where ``0x01`` belongs would give one signed object two encodings, hence two IDs. Error
    texts are built only on a refusal (this runs on every message)."""
    if len(data) > max_bytes:
        raise VerificationError(
            Reason.OVERSIZE, f"{expected.kind} of {len(data)} bytes exceeds the bound of {max_bytes}"
        )
    value = decode(data)
    signed = expected not in _UNSIGNED
    if type(value) is not list or len(value) != (4 if signed else 3):
        raise VerificationError(
            Reason.MALFORMED, f"{expected.kind}: envelope is not a {4 if signed else 3}-element array"
        )
    type_number, version, tbs = value[0], value[1], value[2]
    if type(type_number) is not int or type_number != expected:
        raise VerificationError(Reason.WRONG_KIND, f"expected a {expected.kind}, got a {_kind_of(type_number)}")
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise VerificationError(Reason.MALFORMED, f"{expected.kind}: unsupported envelope version {version!r}")
    if type(tbs) is not dict:
        raise VerificationError(Reason.MALFORMED, f"{expected.kind}: to-be-signed part is not a map")
    if signed:
        signature = value[3]
        if type(signature) is not bytes or len(signature) != SIGNATURE_BYTES:
            raise VerificationError(Reason.MALFORMED, f"{expected.kind}: signature is not {SIGNATURE_BYTES} bytes")
        # The decoder is strict, so type and version took one byte each and the signature's head two.
        tbs_bytes = data[3 : len(data) - 2 - SIGNATURE_BYTES]
    else:
        signature = b""
        tbs_bytes = data[3:]
    return Opened(expected, tbs, bytes(tbs_bytes), signature)


def _kind_of(type_number: object) -> str:
    if type(type_number) is not int:
        return repr(type_number)
    try:
        return ObjectType(type_number).kind
    except ValueError:
        return f"unknown type {type_number!r}"


def verify_signature(key: VerifyKey, opened: Opened, signer: str) -> None:
    """Check ``opened.signature`` over ``DOMAIN(kind) || tbs`` under ``key``; ``signer`` names it in errors."""
    try:
        key.verify(_DOMAINS[opened.type] + opened.tbs_bytes, opened.signature)
    except BadSignatureError:
        raise VerificationError(
            Reason.BAD_SIGNATURE, f"{opened.type.kind}: signature does not verify under {signer}'s key"
        ) from None
