"""`wavemq-edge check-store`: one line per store, ok with its counts or corrupt with LMDB's error; exit 0
when every store is sound, 1 when one is corrupt, 2 when there is nothing to check. It reads the stores
only (the data file is unchanged) and needs no router."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from wavemq_edge.storage import PersistOptions, PersistStore, QueueKind, QueueLimits, QueueStore, StoreOptions

EXE = Path(sys.executable).parent / "wavemq-edge"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), "check-store", *args], capture_output=True, text=True, timeout=60)


def _stores(tmp: Path) -> None:
    q = QueueStore.open(StoreOptions(path=str(tmp / "queue"), journal_dir=""), 0.0, time.time())
    q.create_queue("a", QueueKind.TRUNK, QueueLimits(1000, 1 << 30, 0.0), 0.0)
    q.create_queue("b", QueueKind.SUBSCRIPTION, QueueLimits(1000, 1 << 30, 0.0), 0.0)
    for i in range(5):
        q.append("a", b"x%d" % i, 0.0)
    q.close(0.0)
    p = PersistStore.open(PersistOptions(path=str(tmp / "persist"), journal_dir=""), 0.0)
    p.put("ns", "a/b", b"1")
    p.put("ns", "a/c", b"2")
    p.close(0.0)


def test_sound_stores_are_reported_with_their_counts(tmp_path: Path) -> None:
    _stores(tmp_path)
    before = (tmp_path / "queue" / "data.mdb").read_bytes()
    r = _check(str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'queue'}: ok (queue store): 2 queues, 5 items")
    assert lines[1].startswith(f"{tmp_path / 'persist'}: ok (persist store): 2 persisted messages")
    assert (tmp_path / "queue" / "data.mdb").read_bytes() == before


def test_a_damaged_store_is_reported_corrupt(tmp_path: Path) -> None:
    _stores(tmp_path)
    data = tmp_path / "persist" / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[0:4096] = bytes(4096)  # a zeroed meta page: LMDB says it is not an LMDB file
    raw[4096:8192] = bytes(4096)
    data.write_bytes(bytes(raw))
    r = _check(str(tmp_path / "queue"), str(tmp_path / "persist"))
    assert r.returncode == 1
    assert "ok (queue store)" in r.stdout
    assert f"{tmp_path / 'persist'}: corrupt" in r.stdout and "MDB_INVALID" in r.stdout


def test_the_stores_of_a_config_file(tmp_path: Path) -> None:
    _stores(tmp_path)
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[QueueConfig]\n  queueDataStore = "{tmp_path}/queue"\n'
                   f'[RoutingConfig]\n  PersistDataStore = "{tmp_path}/persist"\n')
    r = _check("--config", str(cfg))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stdout + r.stderr


def test_nothing_to_check_is_a_usage_error(tmp_path: Path) -> None:
    r = _check(str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1
