"""What the benches read about a process from ``/proc``, and how they summarise repeated runs.

Pure parsers (``parse_*``: the text of one ``/proc`` file in, numbers out) with thin readers beside them,
so the parsing is tested without a process. CPU comes from ``/proc/PID/stat`` (``utime + stime``, in
clock ticks): the router's own CPU over a measured window, whatever its clients cost.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = [
    "CLOCK_TICKS",
    "Summary",
    "cpu_seconds",
    "io_write_bytes",
    "memory_mb",
    "parse_io_write_bytes",
    "parse_stat_cpu_ticks",
    "parse_status_memory_kb",
    "summarize",
]

#: Clock ticks per second of ``/proc/PID/stat``'s CPU fields (100 on Linux).
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat_cpu_ticks(text: str) -> int:
    """``utime + stime`` (fields 14 and 15) of a ``/proc/PID/stat`` line, in clock ticks.

    The command name (field 2) is in parentheses and may contain spaces and parentheses itself, so the
    fields are counted from the last ``)``.
    """
    end = text.rfind(")")
    if end < 0:
        raise ValueError("not a /proc/PID/stat line: no ')' after the command name")
    rest = text[end + 1:].split()
    # rest[0] is field 3 (state): field k is rest[k - 3]
    if len(rest) < 13:
        raise ValueError(f"not a /proc/PID/stat line: {len(rest) + 2} fields, expected at least 15")
    return int(rest[11]) + int(rest[12])


def parse_status_memory_kb(text: str) -> tuple[int, int]:
    """(VmRSS, RssAnon) in kB from the text of ``/proc/PID/status``; 0 for a field that is missing."""
    rss = anon = 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("RssAnon:"):
            anon = int(line.split()[1])
    return rss, anon


def parse_io_write_bytes(text: str) -> int:
    """``write_bytes`` of ``/proc/PID/io``: bytes this process caused to be sent to a block device."""
    for line in text.splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise ValueError("no write_bytes line in /proc/PID/io")


def _read(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/{name}") as f:
        return f.read()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process ``pid`` (all its threads) has used so far."""
    return parse_stat_cpu_ticks(_read(pid, "stat")) / CLOCK_TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS MB, RssAnon MB) of a process."""
    rss, anon = parse_status_memory_kb(_read(pid, "status"))
    return rss / 1024, anon / 1024


def io_write_bytes(pid: int) -> int | None:
    """``write_bytes`` of a process, or None where ``/proc/PID/io`` is not readable."""
    try:
        return parse_io_write_bytes(_read(pid, "io"))
    except (OSError, ValueError):
        return None


class Summary(NamedTuple):
    """Minimum, median and maximum of one figure over the runs."""

    min: float
    median: float
    max: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """The :class:`Summary` of ``values`` (at least one)."""
    if not values:
        raise ValueError("no values to summarise")
    return Summary(min(values), statistics.median(values), max(values), len(values))
