"""Queue store behaviour through the public API: bounds, expiry, deadlines, flush interleaving."""

from __future__ import annotations

import threading
import time

import pytest

from wavemq_edge.storage import (
    DropReason,
    FlushOutcome,
    MemoryBackend,
    QueueKind,
    QueueLimits,
    QueueStore,
    StoreOptions,
    TooManyQueuesError,
    UnknownQueueError,
)

WALL0 = 1_700_000_000.0


def _mem(journal_dir: str, **kw: float) -> tuple[QueueStore, MemoryBackend]:
    b = MemoryBackend()
    opts = StoreOptions(path="(memory)", journal_dir=journal_dir, **kw)  # type: ignore[arg-type]
    return QueueStore(b, opts, 0.0, WALL0), b


def test_overflow_by_count_and_bytes_is_counted(journal_dir: str) -> None:
    s, _ = _mem(journal_dir)
    s.create_queue("q", QueueKind.SUBSCRIPTION, QueueLimits(3, 10), 0.0)
    for item in [b"aa", b"bb", b"cc", b"dd"]:
        s.append("q", item, 0.0)
    st = s.stats("q")
    assert (st.depth, st.drops["overflow-count"]) == (3, 1)
    s.append("q", b"eeeeeee", 0.0)  # a 4th item (count bound: drop bb), then 2+2+7 > 10 (bytes: drop cc)
    st = s.stats("q")
    assert (st.drops["overflow-count"], st.drops["overflow-bytes"], st.bytes) == (2, 1, 9)
    s.append("q", b"x" * 50, 0.0)  # larger than max_bytes: empties the queue, still accepted (as the original)
    assert [i for _s, i in s.peek("q", 0, 10)] == [b"x" * 50]


def test_item_age_and_idle_expiry_and_deadlines(journal_dir: str) -> None:
    s, _ = _mem(journal_dir, flush_interval_s=1000.0)
    s.create_queue("sub", QueueKind.SUBSCRIPTION, QueueLimits(100, 1000, 60.0), 0.0)
    s.create_queue("trunk", QueueKind.TRUNK, QueueLimits(100, 1000, 60.0), 0.0)
    s.append("sub", b"a", 10.0)
    s.append("trunk", b"a", 10.0)
    s.append("trunk", b"b", 50.0)
    s.touch("sub", 30.0)
    assert s.next_expiry_deadline() == 70.0  # the oldest items age out at 10 + 60
    assert s.handle_timer(69.9) == []
    assert s.handle_timer(70.0) == []
    assert s.stats("trunk").drops["expired"] == 1 and s.stats("sub").drops["expired"] == 1
    assert s.next_expiry_deadline() == 90.0  # "sub" idle since 30
    gone = s.handle_timer(90.0)
    assert [g.queue_id for g in gone] == ["sub"] and not s.has_queue("sub")
    s.handle_timer(10_000.0)
    assert s.has_queue("trunk")  # trunk queues never expire for idleness
    assert s.stats("trunk").depth == 0


def test_flush_deadline_interval_and_early_by_bytes(journal_dir: str) -> None:
    s, _ = _mem(journal_dir, flush_interval_s=30.0, flush_bytes=1000)
    assert s.next_flush_deadline() is None  # nothing changed: no wake-ups
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(10_000, 1 << 30), 0.0)
    assert s.next_flush_deadline() == 30.0
    assert not s.flush_due(29.0) and s.flush_due(30.0)
    for _ in range(10):
        s.append("q", b"x" * 100, 1.0)
    assert s.flush_due(1.0)  # 1000 unflushed bytes: flush early
    s.flush(1.0)
    assert s.next_flush_deadline() is None
    assert s.next_deadline() == 1.0 + 86400.0  # only the item-age expiry remains


def test_appends_and_acks_while_a_flush_runs_in_a_thread(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(1_000_000, 1 << 40, 0.0), 0.0)
    for i in range(5000):
        s.append("q", b"%06d" % i, 0.0)
    s.flush(0.0)
    for i in range(5000, 10000):
        s.append("q", b"%06d" % i, 1.0)
    batch = s.prepare_flush(1.0)
    assert batch is not None and s.prepare_flush(1.0) is None  # one flush in flight at a time
    result: list[FlushOutcome] = []
    worker = threading.Thread(target=lambda: result.append(s.write_flush(batch)))
    worker.start()
    for i in range(10000, 12000):  # the "event loop" keeps going
        s.append("q", b"%06d" % i, 2.0)
        if i % 100 == 0:
            head = s.peek("q", 0, 1)[0][0]
            s.ack("q", head + 49)
    worker.join()
    s.complete_flush(batch, result[0], 3.0)
    st = s.stats("q")
    got = s.peek("q", 0, 20000)
    assert [seq for seq, _ in got] == list(range(st.head, st.tail))
    assert [int(item) for _seq, item in got] == list(range(st.head - 1, st.tail - 1))
    s.close(4.0)
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    assert s.peek("q", 0, 20000) == got
    s.close(5.0)


