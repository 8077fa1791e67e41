"""Flash test: what reaches the SD card.

Method. ``/proc/self/io`` ``write_bytes`` counts the bytes this process caused to be sent to a block
device (the kernel charges a process when it dirties page-cache pages of a disk-backed file, which is
what LMDB's ``pwrite`` does without ``writemap``). Writes into tmpfs (the journal) are not charged: tmpfs
pages have no backing device. So the delta of ``write_bytes`` around a piece of work is the device
traffic that work will cause. We cross-check with the durable directory itself: the size and mtime of
``data.mdb`` must not change between flushes. The test runs in-process (the fixture journal lives on
/dev/shm) and skips if the kernel does not expose ``/proc/self/io`` accounting.
"""

from __future__ import annotations

import os
import time

import pytest

from wavemq_edge.storage import QueueKind, QueueLimits, QueueStore, StoreOptions

ITEMS = 10_000
PAYLOAD = 100
#: LMDB leaf node header (8) + our 8-byte big-endian key + our 8-byte enqueue time.
KEY_OVERHEAD = 24


def _write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes")


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(os.path.join(path, "data.mdb"))
    return st.st_size, st.st_mtime_ns


@pytest.fixture
def io_accounting(tmp_path: object) -> None:
    if not os.path.exists("/proc/self/io"):
        pytest.skip("no /proc/self/io")
    probe = os.path.join(str(tmp_path), "probe")
    before = _write_bytes()
    with open(probe, "wb") as f:
        f.write(b"x" * 65536)
        f.flush()
        os.fsync(f.fileno())
    if _write_bytes() - before < 65536:
        pytest.skip("kernel does not account write_bytes for this filesystem")


def _open(store_path: str, journal_dir: str) -> QueueStore:
    opts = StoreOptions(path=store_path, journal_dir=journal_dir, flush_interval_s=30.0)
    s = QueueStore.open(opts, now=0.0, wall_time=time.time())
    s.create_queue("sub", QueueKind.SUBSCRIPTION, QueueLimits(100_000, 1 << 30), 0.0)
    s.flush(0.0)  # the queue header is written once, at creation
    return s


@pytest.mark.usefixtures("io_accounting")
def test_in_window_delivery_writes_nothing(store_path: str, journal_dir: str) -> None:
    s = _open(store_path, journal_dir)
    stat0 = _stat(store_path)
    wb0 = _write_bytes()
    payload = b"p" * PAYLOAD
    now = 1.0
    for i in range(ITEMS):
        assert not s.dedup.seen_or_add(i.to_bytes(32, "big"), now)  # as the router does for each message
        seq = s.append("sub", payload, now)
        if i % 10 == 9:  # a consumer acks in batches of 10, well inside the flush window
            for got_seq, _item in s.peek("sub", seq - 10, 10):
                assert got_seq <= seq
            s.ack("sub", seq, now)
        now += 0.001
    between = _write_bytes() - wb0
    s.flush(now)  # nothing is left to write: the flush is empty (journal rotation; ids carried in it)
    at_flush = _write_bytes() - wb0
    print(f"\nin-window: {between} bytes between flushes, {at_flush} bytes including the flush")
    assert between == 0
    assert at_flush == 0
    assert _stat(store_path) == stat0
    assert s.store_stats().empty_flushes >= 1
    s.close(now)


@pytest.mark.usefixtures("io_accounting")
def test_backlog_costs_at_most_twice_item_plus_key_per_flush(store_path: str, journal_dir: str) -> None:
    s = _open(store_path, journal_dir)
    payload = b"q" * PAYLOAD
    now = 1.0
    per_item: list[float] = []
    for _round in range(4):
        wb0 = _write_bytes()
        stat0 = _stat(store_path)
        for _ in range(ITEMS // 4):
            s.append("sub", payload, now)
        assert _write_bytes() == wb0 and _stat(store_path) == stat0  # nothing until the flush
        s.flush(now)
        per_item.append((_write_bytes() - wb0) / (ITEMS // 4))
        now += 30.0
    print(f"\nbacklog: device bytes per {PAYLOAD}-byte item per flush: {[round(x, 1) for x in per_item]}")
    assert max(per_item) <= 2 * (PAYLOAD + KEY_OVERHEAD)
    s.close(now)


def test_a_flush_leaves_items_still_in_flight_for_the_next_one(journal_dir: str) -> None:
    """At a steady flow the message in flight to a consumer when a flush starts is acknowledged a moment
    later: the flush leaves items younger than ``flush_settle_s`` (in the journal) for the next flush,
    which writes them if they are still there, so nothing waits more than one window plus the settle."""
    from wavemq_edge.storage import MemoryBackend

    backend = MemoryBackend()
    opts = StoreOptions(path="(memory)", journal_dir=journal_dir, flush_interval_s=5.0, flush_settle_s=0.5)
    s = QueueStore(backend, opts, 0.0, 1_700_000_000.0)
    s.create_queue("sub", QueueKind.SUBSCRIPTION, QueueLimits(100, 1 << 20), 0.0)
    s.flush(0.0)
    commits = backend.commits
    acked = s.append("sub", b"old, acknowledged", 1.0)
    s.ack("sub", acked, 1.1)
    s.append("sub", b"in flight", 4.9)  # delivered, not yet acknowledged, when the flush starts
    s.flush(5.0)
    assert backend.commits == commits  # nothing settled needs writing: no transaction at all
    assert s.next_flush_deadline() is not None  # the young item keeps a flush coming
    s.flush(10.0)  # never acknowledged: the next flush writes it
    assert backend.commits == commits + 1
    s.abandon()
    s = QueueStore(backend, StoreOptions(path="(memory)", journal_dir=""), 11.0, 1_700_000_011.0)
    assert [item for _seq, item in s.peek("sub", 0, 10)] == [b"in flight"]


def test_an_item_left_for_the_next_flush_survives_a_crash_right_after_this_one(journal_dir: str) -> None:
    """The flush drops the journal segments it covers: an item it left for the next flush is carried
    into the fresh segment, so a kill -9 between the two flushes loses nothing."""
    from wavemq_edge.storage import MemoryBackend

    backend = MemoryBackend()
    opts = StoreOptions(path="(memory)", journal_dir=journal_dir, flush_interval_s=5.0, flush_settle_s=0.5)
    s = QueueStore(backend, opts, 0.0, 1_700_000_000.0)
    s.create_queue("sub", QueueKind.SUBSCRIPTION, QueueLimits(100, 1 << 20), 0.0)
    s.flush(0.0)
    s.append("sub", b"settled", 1.0)
    s.append("sub", b"young 1", 4.8)
    s.append("sub", b"young 2", 4.9)
    s.flush(5.0)  # writes "settled", leaves the young ones, drops the old journal segment
    s.abandon()  # kill -9 before the next flush
    s = QueueStore(backend, opts, 6.0, 1_700_000_006.0)
    assert [item for _seq, item in s.peek("sub", 0, 10)] == [b"settled", b"young 1", b"young 2"]
    s.close(7.0)
