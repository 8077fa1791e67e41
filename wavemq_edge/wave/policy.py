"""Statements and RTree policy algebra: what a grant says, how a chain narrows it, and coverage.

A statement is ``(permission set ID, permissions, resource pattern)``. Folding a chain uses WAVE's
``Intersect`` (reference §3 step 3): statements pair up only within the same permission set, their
permissions intersect (an empty intersection drops the pair) and their resources intersect with
``RestrictBy`` semantics (:func:`wavemq_edge.uri.intersect`), so every link can only narrow. A required
statement is covered when *one* granted statement has the same set, a superset of the permissions and a
resource that covers it (``IsSubsetOf``).

Permission sets are entities in WAVE; the builtin ones (``wave``, ``wavemq``, ``jedi``) are IDs of fixed
strings, so a statement for ``wavemq:publish`` can never be satisfied by some other set that happens to
also call a permission ``publish``.

Text form (the ``wv`` statement grammar, reference §5): ``pset:perm[,perm...]@namespace/resource``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..uri import Pattern, UriError, covers, format_pattern, intersect, parse_pattern
from .canonical import CborValue
from .errors import GrantError, InputError, Reason, VerificationError
from .ids import object_id

__all__ = [
    "BUILTIN_PSETS",
    "MAX_COMBINED_STATEMENTS",
    "MAX_GRANT_COMBINATIONS",
    "MAX_GRANT_STATEMENTS",
    "PSET_WAVE",
    "PSET_WAVEMQ",
    "Statement",
    "StatementText",
    "builtin_pset_id",
    "covered",
    "fold",
    "parse_statement_text",
    "statement_from_cbor",
    "union",
    "validate_grant",
]

#: WAVE's creation limits (``checkPolicyForSpecialCases``): statements per grant, perm x resource pairs.
MAX_GRANT_STATEMENTS: Final = 10
MAX_GRANT_COMBINATIONS: Final = 64
#: WAVE refuses a folded policy of more than 1000 statements; it bounds the work one proof can cause.
MAX_COMBINED_STATEMENTS: Final = 1000
#: A resource in a proof is bounded more tightly than a published URI (reference §7.4).
MAX_RESOURCE_BYTES: Final = 256
MAX_RESOURCE_CELLS: Final = 16
#: ``wave:decrypt`` resources: at most 11 cells (WAVE's partition width).
MAX_DECRYPT_CELLS: Final = 11
MAX_PERMISSIONS: Final = 16

_PERMISSION_RE: Final = re.compile(r"[a-z0-9_-]{1,32}")


def builtin_pset_id(name: str) -> bytes:
    return object_id(b"wavelite builtin pset: " + name.encode("ascii"))


PSET_WAVE: Final = builtin_pset_id("wave")
PSET_WAVEMQ: Final = builtin_pset_id("wavemq")
PSET_JEDI: Final = builtin_pset_id("jedi")
BUILTIN_PSETS: Final = {"wave": PSET_WAVE, "wavemq": PSET_WAVEMQ, "jedi": PSET_JEDI}
_BUILTIN_NAMES: Final = {v: k for k, v in BUILTIN_PSETS.items()}


@dataclass(frozen=True, slots=True)
class Statement:
    pset: bytes
    permissions: frozenset[str]
    resource: Pattern

    def to_cbor(self) -> list[CborValue]:
        perms: list[CborValue] = [*sorted(self.permissions)]
        return [self.pset, perms, format_pattern(self.resource)]

    def describe(self) -> str:
        pset = _BUILTIN_NAMES.get(self.pset)
        if pset is None:
            from .ids import format_id

            pset = format_id(self.pset)
        return f"{pset}:{','.join(sorted(self.permissions))}@{format_pattern(self.resource)}"


def statement_from_cbor(value: CborValue, what: str) -> Statement:
    """Parse ``[pset, [perm...], resource]`` as found in a signed attestation."""
    if not isinstance(value, list) or len(value) != 3:
        raise VerificationError(Reason.MALFORMED, f"{what}: statement is not [pset, perms, resource]")
    pset, perms, resource = value
    if not isinstance(pset, bytes) or len(pset) != 36:
        raise VerificationError(Reason.MALFORMED, f"{what}: statement permission set is not a 36-byte ID")
    if not isinstance(perms, list) or not perms or len(perms) > MAX_PERMISSIONS:
        raise VerificationError(Reason.MALFORMED, f"{what}: statement permissions are not 1..{MAX_PERMISSIONS} items")
    names: list[str] = []
    for perm in perms:
        if not isinstance(perm, str) or not _PERMISSION_RE.fullmatch(perm):
            raise VerificationError(Reason.MALFORMED, f"{what}: permission {perm!r} is not [a-z0-9_-]{{1,32}}")
        names.append(perm)
    if names != sorted(set(names)):
        raise VerificationError(Reason.NON_CANONICAL, f"{what}: permissions are not sorted and unique")
    if not isinstance(resource, str):
        raise VerificationError(Reason.MALFORMED, f"{what}: statement resource is not text")
    return Statement(pset, frozenset(names), _resource(resource, what))


def _resource(text: str, what: str) -> Pattern:
    if len(text.encode("utf-8")) > MAX_RESOURCE_BYTES:
        raise VerificationError(Reason.OVERSIZE, f"{what}: resource longer than {MAX_RESOURCE_BYTES} bytes")
    try:
        pattern = parse_pattern(text)
    except UriError as exc:
        raise VerificationError(Reason.MALFORMED, f"{what}: {exc}") from None
    if len(pattern) > MAX_RESOURCE_CELLS:
        raise VerificationError(Reason.OVERSIZE, f"{what}: resource has more than {MAX_RESOURCE_CELLS} cells")
    return pattern


def _intersect_pair(a: Statement, b: Statement) -> Statement | None:
    if a.pset != b.pset:
        return None
    perms = a.permissions & b.permissions
    if not perms:
        return None
    resource = intersect(a.resource, b.resource)
    if resource is None:
        return None
    return Statement(a.pset, perms, resource)


def _is_covered_by(required: Statement, granted: Statement) -> bool:
    return (
        required.pset == granted.pset
        and required.permissions <= granted.permissions
        and covers(granted.resource, required.resource)
    )


def _without_redundant(statements: list[Statement]) -> tuple[Statement, ...]:
    out: list[Statement] = []
    for i, s in enumerate(statements):
        redundant = False
        for j, other in enumerate(statements):
            if i != j and _is_covered_by(s, other) and (s != other or j < i):
                redundant = True
                break
        if not redundant:
            out.append(s)
    return tuple(out)


def fold(current: Sequence[Statement], nxt: Sequence[Statement]) -> tuple[Statement, ...]:
    """WAVE ``Intersect``: the statements granted by both; empty when nothing survives."""
    if len(current) * len(nxt) > MAX_COMBINED_STATEMENTS:
        raise VerificationError(
            Reason.OVERSIZE, f"policy intersection of {len(current)}x{len(nxt)} exceeds {MAX_COMBINED_STATEMENTS}"
        )
    pairs = [s for a in current for b in nxt if (s := _intersect_pair(a, b)) is not None]
    return _without_redundant(pairs)


def union(policies: Sequence[Sequence[Statement]]) -> tuple[Statement, ...]:
    merged = [s for p in policies for s in p]
    if len(merged) > MAX_COMBINED_STATEMENTS:
        raise VerificationError(Reason.OVERSIZE, f"union of paths exceeds {MAX_COMBINED_STATEMENTS} statements")
    return _without_redundant(merged)


def covered(required: Statement, granted: Sequence[Statement]) -> bool:
    """``IsSubsetOf`` for one required statement."""
    return any(_is_covered_by(required, g) for g in granted)


def validate_grant(statements: Sequence[Statement]) -> None:
    """Creation rules of reference §7.3 (WAVE ``CheckValid`` + ``checkPolicyForSpecialCases``)."""
    if not statements:
        raise GrantError("a grant needs at least one statement")
    if len(statements) > MAX_GRANT_STATEMENTS:
        raise GrantError(f"{len(statements)} statements exceed MAX_GRANT_STATEMENTS={MAX_GRANT_STATEMENTS}")
    combinations = sum(len(s.permissions) for s in statements)
    if combinations > MAX_GRANT_COMBINATIONS:
        raise GrantError(f"{combinations} permission:resource pairs exceed {MAX_GRANT_COMBINATIONS}")
    for s in statements:
        if len(s.resource) > MAX_RESOURCE_CELLS:
            raise GrantError(f"resource {format_pattern(s.resource)!r} has more than {MAX_RESOURCE_CELLS} cells")
        if s.pset == PSET_WAVE and "decrypt" in s.permissions:
            if len(statements) != 1 or s.permissions != frozenset({"decrypt"}):
                raise GrantError("a wave:decrypt grant must be a single statement with the single permission decrypt")
            if "+" in s.resource or ("*" in s.resource and s.resource[-1] != "*"):
                raise GrantError("a wave:decrypt resource may use '*' only as its last cell and no '+'")
            if len(s.resource) > MAX_DECRYPT_CELLS:
                raise GrantError(f"a wave:decrypt resource has at most {MAX_DECRYPT_CELLS} cells")


@dataclass(frozen=True, slots=True)
class StatementText:
    """A statement as typed, before its permission set and namespace are resolved to IDs."""

    pset: str
    permissions: tuple[str, ...]
    namespace: str
    resource: Pattern

    def resolve(self, pset_id: bytes) -> Statement:
        return Statement(pset_id, frozenset(self.permissions), self.resource)


def parse_statement_text(text: str) -> StatementText:
    """Parse ``pset:perm[,perm]@namespace/resource``; errors say which part is wrong."""
    parts = text.split("@")
    if len(parts) != 2:
        raise InputError(f"statement {text!r}: expected exactly one '@' (pset:perms@namespace/resource)")
    head, target = parts
    pieces = head.split(":")
    if len(pieces) != 2 or not pieces[0]:
        raise InputError(f"statement {text!r}: expected 'pset:perm[,perm...]' before '@'")
    pset, perm_text = pieces
    perms = tuple(perm_text.split(","))
    for perm in perms:
        if not _PERMISSION_RE.fullmatch(perm):
            raise InputError(f"statement {text!r}: permission {perm!r} is not [a-z0-9_-]{{1,32}}")
    if len(set(perms)) != len(perms):
        raise InputError(f"statement {text!r}: a permission is repeated")
    slash = target.find("/")
    if slash <= 0:
        raise InputError(f"statement {text!r}: expected 'namespace/resource' after '@' (e.g. ns.ent/*)")
    namespace, resource_text = target[:slash], target[slash + 1 :]
    try:
        resource = parse_pattern(resource_text)
    except UriError as exc:
        raise InputError(f"statement {text!r}: resource: {exc}") from None
    return StatementText(pset, perms, namespace, resource)
