"""Storage reads no environment: the journal directory is a parameter, and a store whose journal directory
was never chosen (``None``) is refused at open, before anything is written, instead of quietly running
without crash safety.

The journal directory is a trust boundary (its records are replayed as accepted messages): a symlink,
a directory of another user or one others can write in is refused; every record carries a MAC under a
per-boot key kept beside the journal, so a record the router did not write is rejected and counted."""

from __future__ import annotations

import glob
import hashlib
import multiprocessing
import os
import stat
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from wavemq_edge.storage import (
    MemoryBackend,
    PersistOptions,
    PersistStore,
    QueueKind,
    QueueLimits,
    QueueStore,
    StoreOptions,
)
from wavemq_edge.storage.journal_dir import KEY_FILE, JournalDirError, journal_key, prepare_journal_dir
from wavemq_edge.storage.options import JOURNAL_DIR_UNSET


def test_queue_store_without_a_chosen_journal_dir_is_refused(store_path: str) -> None:
    with pytest.raises(ValueError, match=r"StoreOptions\.journal_dir is not set"):
        QueueStore.open(StoreOptions(path=store_path), 0.0, time.time())
    with pytest.raises(ValueError, match="journal_dir is not set"):
        QueueStore(MemoryBackend(), StoreOptions(path="(memory)"), 0.0, time.time())


def test_persist_store_without_a_chosen_journal_dir_is_refused(tmp_path: object) -> None:
    with pytest.raises(ValueError, match=r"PersistOptions\.journal_dir is not set"):
        PersistStore.open(PersistOptions(path=os.path.join(str(tmp_path), "persist")), 0.0)


