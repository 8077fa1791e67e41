"""Clean restart with a 100 000-item backlog: every item survives, in order; startup time printed."""

from __future__ import annotations

import time

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
