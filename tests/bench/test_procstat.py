"""The bench's ``/proc`` parsers and its min / median / max summary (no process needed)."""

from __future__ import annotations

import os

import pytest

from wavemq_edge.bench.procstat import (
    cpu_seconds,
    memory_mb,
    parse_io_write_bytes,
    parse_stat_cpu_ticks,
    parse_status_memory_kb,
    summarize,
)

pytestmark = pytest.mark.timeout(30)

# a real line's shape: pid (comm) state ppid ... utime(14) stime(15) ...
_STAT = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 1790 0 0 0 {utime} {stime} 0 0 20 0 3 0 100 0 0"


def test_stat_cpu_is_utime_plus_stime_counted_from_the_last_parenthesis() -> None:
    assert parse_stat_cpu_ticks(_STAT.format(utime=123, stime=45)) == 168


@pytest.mark.parametrize("text", ["no parenthesis at all", "1 (x) S 1 2 3"])
def test_stat_that_is_not_a_stat_line_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
        parse_stat_cpu_ticks(text)


def test_status_memory_fields() -> None:
    text = "Name:\tpython\nVmRSS:\t   35100 kB\nRssAnon:\t   20480 kB\nRssFile:\t 14620 kB\n"
    assert parse_status_memory_kb(text) == (35100, 20480)
    assert parse_status_memory_kb("Name:\tkthread\n") == (0, 0)


def test_io_write_bytes() -> None:
    text = "rchar: 10\nwchar: 20\nread_bytes: 0\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
    assert parse_io_write_bytes(text) == 8192
    with pytest.raises(ValueError, match="write_bytes"):
        parse_io_write_bytes("rchar: 1\n")


def test_readers_on_this_process() -> None:
    busy = sum(i * i for i in range(200_000))  # some CPU, so the figure is not trivially zero
    assert busy > 0
    assert cpu_seconds(os.getpid()) > 0
    rss, anon = memory_mb(os.getpid())
    assert rss >= anon > 0


def test_summary_is_min_median_max() -> None:
    assert tuple(summarize([3.0, 1.0, 2.0])) == (1.0, 2.0, 3.0, 3)
    assert tuple(summarize([5.0, 1.0])) == (1.0, 3.0, 5.0, 2)
    with pytest.raises(ValueError):
        summarize([])