def test_the_given_journal_dir_is_used_and_empty_means_none(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    assert sorted(os.listdir(journal_dir)) == sorted([s.store_id.hex(), "journal.key"])
    s.close(0.0)
    s = QueueStore(MemoryBackend(), StoreOptions(path="(memory)", journal_dir=""), 0.0, time.time())
    assert s.store_stats().journal_dir is None
    assert "config.Environment.journal_dir" in JOURNAL_DIR_UNSET


# ---------------------------------------------------------------------------------- the trust boundary

LIMITS = QueueLimits(1_000_000, 1 << 40, 0.0)


def _crashed_store(store_path: str, journal_dir: str) -> None:
    """Items 1..3 durable, 4..6 only in the journal, then the process 'dies' (nothing closed)."""
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
    for i in range(1, 4):
        s.append("q", b"item-%d" % i, 1.0)
    s.flush(1.0)
    for i in range(4, 7):
        s.append("q", b"item-%d" % i, 2.0)
    s.abandon()


def _reopen(store_path: str, journal_dir: str) -> tuple[list[bytes], QueueStore]:
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    return [item for _seq, item in s.peek("q", 0, 100)], s


def _last_segment(journal_dir: str) -> str:
    return sorted(glob.glob(os.path.join(journal_dir, "*", "q.*.wal")))[-1]


def _forged_append(segment: str, store_id: bytes, key: bytes, seq: int, payload: bytes) -> bytes:
    """An append record for ``seq`` built as the router builds one, under ``key``."""
    body = struct.pack("<BQQd", 2, 1, seq, time.time()) + payload
    gen = int(os.path.basename(segment).split(".")[1], 16)
    offset = os.path.getsize(segment)
    mac = hashlib.blake2b(key=key, digest_size=16, salt=store_id, person=b"q")
    mac.update(struct.pack("<QQ", gen, offset) + body)
    return struct.pack("<I16s", len(body), mac.digest()) + body


def test_a_symlinked_journal_dir_is_refused(store_path: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(JournalDirError, match="symbolic link"):
        QueueStore.open(StoreOptions(path=store_path, journal_dir=str(link)), 0.0, time.time())
    assert list(target.iterdir()) == []  # nothing written through the link


def test_a_journal_dir_others_can_write_in_is_refused(store_path: str, tmp_path: Path) -> None:
    jd = tmp_path / "j"
    jd.mkdir()
    jd.chmod(0o777)
    with pytest.raises(JournalDirError, match="mode 777"):
        QueueStore.open(StoreOptions(path=store_path, journal_dir=str(jd)), 0.0, time.time())
    with pytest.raises(JournalDirError, match="mode 777"):
        PersistStore.open(PersistOptions(path=os.path.join(str(tmp_path), "persist"), journal_dir=str(jd)), 0.0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_journal_dir_of_another_user_is_refused(store_path: str, tmp_path: Path) -> None:
    jd = tmp_path / "j"
    jd.mkdir(mode=0o700)
    os.chown(jd, 65534, 65534)
    with pytest.raises(JournalDirError, match="owned by uid 65534"):
        prepare_journal_dir(str(jd))
    with pytest.raises(JournalDirError, match="owned by uid 65534"):
        QueueStore.open(StoreOptions(path=store_path, journal_dir=str(jd)), 0.0, time.time())


def test_a_journal_dir_only_readable_by_others_is_narrowed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    jd = tmp_path / "j"
    jd.mkdir()
    jd.chmod(0o755)
    prepare_journal_dir(str(jd))
    assert stat.S_IMODE(jd.stat().st_mode) == 0o700
    assert "event=journal_dir_mode_tightened" in caplog.text


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_journal_dir_key_and_segments_are_private_whatever_the_umask(store_path: str, tmp_path: Path,
                                                                      umask: int) -> None:
    jd = tmp_path / "shm" / "wavemq-edge-1000"
    old = os.umask(umask)
    try:
        s = QueueStore.open(StoreOptions(path=store_path, journal_dir=str(jd)), 0.0, time.time())
        s.create_queue("q", QueueKind.TRUNK, LIMITS, 0.0)
        s.append("q", b"x", 0.0)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [jd, *jd.rglob("*")]}
    s.close(0.0)
    assert modes.pop("wavemq-edge-1000") == 0o700
    assert modes.pop(KEY_FILE) == 0o600
    assert modes and all(m in (0o700, 0o600) for m in modes.values()), modes


def test_a_forged_record_is_rejected_counted_and_not_replayed(store_path: str, journal_dir: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Someone who can write the journal but does not hold the per-boot key appends a well-formed
    record for the next sequence: it is not replayed, and it is counted and logged."""
    _crashed_store(store_path, journal_dir)
    seg = _last_segment(journal_dir)
    store_id = bytes.fromhex(os.path.basename(os.path.dirname(seg)))
    with open(seg, "ab") as f:
        f.write(_forged_append(seg, store_id, os.urandom(32), 7, b"forged"))
    items, s = _reopen(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 7)]  # the genuine ones, not the forged one
    assert s.journal_report.rejected == 1
    assert "event=journal_record_rejected" in caplog.text
    s.close(3.0)


def test_a_record_made_with_the_real_key_is_replayed(store_path: str, journal_dir: str) -> None:
    """The control of the test above: the same record under the key in journal.key is accepted, so
    the rejection is the MAC's doing."""
    _crashed_store(store_path, journal_dir)
    seg = _last_segment(journal_dir)
    store_id = bytes.fromhex(os.path.basename(os.path.dirname(seg)))
    key = (Path(journal_dir) / KEY_FILE).read_bytes()[16:]
    with open(seg, "ab") as f:
        f.write(_forged_append(seg, store_id, key, 7, b"item-7"))
    items, s = _reopen(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 8)]
    assert s.journal_report.rejected == 0
    s.close(3.0)


@pytest.mark.parametrize("tamper", ["other_boot", "world_readable"])
def test_a_key_file_not_to_trust_is_replaced(store_path: str, journal_dir: str, tamper: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """A key of another boot, or one others could read, is replaced; what was written under it is not
    replayed (the durable state is intact)."""
    _crashed_store(store_path, journal_dir)
    key_file = Path(journal_dir) / KEY_FILE
    if tamper == "other_boot":
        key_file.write_bytes(b"\x42" * 16 + key_file.read_bytes()[16:])
    else:
        key_file.chmod(0o644)
    items, s = _reopen(store_path, journal_dir)
    assert items == [b"item-%d" % i for i in range(1, 4)]
    assert s.journal_report.rejected == 1 and s.journal_report.corrupt
    assert "event=journal_key_replaced" in caplog.text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    s.close(3.0)


def test_routers_sharing_a_journal_dir_share_one_key(tmp_path: Path) -> None:
    """Two routers on one machine with the default journal directory start at once: both must end up
    with the key in the file, or one's records would be rejected after its next crash."""
    jd = tmp_path / "j"
    prepare_journal_dir(str(jd))
    ctx = multiprocessing.get_context("fork")
    for _round in range(20):  # a race: without the lock, about one run in three of these rounds loses it
        (jd / KEY_FILE).unlink(missing_ok=True)
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_key_after_barrier, args=(str(jd), barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = {results.get(timeout=30) for _ in procs}
        for p in procs:
            p.join(timeout=30)
        assert keys == {(jd / KEY_FILE).read_bytes()[16:]}


def _key_after_barrier(jd: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=30)
    results.put(journal_key(jd, b"\x01" * 16))
