"""Subprocess for test_storage_crash.py: appends numbered items forever and prints each number on
stdout only after ``append`` returned (i.e. after the store accepted it). Flushes run in a worker
thread exactly as the asyncio router will run them, so kills land before, during and after commits.

usage: storage_crash_writer.py STORE_PATH JOURNAL_DIR SEED
"""

from __future__ import annotations

import random
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor

from wavemq_edge.storage import FlushOutcome, QueueKind, QueueLimits, QueueStore, StoreOptions
from wavemq_edge.storage.backend import FlushBatch


def main() -> None:
    path, journal_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    opts = StoreOptions(path=path, journal_dir=journal_dir, flush_interval_s=0.02, flush_bytes=64 * 1024)
    t0 = time.monotonic()
    store = QueueStore.open(opts, now=0.0, wall_time=time.time())
    store.create_queue("crash", QueueKind.TRUNK, QueueLimits(10_000_000, 1 << 40, 0.0), 0.0)
    last = store.peek("crash", store.stats("crash").tail - 2, 1)
    n = int(last[0][1].split(b":")[0]) if last else 0
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    pool = ThreadPoolExecutor(1)
    in_flight: tuple[FlushBatch, Future[FlushOutcome]] | None = None
    while True:
        now = time.monotonic() - t0
        n += 1
        store.append("crash", b"%d:" % n + b"x" * rng.randrange(0, 300), now)
        out.write(f"{n}\n")
        out.flush()
        if in_flight is not None and in_flight[1].done():
            store.complete_flush(in_flight[0], in_flight[1].result(), now)
            in_flight = None
        if in_flight is None and store.flush_due(now):
            batch = store.prepare_flush(now)
            if batch is not None:
                in_flight = (batch, pool.submit(store.write_flush, batch))


if __name__ == "__main__":
    main()
