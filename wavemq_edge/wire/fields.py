"""Frame-field validators: one set for every end that reads frames (agent session, trunk, client).

A decoded ``Frame`` holds plain CBOR values (``object``); the codec has already refused floats, tags
and deep nesting, but not a string where an integer belongs or a field too few. Each reader checks the
fields it takes with these functions *before* acting on them, so a peer's bad frame never reaches a
core as a half-typed value.

Every check raises ``FieldError`` (a ``RemoteWireError`` with ``CloseCode.BAD_FIELDS``): blame on the
peer, and a message that names the field, what it must be and what came instead
(``"DELIVER seq must be an integer, got str"``). Callers decide what a bad field costs: the agent
session and the client close the connection with the error's close code; the trunk maps it onto its own
violation. ``what`` is the field's name as a reader would say it, frame type first.

Integers exclude ``bool`` (CBOR ``true`` is not ``1``), and a list of integers is checked element by
element: both are how a sloppy peer would otherwise smuggle a wrong type past ``isinstance``.
"""

from __future__ import annotations

from .errors import FieldError
from .frames import Frame

__all__ = [
    "expect_bool",
    "expect_bytes",
    "expect_fields",
    "expect_int",
    "expect_int_list",
    "expect_list",
    "expect_map",
    "expect_optional_str",
    "expect_str",
]


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def expect_fields(frame: Frame, n: int, *, at_least: bool = False) -> tuple[object, ...]:
    """The frame's fields, if there are exactly ``n`` of them (or at least ``n`` with ``at_least``:
    for frames whose later versions may append fields, like ``HELLO``)."""
    count = len(frame.fields)
    if count == n or (at_least and count > n):
        return frame.fields
    expected = f"at least {n}" if at_least else str(n)
    raise FieldError(f"{frame.type.name} frame has {count} fields, expected {expected}", f"{frame.type.name} frame")


def expect_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"{what} must be an integer, got {_kind(value)}", what)
    return value


def expect_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise FieldError(f"{what} must be a byte string, got {_kind(value)}", what)
    return value


def expect_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise FieldError(f"{what} must be a text string, got {_kind(value)}", what)
    return value


def expect_optional_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise FieldError(f"{what} must be a text string or null, got {_kind(value)}", what)
    return value


def expect_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"{what} must be a boolean, got {_kind(value)}", what)
    return value


def expect_list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise FieldError(f"{what} must be a list, got {_kind(value)}", what)
    return value


def expect_int_list(value: object, what: str) -> list[int]:
    if not isinstance(value, list):
        raise FieldError(f"{what} must be a list of integers, got {_kind(value)}", what)
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int):
            raise FieldError(f"{what} must be a list of integers, item {i} is {_kind(item)}", what)
    return value  # every item checked above


def expect_map(value: object, what: str) -> dict[object, object]:
    if not isinstance(value, dict):
        raise FieldError(f"{what} must be a map, got {_kind(value)}", what)
    return value
