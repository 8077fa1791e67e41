"""Clean restart with a 100 000-item backlog: every item survives, in order; startup time printed. A
restart after a kill -9 whose journal is gone (a reboot) says so once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest

from wavemq_edge.storage import TRUNK_LIMITS, QueueKind, QueueStore, StoreOptions

ITEMS = 100_000


def test_restart_with_100k_queued_items(store_path: str, journal_dir: str) -> None:
    opts = StoreOptions(path=store_path, journal_dir=journal_dir)
    s = QueueStore.open(opts, 0.0, time.time())
    s.create_queue("upstream-ns", QueueKind.TRUNK, TRUNK_LIMITS, 0.0)
    s.create_queue("sub", QueueKind.SUBSCRIPTION, TRUNK_LIMITS, 0.0)
    now = 0.0
    for i in range(ITEMS):
        s.append("upstream-ns", b"%08d" % i + b"." * 92, now)
        if s.flush_due(now):
            s.flush(now)
    s.append("sub", b"one", now)
    s.close(now)

    t0 = time.perf_counter()
    s = QueueStore.open(opts, 0.0, time.time())
    startup_s = time.perf_counter() - t0
    print(f"\nstartup with {ITEMS} queued items: {startup_s * 1000:.1f} ms")
    st = s.stats("upstream-ns")
    assert st.depth == ITEMS and st.bytes == ITEMS * 100
    seen = 0
    after = 0
    while True:
        batch = s.peek("upstream-ns", after, 5000)
        if not batch:
            break
        for seq, item in batch:
            assert int(item[:8]) == seen
            seen += 1
            after = seq
    assert seen == ITEMS
    assert s.peek("sub", 0, 10) == [(1, b"one")]
    s.close(1.0)


_DIE_AFTER_APPEND = """
import os, signal, sys, time
from wavemq_edge.storage import QueueKind, QueueLimits, QueueStore, StoreOptions
s = QueueStore.open(StoreOptions(path=sys.argv[1], journal_dir=sys.argv[2]), 0.0, time.time())
s.create_queue("q", QueueKind.TRUNK, QueueLimits(1000, 1 << 30, 0.0), 0.0)
s.append("q", b"flushed", 0.0)
s.flush(0.0)
s.append("q", b"only in the journal", 1.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_writer(store_path: str, journal_dir: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _DIE_AFTER_APPEND, store_path, journal_dir], capture_output=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize("journal_kept", [False, True])
def test_a_kill_9_whose_journal_is_gone_is_logged_once(store_path: str, journal_dir: str, journal_kept: bool,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """kill -9, then a reboot wipes the tmpfs journal: the restart logs the lost flush window once (with
    the last flush's time); with the journal kept, the item is replayed and nothing is logged."""
    _killed_writer(store_path, journal_dir)
    if not journal_kept:
        shutil.rmtree(journal_dir)
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    items = [item for _seq, item in s.peek("q", 0, 10)]
    lost = [r.getMessage() for r in caplog.records if "event=unflushed_window_lost" in r.getMessage()]
    if journal_kept:
        assert items == [b"flushed", b"only in the journal"] and not lost
    else:
        assert items == [b"flushed"]
        assert len(lost) == 1 and f"store={store_path}" in lost[0] and "last_flush=20" in lost[0]
    s.close(2.0)
    caplog.clear()
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())  # closed cleanly
    s.close(0.0)
    assert "event=unflushed_window_lost" not in caplog.text
