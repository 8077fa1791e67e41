"""Persisted messages: last value per URI, whole-segment Query in URI order with continuations,
restart and crash recovery, bounded scans."""

from __future__ import annotations

import os
import random

import pytest

from wavemq_edge.storage import PersistOptions, PersistStore
from wavemq_edge.uri import UriError, matches, parse_pattern, parse_uri

NS = "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="


def _open(tmp_path: object, journal_dir: str, **kw: int) -> PersistStore:
    return PersistStore.open(
        PersistOptions(path=os.path.join(str(tmp_path), "persist"), journal_dir=journal_dir, **kw), 0.0
    )


def _all(store: PersistStore, ns: str, pattern: str, limit: int) -> list[str]:
    out: list[str] = []
    after = None
    for _ in range(10_000):
        res = store.query(ns, pattern, after_uri=after, limit=limit)
        out.extend(uri for uri, _m in res.items)
        if res.continuation is None:
            return out
        after = res.continuation
    raise AssertionError("continuation loop")


def test_last_value_per_uri_and_namespaces_apart(tmp_path: object, journal_dir: str) -> None:
    s = _open(tmp_path, journal_dir)
    s.put(NS, "a/b", b"1")
    s.put(NS, "a/b", b"2")
    s.put("other", "a/b", b"3")
    assert s.get(NS, "a/b") == b"2"
    s.flush(1.0)
    assert s.get(NS, "a/b") == b"2"
    assert s.query(NS, "a/b").items == [("a/b", b"2")]
    assert s.query("other", "*").items == [("a/b", b"3")]
    s.close(2.0)


def test_whole_segment_matching_and_uri_order(tmp_path: object, journal_dir: str) -> None:
    s = _open(tmp_path, journal_dir)
    for uri in ["a", "a/b", "ab/c", "a/b/c", "a-b", "a/c", "a/b/d", "b/b"]:
        s.put(NS, uri, uri.encode())
    s.flush(1.0)
    s.put(NS, "a/bb", b"late")  # pending (unflushed) values are merged into query results
    assert [u for u, _ in s.query(NS, "a/*").items] == ["a", "a/b", "a/b/c", "a/b/d", "a/bb", "a/c"]
    assert [u for u, _ in s.query(NS, "a/+").items] == ["a/b", "a/bb", "a/c"]
    assert [u for u, _ in s.query(NS, "*/b").items] == ["a/b", "b/b"]
    assert [u for u, _ in s.query(NS, "+/+/d").items] == ["a/b/d"]
    with pytest.raises(UriError):
        s.query(NS, "*/a/*")  # the original crashed here (§12 #8)
    s.close(2.0)


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_continuation_walks_everything_once(tmp_path: object, journal_dir: str, limit: int) -> None:
    rng = random.Random(limit)
    s = _open(tmp_path, journal_dir, max_scan=7)
    uris = set()
    for _ in range(150):
        uri = "/".join(rng.choice(["a", "b", "c", "d1"]) for _ in range(rng.randint(1, 4)))
        uris.add(uri)
        s.put(NS, uri, b"m")
        if rng.random() < 0.1:
            s.flush(1.0)
    for pattern in ["*", "a/*", "+/b", "*/c", "+/+/+", "b/*/d1"]:
        pat = parse_pattern(pattern)
        want = sorted((u for u in uris if matches(pat, parse_uri(u))), key=lambda u: tuple(u.split("/")))
        assert _all(s, NS, pattern, limit) == want, pattern
    s.close(2.0)


def test_restart_and_crash_keep_values_and_router_id(tmp_path: object, journal_dir: str) -> None:
    s = _open(tmp_path, journal_dir)
    router_id = s.router_id
    s.put(NS, "x/durable", b"d")
    s.flush(1.0)
    s.put(NS, "x/journal-only", b"j")
    s.abandon()  # kill -9: unflushed put is on tmpfs only
    s = _open(tmp_path, journal_dir)
    assert s.router_id == router_id
    assert [u for u, _ in s.query(NS, "x/*").items] == ["x/durable", "x/journal-only"]
    s.close(2.0)
    s = _open(tmp_path, journal_dir)
    assert s.get(NS, "x/journal-only") == b"j"
    s.close(3.0)
