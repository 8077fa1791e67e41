"""Typed, bounded access to the fields of a decoded TBS map.

Every object parser reads its map through these helpers, so a wrong type, a wrong length, a missing
field or an unknown key is refused the same way: ``VerificationError(MALFORMED)`` naming the object,
the field name and its key number. Unknown keys are refused (not ignored) so that two parsers can never
disagree about what a signed object says.
"""

from __future__ import annotations

from collections.abc import Iterable

from .canonical import CborValue
from .errors import Reason, VerificationError

__all__ = [
    "check_keys",
    "get_bool",
    "get_bytes",
    "get_list",
    "get_map",
    "get_optional_bytes",
    "get_optional_text",
    "get_text",
    "get_uint",
]


def _bad(what: str, name: str, key: int, problem: str) -> VerificationError:
    return VerificationError(Reason.MALFORMED, f"{what}: field {name} (key {key}) {problem}")


def check_keys(tbs: dict[int, CborValue], allowed: Iterable[int], what: str) -> None:
    """Refuse keys outside ``allowed`` (pass a frozenset on hot paths: the check is then one C call)."""
    allowed_set = allowed if isinstance(allowed, (set, frozenset)) else frozenset(allowed)
    if tbs.keys() <= allowed_set:
        return
    extra = set(tbs) - allowed_set
    raise VerificationError(Reason.MALFORMED, f"{what}: unknown field key(s) {sorted(extra)}")


def _need(tbs: dict[int, CborValue], key: int, name: str, what: str) -> CborValue:
    if key not in tbs:
        raise _bad(what, name, key, "is missing")
    return tbs[key]


def get_bytes(tbs: dict[int, CborValue], key: int, name: str, what: str, size: int | None = None) -> bytes:
    value = _need(tbs, key, name, what)
    if not isinstance(value, bytes):
        raise _bad(what, name, key, "is not a byte string")
    if size is not None and len(value) != size:
        raise _bad(what, name, key, f"has {len(value)} bytes, expected {size}")
    return value


def get_optional_bytes(tbs: dict[int, CborValue], key: int, name: str, what: str, size: int) -> bytes | None:
    if key not in tbs:
        return None
    return get_bytes(tbs, key, name, what, size)


def get_text(tbs: dict[int, CborValue], key: int, name: str, what: str, max_bytes: int) -> str:
    value = _need(tbs, key, name, what)
    if not isinstance(value, str):
        raise _bad(what, name, key, "is not a text string")
    # UTF-8 takes at most 4 bytes a character: encode only a text that might be too long.
    if len(value) * 4 > max_bytes and len(value.encode("utf-8")) > max_bytes:
        raise VerificationError(Reason.OVERSIZE, f"{what}: field {name} (key {key}) exceeds {max_bytes} bytes")
    return value


def get_optional_text(tbs: dict[int, CborValue], key: int, name: str, what: str, max_bytes: int) -> str | None:
    if key not in tbs:
        return None
    return get_text(tbs, key, name, what, max_bytes)


def get_uint(tbs: dict[int, CborValue], key: int, name: str, what: str, maximum: int = (1 << 64) - 1) -> int:
    value = _need(tbs, key, name, what)
    if type(value) is not int or value < 0:
        raise _bad(what, name, key, "is not an unsigned integer")
    if value > maximum:
        raise _bad(what, name, key, f"is {value}, above the maximum {maximum}")
    return value


def get_bool(tbs: dict[int, CborValue], key: int, name: str, what: str) -> bool:
    value = _need(tbs, key, name, what)
    if not isinstance(value, bool):
        raise _bad(what, name, key, "is not a boolean")
    return value


def get_list(tbs: dict[int, CborValue], key: int, name: str, what: str, max_items: int) -> list[CborValue]:
    value = _need(tbs, key, name, what)
    if not isinstance(value, list):
        raise _bad(what, name, key, "is not an array")
    if len(value) > max_items:
        raise VerificationError(
            Reason.OVERSIZE, f"{what}: field {name} (key {key}) has {len(value)} items, more than {max_items}"
        )
    return value


def get_map(tbs: dict[int, CborValue], key: int, name: str, what: str) -> dict[int, CborValue]:
    value = _need(tbs, key, name, what)
    if not isinstance(value, dict):
        raise _bad(what, name, key, "is not a map")
    return value
