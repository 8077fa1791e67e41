"""Fault tests: corrupted or truncated journals, unexpected and damaged files in the data directory,
a second process on the same store, and a full LMDB map. The rule: a clear error or a recovery, and
never a silent loss of the durable store."""

from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path

import pytest

from wavemq_edge.storage import (
    CorruptStoreError,
    FlushOutcome,
    PersistOptions,
    PersistStore,
    QueueKind,
    QueueLimits,
    QueueStore,
    StoreLockedError,
    StoreOptions,
    UnexpectedFilesError,
)

LIMITS = QueueLimits(1_000_000, 1 << 40, 0.0)


def _opts(store_path: str, journal_dir: str, **kw: int) -> StoreOptions:
    return StoreOptions(path=store_path, journal_dir=journal_dir, **kw)


def _store_with_durable_and_journal(store_path: str, journal_dir: str) -> QueueStore:
    """10 durable items (1..10), then 10 journal-only items (11..20), then 'crash'."""
    s = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
    for i in range(1, 11):
        s.append("q", b"item-%d" % i, 1.0)
    assert s.flush(1.0) is FlushOutcome.OK
    for i in range(11, 21):
        s.append("q", b"item-%d" % i, 2.0)
    s.abandon()
    return s


def _items(store_path: str, journal_dir: str) -> tuple[list[bytes], QueueStore]:
    s = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    return [item for _seq, item in s.peek("q", 0, 1000)], s


def _segments(journal_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(journal_dir, "*", "q.*.wal")))


def test_crash_replays_journal(store_path: str, journal_dir: str) -> None:
    _store_with_durable_and_journal(store_path, journal_dir)
    items, s = _items(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 21)]
    assert s.journal_report.records >= 10
    s.close(3.0)


def test_flipped_byte_in_journal_is_reported_and_durable_store_kept(store_path: str, journal_dir: str) -> None:
    _store_with_durable_and_journal(store_path, journal_dir)
    seg = _segments(journal_dir)[-1]
    data = bytearray(Path(seg).read_bytes())
    data[6 + 16 + 8 + 16 + 8 + 10] ^= 0xFF  # inside the body of the first record after the header
    Path(seg).write_bytes(bytes(data))
    items, s = _items(store_path, journal_dir)
    assert items[:10] == [b"item-%d" % i for i in range(1, 11)]  # durable part intact
    assert items == [b"item-%d" % i for i in range(1, len(items) + 1)]  # a gap-free prefix
    assert len(items) < 20
    assert s.journal_report.corrupt, "corruption must be reported, not silent"
    assert glob.glob(os.path.join(journal_dir, "*", "*.corrupt"))  # set aside for inspection
    s.close(3.0)


def test_truncated_journal_recovers_whole_records(store_path: str, journal_dir: str) -> None:
    _store_with_durable_and_journal(store_path, journal_dir)
    seg = _segments(journal_dir)[-1]
    os.truncate(seg, os.path.getsize(seg) - 5)  # died inside write(2) of the last record
    items, s = _items(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 20)]
    assert s.journal_report.torn_tail and not s.journal_report.corrupt
    s.close(3.0)


def test_garbage_header_and_foreign_journal_are_set_aside(store_path: str, journal_dir: str) -> None:
    _store_with_durable_and_journal(store_path, journal_dir)
    seg = _segments(journal_dir)[-1]
    store_dir = os.path.dirname(seg)
    Path(store_dir, "notes.txt").write_text("not ours")  # ignored
    with open(seg, "r+b") as f:
        f.write(b"JUNK")
    items, s = _items(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 11)]
    assert s.journal_report.corrupt
    s.close(3.0)


def test_journal_of_another_boot_is_not_replayed(store_path: str, journal_dir: str) -> None:
    """A journal dir that is not tmpfs survives a reboot unsynced; its segments carry the old boot id
    and are set aside, so the store opens with the durable state alone (the power-cut guarantee)."""
    _store_with_durable_and_journal(store_path, journal_dir)
    seg = _segments(journal_dir)[-1]
    with open(seg, "r+b") as f:
        f.seek(6 + 16 + 8)
        f.write(b"\x42" * 16)  # a different boot id
    items, s = _items(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 11)]
    assert s.journal_report.stale and not s.journal_report.corrupt
    s.close(3.0)