def test_errors_name_the_queue_and_the_limit(journal_dir: str) -> None:
    s, _ = _mem(journal_dir, max_queues=2)
    with pytest.raises(UnknownQueueError, match="'nope'"):
        s.append("nope", b"x", 0.0)
    s.create_queue("a", QueueKind.SUBSCRIPTION, QueueLimits(1, 1), 0.0)
    s.create_queue("b", QueueKind.SUBSCRIPTION, QueueLimits(1, 1), 0.0)
    with pytest.raises(TooManyQueuesError, match="max_queues=2"):
        s.create_queue("c", QueueKind.SUBSCRIPTION, QueueLimits(1, 1), 0.0)
    with pytest.raises(ValueError, match="max_length=0"):
        QueueLimits(0, 1)


def test_shed_oldest_by_bytes_counts_budget(journal_dir: str) -> None:
    s, _ = _mem(journal_dir)
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(100, 1000), 0.0)
    for _ in range(10):
        s.append("q", b"x" * 10, 0.0)
    assert s.shed_oldest("q", max_bytes=25) == 3
    assert s.stats("q").drops == {
        "overflow-count": 0,
        "overflow-bytes": 0,
        "expired": 0,
        "budget": 3,
        "storage-full": 0,
    }
    assert s.shed_oldest("q", max_items=2, reason=DropReason.EXPIRED) == 2


def test_sequences_continue_after_clean_restart_of_an_empty_queue(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(100, 1000), 0.0)
    seq = s.append("q", b"a", 0.0)
    s.ack("q", seq)
    s.close(1.0)
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    assert s.append("q", b"b", 0.0) == seq + 1
    s.close(1.0)


def test_without_journal_a_crash_loses_the_window_only(store_path: str) -> None:
    opts = StoreOptions(path=store_path, journal_dir="")
    s = QueueStore.open(opts, 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(100, 1000), 0.0)
    s.append("q", b"durable", 0.0)
    s.flush(0.0)
    s.append("q", b"lost", 0.0)
    s.abandon()
    s = QueueStore.open(opts, 0.0, time.time())
    assert [i for _s, i in s.peek("q", 0, 10)] == [b"durable"]
    assert not s.store_stats().journal_enabled
    s.close(0.0)


def test_sequences_never_repeat_after_a_crash_of_an_in_window_queue(journal_dir: str) -> None:
    """Items appended and acked in-window leave no key; the journal remembers the tail."""
    b = MemoryBackend()
    opts = StoreOptions(path="(memory)", journal_dir=journal_dir)
    s = QueueStore(b, opts, 0.0, WALL0)
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(10, 100), 0.0)
    s.flush(0.0)
    seq = s.append("q", b"x", 1.0)
    s.ack("q", seq)
    s.flush(2.0)  # empty flush: covers (deletes) the segment that held the append
    s.abandon()
    s = QueueStore(b, opts, 3.0, WALL0 + 3.0)
    assert s.append("q", b"y", 3.0) == seq + 1


def test_recreating_a_queue_with_new_limits_applies_them(store_path: str, journal_dir: str) -> None:
    """An operator lowering trunkingQueueMaxLength sees it apply after a restart (the router re-creates
    its queues with the configured limits at every start); the oldest items go, counted."""
    opts = StoreOptions(path=store_path, journal_dir=journal_dir)
    s = QueueStore.open(opts, 0.0, WALL0)
    s.create_queue("t", QueueKind.TRUNK, QueueLimits(100, 1 << 20), 0.0)
    for i in range(20):
        s.append("t", b"%d" % i, 0.0)
    s.close(1.0)
    s = QueueStore.open(opts, 2.0, WALL0 + 2)
    assert s.create_queue("t", QueueKind.TRUNK, QueueLimits(5, 1 << 20), 2.0).depth == 20
    s.append("t", b"20", 2.0)
    st = s.stats("t")
    assert (st.depth, st.drops["overflow-count"]) == (5, 16)
    assert [i for _s, i in s.peek("t", -1, 10)] == [b"16", b"17", b"18", b"19", b"20"]
    s.close(3.0)
    s = QueueStore.open(opts, 4.0, WALL0 + 4)
    assert s.stats("t").depth == 5  # the new limits were recorded with the flush
    s.close(5.0)


def test_unflushed_ram_is_bounded_by_bytes_with_small_items_charged_their_overhead(journal_dir: str) -> None:
    s, _ = _mem(journal_dir, flush_interval_s=30.0, flush_bytes=10_000)
    s.create_queue("q", QueueKind.SUBSCRIPTION, QueueLimits(10_000, 1 << 30), 0.0)
    # 40 items of 10 bytes cost 40 x (10 + 256) = 10 640 bytes of RAM: a flush is due for 400 payload bytes
    for _ in range(40):
        s.append("q", b"x" * 10, 1.0)
    assert s.flush_due(1.0) and not s.ram_full()
    batch = s.prepare_flush(1.0)
    assert batch is not None
    for _ in range(40):  # written meanwhile: the in-flight batch's payloads are still in RAM
        s.append("q", b"y" * 10, 1.0)
    assert s.ram_full()  # two flushes' worth: the server holds publishers back here
    assert s.write_flush(batch) is FlushOutcome.OK
    s.complete_flush(batch, FlushOutcome.OK, 1.0)
    assert not s.ram_full()  # the first 40 are on disk and left RAM
    assert s.store_stats().unflushed_items == 40
    s.ack("q", s.stats("q").tail - 1, 2.0)  # consumed before any flush: released without a write
    assert s.store_stats().unflushed_bytes == 0 and not s.ram_full() and s.stats("q").depth == 0
