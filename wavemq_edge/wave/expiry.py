"""The ``wv`` duration grammar: ``1y2d3h4m5s`` (WAVE ``cli/utils.go``; ``y`` is 365 days).

Each unit appears at most once and in the order y, d, h, m, s; at least one is required. A parse error
names the character position, so ``--expiry 1y2x`` says where the ``x`` is.
"""

from __future__ import annotations

from typing import Final

from .errors import InputError

__all__ = ["MAX_DURATION_S", "format_duration", "parse_duration"]

_UNITS: Final = (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
#: Longest duration we accept (100 years): far beyond any sane grant, small enough that ``now + d``
#: stays a modest integer in every time field.
MAX_DURATION_S: Final = 100 * 365 * 86400


def parse_duration(text: str, what: str = "expiry") -> int:
    """Seconds in ``text``; raise :class:`InputError` naming the offending position."""
    if text == "":
        raise InputError(f"{what} is empty; expected a duration such as 30d or 1y2d3h")
    total = 0
    pos = 0
    next_unit = 0
    while pos < len(text):
        start = pos
        while pos < len(text) and text[pos].isascii() and text[pos].isdigit():
            pos += 1
        if pos == start:
            raise InputError(f"{what} {text!r}: expected digits at position {pos}, found {text[pos]!r}")
        if pos == len(text):
            raise InputError(f"{what} {text!r}: number at position {start} has no unit (y, d, h, m or s)")
        unit = text[pos]
        names = [u for u, _ in _UNITS]
        if unit not in names:
            raise InputError(f"{what} {text!r}: unknown unit {unit!r} at position {pos}; units are y d h m s")
        index = names.index(unit)
        if index < next_unit:
            raise InputError(f"{what} {text!r}: unit {unit!r} at position {pos} repeats or is out of order (y d h m s)")
        next_unit = index + 1
        total += int(text[start:pos]) * _UNITS[index][1]
        if total > MAX_DURATION_S:
            raise InputError(f"{what} {text!r} exceeds the maximum of 100y")
        pos += 1
    if total == 0:
        raise InputError(f"{what} {text!r} is zero; a duration must be positive")
    return total


def format_duration(seconds: int) -> str:
    """Inverse of :func:`parse_duration` for positive durations (``31536000`` -> ``1y``)."""
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