def test_unexpected_file_in_data_dir_is_refused_and_nothing_deleted(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
    s.append("q", b"x", 0.0)
    s.close(0.0)
    Path(store_path, "badger.vlog").write_text("someone else's store")
    before = sorted(os.listdir(store_path))
    with pytest.raises(UnexpectedFilesError, match=r"badger\.vlog"):
        QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    assert sorted(os.listdir(store_path)) == before


def test_non_empty_foreign_dir_is_refused(tmp_path: object, journal_dir: str) -> None:
    path = os.path.join(str(tmp_path), "home")
    os.makedirs(path)
    Path(path, "thesis.tex").write_text("x")
    with pytest.raises(UnexpectedFilesError):
        QueueStore.open(_opts(path, journal_dir), 0.0, time.time())


@pytest.mark.parametrize("damage", ["empty", "half", "garbage"])
def test_damaged_data_file_is_a_clear_error(store_path: str, journal_dir: str, damage: str) -> None:
    s = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
    for i in range(2000):
        s.append("q", b"%d" % i * 20, 0.0)
    s.close(0.0)
    data = os.path.join(store_path, "data.mdb")
    size = os.path.getsize(data)
    if damage == "empty":
        os.truncate(data, 0)
    elif damage == "half":
        os.truncate(data, size // 2)
    else:
        Path(data).write_bytes(os.urandom(size))
    with pytest.raises(CorruptStoreError, match=r"data\.mdb|LMDB"):
        QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    assert os.path.exists(data)  # never deleted or "repaired"


def test_wrong_kind_of_store_is_a_clear_error(tmp_path: object, journal_dir: str) -> None:
    path = os.path.join(str(tmp_path), "persist")
    PersistStore.open(PersistOptions(path=path, journal_dir=journal_dir), 0.0).close(0.0)
    with pytest.raises(CorruptStoreError, match="persist"):
        QueueStore.open(_opts(path, journal_dir), 0.0, time.time())


def test_second_opener_is_refused(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    with pytest.raises(StoreLockedError, match="locked"):
        QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    s.close(0.0)


def test_map_full_grows_then_sheds_counted_never_crashes(store_path: str, journal_dir: str) -> None:
    """``onDiskFull = "drop-oldest"``: past the map maximum the oldest backlog goes, counted."""
    mib = 1024 * 1024
    s = QueueStore.open(
        StoreOptions(path=store_path, journal_dir=journal_dir, map_size=mib, max_map_size=2 * mib,
                     flush_bytes=64 * mib, shed_when_full=True),
        0.0,
        time.time(),
    )
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
    appended = 0
    for _ in range(6000):
        s.append("q", os.urandom(1000), 0.0)
        appended += 1
    outcomes = []
    for attempt in range(20):
        outcome = s.flush(float(attempt))
        outcomes.append(outcome)
        if outcome is FlushOutcome.OK:
            break
    assert FlushOutcome.STORAGE_FULL in outcomes and outcomes[-1] is FlushOutcome.OK
    st = s.stats("q")
    assert st.drops["storage-full"] > 0
    assert st.depth + st.drops["storage-full"] == appended
    items = s.peek("q", 0, 10_000)
    assert [seq for seq, _ in items] == list(range(st.head, st.tail))  # the newest survive, in order
    s.close(99.0)
    shutil.rmtree(store_path)


def test_map_full_keeps_every_item_and_recovers_once_consumers_ack(store_path: str, journal_dir: str) -> None:
    """``onDiskFull = "refuse"`` (the default): a flush that does not fit drops nothing; the items stay in
    RAM and journal, ``flush_failure`` says why, and once a consumer acknowledges the durable backlog
    its deletion is committed first (pages freed in a transaction are reusable only by later ones), so
    the next flush fits and every unacknowledged item is durable."""
    mib = 1024 * 1024
    s = QueueStore.open(_opts(store_path, journal_dir, map_size=mib, max_map_size=2 * mib, flush_bytes=64 * mib),
                        0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)

    def item(i: int) -> bytes:
        return i.to_bytes(4, "big") * 250

    for i in range(1100):  # ~1.4 MB in the file
        s.append("q", item(i), 0.0)
    assert s.flush(0.0) is FlushOutcome.OK
    for i in range(1100, 1900):  # ~1 MB more: past the 2 MiB map
        s.append("q", item(i), 1.0)
    assert s.flush(1.0) is FlushOutcome.STORAGE_FULL
    assert s.flush_failure is not None and "full" in s.flush_failure
    st = s.stats("q")
    assert st.depth == 1900 and sum(st.drops.values()) == 0
    s.ack("q", 1100, 2.0)  # the durable backlog is consumed (sequences start at 1)
    assert s.flush(2.0) is FlushOutcome.OK
    assert s.flush_failure is None
    want = [(seq, item(seq - 1)) for seq in range(1101, 1901)]
    assert s.peek("q", 0, 10_000) == want
    s.abandon()  # no final flush: what the next open sees is what the flush committed
    shutil.rmtree(journal_dir)
    os.mkdir(journal_dir)
    again = QueueStore.open(_opts(store_path, journal_dir), 0.0, time.time())
    assert again.peek("q", 0, 10_000) == want
    again.close(4.0)
