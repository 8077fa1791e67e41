"""Dedup window: duplicates suppressed, bounded by count and age, persisted across restart with the
flush (no transaction per id) and across a process crash through the journal."""

from __future__ import annotations

from wavemq_edge.storage import DedupOptions, DedupWindow, MemoryBackend, QueueStore, StoreOptions


def test_window_bounds_by_count_and_age() -> None:
    w = DedupWindow(DedupOptions(max_ids=3, max_age_s=10.0))
    assert not w.seen_or_add(b"a", 0.0)
    assert w.seen_or_add(b"a", 1.0)
    for i, m in enumerate([b"b", b"c", b"d"]):
        assert not w.seen_or_add(m, 2.0 + i)
    assert len(w) == 3 and b"a" not in w  # count bound evicted the oldest
    assert not w.seen_or_add(b"e", 13.5)  # b (t=2) and c (t=3) are older than 10 s
    assert b"b" not in w and b"c" not in w and b"d" in w
    assert w.duplicates == 1


def _open(backend: MemoryBackend, journal_dir: str, now: float) -> QueueStore:
    opts = StoreOptions(path="(memory)", journal_dir=journal_dir, dedup=DedupOptions(max_ids=100, max_age_s=50.0))
    return QueueStore(backend, opts, now, 1_700_000_000.0 + now)


def test_dedup_survives_restart_crash_and_is_batched(journal_dir: str) -> None:
    backend = MemoryBackend()
    s = _open(backend, journal_dir, 0.0)
    commits = backend.commits
    for i in range(50):
        assert not s.dedup.seen_or_add(b"id%d" % i, 1.0)
    assert backend.commits == commits  # no write per id
    s.flush(2.0)
    # ids alone make no transaction (flash): the flush rotated the journal and carried them into the
    # fresh segment, so the old segments could go
    assert backend.commits == commits and not backend.dedup
    assert not s.dedup.seen_or_add(b"late", 3.0)
    s.abandon()  # crash: every id only in the journal
    s = _open(backend, journal_dir, 3.0)
    assert s.dedup.seen_or_add(b"id7", 4.0)
    assert s.dedup.seen_or_add(b"late", 4.0)
    s.close(5.0)  # the final flush writes them, in one transaction
    assert backend.commits == commits + 1 and len(backend.dedup) == 51
    s = _open(backend, journal_dir, 60.0)  # clean restart much later: all aged out on next use
    assert not s.dedup.seen_or_add(b"id7", 60.0)
    s.close(62.0)
    assert set(backend.dedup) == {b"id7"}  # evicted ids were deleted from the durable store too


def test_ids_are_not_written_with_other_durable_changes_either(journal_dir: str) -> None:
    """A flush that writes an item leaves the ids in the journal; the final flush writes them."""
    from wavemq_edge.storage import QueueKind, QueueLimits

    backend = MemoryBackend()
    s = _open(backend, journal_dir, 0.0)
    s.create_queue("q", QueueKind.SUBSCRIPTION, QueueLimits(max_length=10, max_bytes=1000, expiry_s=0), 0.0)
    s.flush(0.5)
    commits = backend.commits
    assert not s.dedup.seen_or_add(b"a", 1.0)
    s.append("q", b"kept for later", 1.0)  # not acknowledged: it goes to flash with this flush
    s.flush(2.0)
    assert backend.commits == commits + 1 and not backend.dedup
    s.close(3.0)
    assert set(backend.dedup) == {b"a"}


def test_a_window_of_ids_survives_many_empty_flushes_and_a_crash(journal_dir: str) -> None:
    """Carried from segment to segment: after several rotations without a transaction, a crash still
    recovers every id."""
    backend = MemoryBackend()
    s = _open(backend, journal_dir, 0.0)
    commits = backend.commits
    for round_ in range(4):
        for i in range(10):
            assert not s.dedup.seen_or_add(b"r%d-%d" % (round_, i), 1.0 + round_)
        s.flush(1.5 + round_)
    assert backend.commits == commits
    s.abandon()
    s = _open(backend, journal_dir, 6.0)
    assert all(s.dedup.seen_or_add(b"r%d-%d" % (r, i), 6.0) for r in range(4) for i in range(10))
    s.close(7.0)
