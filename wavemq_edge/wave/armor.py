"""PEM-style armor (RFC 7468) for WAVE-lite files.

One block per file: ``-----BEGIN <LABEL>-----``, base64 in 64-column lines, ``-----END <LABEL>-----``.
Loaders also accept raw canonical CBOR (the envelope type says what it is). A WAVE 3 file (label
``WAVE ...``, ASN.1 inside) is recognised and refused with a message that says so, rather than a
confusing parse error.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from .errors import ArmorError

__all__ = [
    "LABEL_ATTESTATION",
    "LABEL_ENTITY",
    "LABEL_ENTITY_SECRET",
    "LABEL_PROOF",
    "LABEL_REVOCATION",
    "MAX_ARMORED_BYTES",
    "armor",
    "dearmor",
    "is_armored",
]

LABEL_ENTITY_SECRET: Final = "WAVELITE ENTITY SECRET"
LABEL_ENTITY: Final = "WAVELITE ENTITY"
LABEL_ATTESTATION: Final = "WAVELITE ATTESTATION"
LABEL_PROOF: Final = "WAVELITE EXPLICIT PROOF"
LABEL_REVOCATION: Final = "WAVELITE REVOCATION"
_LABELS: Final = frozenset({LABEL_ENTITY_SECRET, LABEL_ENTITY, LABEL_ATTESTATION, LABEL_PROOF, LABEL_REVOCATION})
_WAVE3_LABELS: Final = frozenset({"WAVE ENTITY SECRET", "WAVE ENTITY", "WAVE ATTESTATION", "WAVE EXPLICIT PROOF"})

#: Largest armored file we read (proofs are bounded at 64 KiB; base64 adds a third).
MAX_ARMORED_BYTES: Final = 128 * 1024
_COLUMNS: Final = 64


def armor(label: str, data: bytes) -> str:
    if label not in _LABELS:
        raise ArmorError(f"unknown armor label {label!r}")
    text = base64.b64encode(data).decode("ascii")
    lines = [text[i : i + _COLUMNS] for i in range(0, len(text), _COLUMNS)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def is_armored(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def dearmor(data: bytes, source: str = "input") -> tuple[str, bytes]:
    """(label, payload) of the single block in ``data``; errors name ``source`` and the line."""
    if len(data) > MAX_ARMORED_BYTES:
        raise ArmorError(f"{source}: {len(data)} bytes exceeds MAX_ARMORED_BYTES={MAX_ARMORED_BYTES}")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ArmorError(f"{source}: non-ASCII byte at offset {exc.start} in an armored file") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and lines[-1] == "":
        lines.pop()
    first = 0
    while first < len(lines) and lines[first] == "":
        first += 1
    if first >= len(lines) or not (lines[first].startswith("-----BEGIN ") and lines[first].endswith("-----")):
        raise ArmorError(f"{source}: line {first + 1}: expected '-----BEGIN <LABEL>-----'")
    label = lines[first][len("-----BEGIN ") : -len("-----")]
    if label in _WAVE3_LABELS:
        raise ArmorError(f"{source}: this is a WAVE 3 (ASN.1) {label[5:].lower()} file, not supported by WAVE-lite")
    if label not in _LABELS:
        raise ArmorError(f"{source}: line {first + 1}: unknown label {label!r}")
    end_line = f"-----END {label}-----"
    try:
        last = lines.index(end_line, first + 1)
    except ValueError:
        raise ArmorError(f"{source}: no {end_line!r} line") from None
    if last != len(lines) - 1:
        raise ArmorError(f"{source}: line {last + 2}: text after {end_line!r} (one block per file)")
    body = "".join(lines[first + 1 : last])
    try:
        payload = base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise ArmorError(f"{source}: the base64 between lines {first + 2} and {last} is invalid") from None
    if not payload:
        raise ArmorError(f"{source}: empty {label} block")
    return label, payload
