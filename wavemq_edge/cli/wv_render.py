"""``wv``'s output: the text blocks of ``inspect`` and ``verify``, in WAVE's ``wv`` layout.

Times are printed like Go's ``time.String()`` in the local zone, booleans as ``true``/``false``, so the
output reads like WAVE's own ``wv inspect``.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Sequence

from ..uri import format_pattern
from ..wave import (
    DEFAULT_SKEW_S,
    Attestation,
    Entity,
    Proof,
    ProofResult,
    Statement,
    VerificationError,
    WaveStore,
    format_id,
)
from ..wave.policy import BUILTIN_PSETS

__all__ = ["attestation_block", "entity_block", "fmt_time", "print_lines", "proof_block", "statement_lines"]


def fmt_time(t: float) -> str:
    """Go ``time.String()`` style in the local zone: ``2018-09-20 15:24:54 -0700 PDT``."""
    return datetime.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def _bool(v: bool) -> str:
    return "true" if v else "false"


def entity_block(entity: Entity, revoked: bool, now: float) -> list[str]:
    expired = now >= entity.not_after
    early = now < entity.not_before - DEFAULT_SKEW_S
    message = "entity has expired" if expired else "entity is revoked" if revoked else ""
    if early:
        message = "entity is not yet valid"
    return [
        "= Entity",
        f"      Hash: {entity.printable_id}",
        f"   Created: {fmt_time(entity.not_before)}",
        f"   Expires: {fmt_time(entity.not_after)}",
        "  Validity:",
        f"   - Valid: {_bool(not (expired or revoked or early))}",
        f"   - Expired: {_bool(expired)}",
        "   - Malformed: false",
        f"   - Revoked: {_bool(revoked)}",
        f"   - Message: {message}",
    ]


def statement_lines(statements: Sequence[Statement]) -> list[str]:
    names = {v: k for k, v in BUILTIN_PSETS.items()}
    lines = [" Statements:"]
    for i, s in enumerate(statements):
        pset = format_id(s.pset) + (f" ({names[s.pset]})" if s.pset in names else "")
        lines += [
            f" [{i:02d}] Permission set: {pset}",
            f"      Permissions: {', '.join(sorted(s.permissions))}",
            f"      URI: {format_pattern(s.resource)}",
        ]
    return lines


def attestation_block(store: WaveStore, att: Attestation, name: str, now: float) -> list[str]:
    attester = store.get_entity(att.attester_id)
    subject = store.get_entity(att.subject_id)
    revoked = store.is_revoked(att.revocation_commitment)
    message = ""
    malformed = False
    if attester is None:
        message = "attester is not known: signature not checked"
    else:
        try:
            att.verify(attester)
        except VerificationError as exc:
            malformed, message = True, str(exc)
    attester_ok = attester is not None and attester.is_valid_at(now) and not store.is_revoked(
        attester.revocation_commitment
    )
    subject_ok = subject is not None and subject.is_valid_at(now) and not store.is_revoked(
        subject.revocation_commitment
    )
    expired = now >= att.not_after
    valid = attester is not None and not (malformed or revoked or expired) and attester_ok and subject_ok
    return [
        f'= Attestation "{name}"',
        f"  Hash : {format_id(att.id)}",
        f"Created: {fmt_time(att.not_before)}",
        f"Expires: {fmt_time(att.not_after)}",
        "  Validity:",
        "   - Readable: true",
        f"   - Revoked: {_bool(revoked)}",
        f"   - Malformed: {_bool(malformed)}",
        f"   - Subject invalid: {_bool(not subject_ok)}",
        f"   - Valid: {_bool(valid)}",
        f"   - Expired: {_bool(expired)}",
        f"   - Attester invalid: {_bool(not attester_ok)}",
        *([f"   - Message: {message}"] if message else []),
        f"  Attester: {format_id(att.attester_id)}",
        f"  Subject: {format_id(att.subject_id)}",
        f"  Namespace: {format_id(att.namespace_id)}",
        f"  Indirections: {att.ttl}",
        *(" " + line for line in statement_lines(att.statements)),
    ]


def proof_block(proof: Proof, result: ProofResult | None) -> list[str]:
    lines = ["Referenced attestations:"]
    for i, raw in enumerate(proof.attestations):
        lines.append(f" [{i:02d}] Hash: {format_id(Attestation.parse(raw).id)}")
    lines.append("Paths:")
    for i, path in enumerate(proof.paths):
        lines.append(f" [{i:02d}] " + " ".join(f"{k:02d}" for k in path))
    lines += [f"Subject: {format_id(proof.subject_id)}", "SubjectLoc: default"]
    if result is not None:
        lines += [
            f"Expires: {fmt_time(result.expiry)}",
            "Policy: RTree",
            f" Namespace: {format_id(result.namespace)}",
            f" Indirections: {result.indirections}",
            *statement_lines(result.statements),
        ]
    return lines


def print_lines(lines: Sequence[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
