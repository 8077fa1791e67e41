"""Object IDs: BLAKE2b-256 multihashes and their printable 48-character form.

An ID is the hash of an object's complete canonical envelope (signature included), as in WAVE, so an ID
names exactly one byte string and a lookup by ID cannot be answered with substituted bytes (callers
re-hash what a store or peer returns: :func:`check_id`).

Binary form: multihash ``a0 e4 02 20 || BLAKE2b-256(bytes)`` (varint code 0xb220, length 32) = 36 bytes.
Printable form: URL-safe base64 without padding = exactly 48 characters, always starting ``oOQC``. This
keeps WAVE's CLI rule "48 characters and no dot means a hash" and can never be mistaken for a WAVE 3 hash,
which is a 34-byte Keccak (``0x1b``) or SHA3 (``0x16``) multihash printed *with* padding (``Gy...==``).
WAVE 3 hashes parse (so a WAVEMQ config naming the XBOS namespace loads) but no WAVE-lite object has one:
lookups report them as unknown (reference §7.9).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from .errors import InputError, Reason, VerificationError

__all__ = [
    "ID_BYTES",
    "ID_PREFIX",
    "PRINTABLE_ID_CHARS",
    "check_id",
    "format_id",
    "is_wave3_id",
    "looks_like_id",
    "object_id",
    "parse_id",
]

ID_PREFIX: Final = b"\xa0\xe4\x02\x20"
ID_BYTES: Final = 36
PRINTABLE_ID_CHARS: Final = 48
#: WAVE 3 multihash prefixes: Keccak-256 (0x1b) and SHA3-256 (0x16), 32-byte digests.
_WAVE3_PREFIXES: Final = (b"\x1b\x20", b"\x16\x20")
_WAVE3_ID_BYTES: Final = 34


def object_id(data: bytes) -> bytes:
    """The 36-byte ID of an object's canonical bytes."""
    return ID_PREFIX + hashlib.blake2b(data, digest_size=32).digest()


def check_id(expected: bytes, data: bytes, what: str) -> None:
    """Refuse ``data`` handed out as the object ``expected`` if it hashes to another ID."""
    actual = object_id(data)
    if actual != expected:
        raise VerificationError(
            Reason.ID_MISMATCH, f"{what}: bytes hash to {format_id(actual)}, not the referenced {format_id(expected)}"
        )


def format_id(id_bytes: bytes) -> str:
    """Printable form: 48 characters (WAVE-lite IDs unpadded, WAVE 3 hashes with their ``==``)."""
    text = base64.urlsafe_b64encode(id_bytes).decode("ascii")
    return text if len(id_bytes) == _WAVE3_ID_BYTES else text.rstrip("=")


def is_wave3_id(id_bytes: bytes) -> bool:
    return len(id_bytes) == _WAVE3_ID_BYTES


def looks_like_id(text: str) -> bool:
    """WAVE's CLI rule: 48 characters with no ``.`` is a hash, not a file or a name."""
    return len(text) == PRINTABLE_ID_CHARS and "." not in text


def parse_id(text: str) -> bytes:
    """Parse a printable ID (WAVE-lite, or WAVE 3 for syntax only); the error names what is wrong."""
    if len(text) != PRINTABLE_ID_CHARS:
        raise InputError(f"hash {text!r} has {len(text)} characters; a printable hash has {PRINTABLE_ID_CHARS}")
    padded = text if text.endswith("=") else text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InputError(f"hash {text!r} is not URL-safe base64") from None
    if base64.urlsafe_b64encode(raw).decode("ascii") != padded:
        raise InputError(f"hash {text!r} is not URL-safe base64 in canonical form")
    if len(raw) == ID_BYTES and raw.startswith(ID_PREFIX):
        return raw
    if len(raw) == _WAVE3_ID_BYTES and raw[:2] in _WAVE3_PREFIXES:
        return raw
    raise InputError(
        f"hash {text!r} is not a BLAKE2b-256 multihash (oOQC...) nor a WAVE 3 Keccak/SHA3 multihash (Gy...==)"
    )
