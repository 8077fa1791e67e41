"""Storage benchmark: rates, device bytes per item, fsyncs per minute, restart time and memory.

Run: ``.venv/bin/python ci/bench/bench_storage.py [--items N] [--dir DIR]``. Device bytes are read from
``/proc/self/io`` ``write_bytes`` (bytes this process caused to be written to a block device; tmpfs
journal writes are not counted). fsyncs are counted as LMDB write transactions (each commit is one
``fdatasync``; with ``strace`` installed, ``--strace`` cross-checks by counting the syscalls).
Figures go into wavemq_edge/storage/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import lmdb

from wavemq_edge.storage import QueueKind, QueueLimits, QueueStore, StoreOptions

PAYLOAD = 200
LIMITS = QueueLimits(1_000_000, 1 << 40, 0.0)


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return -1


def mem_status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0])  # kB
    return out


def fresh(base: str, name: str) -> tuple[str, str]:
    path = os.path.join(base, name)
    shutil.rmtree(path, ignore_errors=True)
    jdir = tempfile.mkdtemp(prefix="wmq-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    return path, jdir


def bench_in_window(base: str, items: int) -> dict[str, float]:
    """A consumer keeps up: append, peek a window of 100, ack it. Flush interval 30 s of loop time."""
    path, jdir = fresh(base, "inwindow")
    s = QueueStore.open(StoreOptions(path=path, journal_dir=jdir), 0.0, time.time())
    s.create_queue("sub", QueueKind.SUBSCRIPTION, LIMITS, 0.0)
    s.flush(0.0)
    payload = b"p" * PAYLOAD
    wb0 = write_bytes()
    t_append = t_ack = 0.0
    now = 0.0
    for _ in range(items // 100):
        t0 = time.perf_counter()
        for _ in range(100):
            seq = s.append("sub", payload, now)
        t1 = time.perf_counter()
        got = s.peek("sub", seq - 100, 100)
        s.ack("sub", got[-1][0], now)
        t_ack += time.perf_counter() - t1
        t_append += t1 - t0
        now += 0.01  # 10 000 items/s of loop time
        if s.flush_due(now):
            s.flush(now)
    s.flush(now)
    dev = write_bytes() - wb0
    stats = s.store_stats()
    s.close(now)
    shutil.rmtree(jdir, ignore_errors=True)
    return {
        "append_per_s": items / t_append,
        "peek_ack_per_s": items / t_ack,
        "device_bytes_per_item": dev / items,
        "commits": stats.commits,
        "flushes": stats.flushes,
        "empty_flushes": stats.empty_flushes,
    }


def bench_backlog(base: str, items: int) -> dict[str, float]:
    """Nobody consumes: everything must reach the card once, in batches."""
    path, jdir = fresh(base, "backlog")
    s = QueueStore.open(StoreOptions(path=path, journal_dir=jdir), 0.0, time.time())
    s.create_queue("trunk", QueueKind.TRUNK, LIMITS, 0.0)
    s.flush(0.0)
    payload = b"b" * PAYLOAD
    wb0 = write_bytes()
    c0 = s.store_stats().commits
    now = 0.0
    t0 = time.perf_counter()
    for _ in range(items):
        s.append("trunk", payload, now)
        now += 0.001  # 1000 items/s of loop time
        if s.flush_due(now):
            s.flush(now)
    s.flush(now)
    elapsed = time.perf_counter() - t0
    dev = write_bytes() - wb0
    commits = s.store_stats().commits - c0
    # drain with acks (deletes cost writes too)
    wb1 = write_bytes()
    t1 = time.perf_counter()
    after = 0
    while True:
        got = s.peek("trunk", after, 1000)
        if not got:
            break
        after = got[-1][0]
        s.ack("trunk", after, now)
        now += 1.0
        if s.flush_due(now):
            s.flush(now)
    s.flush(now)
    drain = time.perf_counter() - t1
    dev_drain = write_bytes() - wb1
    s.close(now)
    shutil.rmtree(jdir, ignore_errors=True)
    return {
        "append_incl_flush_per_s": items / elapsed,
        "device_bytes_per_item_write": dev / items,
        "device_bytes_per_item_ack_delete": dev_drain / items,
        "drain_peek_ack_per_s": items / drain,
        "commits_for_backlog": commits,
        "simulated_minutes": now / 60.0,
    }


def bench_fsyncs_per_minute(base: str) -> dict[str, float]:
    """Steady site load: 50 msgs/s of 200 bytes, half delivered in-window, half to a slow trunk,
    10 simulated minutes."""
    path, jdir = fresh(base, "steady")
    s = QueueStore.open(StoreOptions(path=path, journal_dir=jdir), 0.0, time.time())
    s.create_queue("sub", QueueKind.SUBSCRIPTION, LIMITS, 0.0)
    s.create_queue("trunk", QueueKind.TRUNK, LIMITS, 0.0)
    s.flush(0.0)
    c0 = s.store_stats().commits
    payload = b"s" * PAYLOAD
    now = 0.0
    minutes = 10
    for tick in range(minutes * 60 * 50):
        now = tick / 50.0
        seq = s.append("sub", payload, now)
        s.ack("sub", seq, now)
        s.append("trunk", payload, now)
        if s.flush_due(now):
            s.flush(now)
    commits = s.store_stats().commits - c0
    s.close(now)
    shutil.rmtree(jdir, ignore_errors=True)
    return {"fsyncs_per_minute": commits / minutes}


def build_backlog(path: str, jdir: str, items: int) -> None:
    s = QueueStore.open(StoreOptions(path=path, journal_dir=jdir), 0.0, time.time())
    s.create_queue("trunk", QueueKind.TRUNK, QueueLimits(1_000_000, 1 << 40), 0.0)
    payload = b"r" * PAYLOAD
    for _ in range(items):
        s.append("trunk", payload, 0.0)
        if s.flush_due(0.0):
            s.flush(0.0)
    s.close(0.0)


def restart_child(path: str, jdir: str) -> None:
    before = mem_status()
    t0 = time.perf_counter()
    s = QueueStore.open(StoreOptions(path=path, journal_dir=jdir), 0.0, time.time())
    startup = time.perf_counter() - t0
    after_open = mem_status()
    depth = s.stats("trunk").depth
    # a consumer reads the first 10 000 items from disk
    after = 0
    for _ in range(10):
        got = s.peek("trunk", after, 1000)
        after = got[-1][0]
    after_read = mem_status()
    s.close(0.0)
    print(
        json.dumps(
            {
                "startup_s": startup,
                "depth": depth,
                "before": before,
                "after_open": after_open,
                "after_reading_10k": after_read,
            }
        )
    )


def bench_restart(base: str, items: int) -> dict[str, object]:
    path, jdir = fresh(base, "restart")
    build_backlog(path, jdir, items)
    out = subprocess.run(
        [sys.executable, __file__, "--restart-child", path, jdir], check=True, capture_output=True, text=True
    ).stdout
    res: dict[str, object] = json.loads(out)
    shutil.rmtree(jdir, ignore_errors=True)
    return res


def bench_layout(base: str, queues: int, deletes: bool, rounds: int = 20, per_round: int = 2000) -> dict[str, float]:
    """The measured choice: one named database per queue (append=True) vs one shared keyspace
    (queue id | seq). Each round is one synced write transaction adding ``per_round`` items spread
    over ``queues`` queues and, with ``deletes``, deleting the round before the previous one's items
    (a consumer acked them)."""
    results: dict[str, float] = {}
    payload = b"l" * PAYLOAD
    for layout in ("db_per_queue", "shared"):
        path = os.path.join(base, "layout-" + layout)
        shutil.rmtree(path, ignore_errors=True)
        env = lmdb.open(path, map_size=1 << 30, max_dbs=queues + 2, sync=True, metasync=True)
        dbs = [env.open_db(b"q.%d" % q) for q in range(queues)] if layout == "db_per_queue" else []
        shared = env.open_db(b"shared")
        seqs = [1] * queues
        wb0 = write_bytes()
        t0 = time.perf_counter()
        n = 0
        for r in range(rounds):
            with env.begin(write=True) as txn:
                for q in range(queues):
                    k = per_round // queues
                    start = seqs[q]
                    if layout == "db_per_queue":
                        cur = txn.cursor(db=dbs[q])
                        if deletes and r >= 2:
                            lo = struct.pack(">Q", start - 2 * k)
                            hi = struct.pack(">Q", start - k)
                            if cur.set_range(lo):
                                while cur.key() and cur.key() < hi and cur.delete():
                                    pass
                        cur.putmulti([(struct.pack(">Q", s), payload) for s in range(start, start + k)], append=True)
                    else:
                        cur = txn.cursor(db=shared)
                        if deletes and r >= 2:
                            lo = struct.pack(">IQ", q, start - 2 * k)
                            hi = struct.pack(">IQ", q, start - k)
                            if cur.set_range(lo):
                                while cur.key() and cur.key() < hi and cur.delete():
                                    pass
                        cur.putmulti([(struct.pack(">IQ", q, s), payload) for s in range(start, start + k)])
                    seqs[q] = start + k
                    n += k
        results[layout + "_device_bytes_per_item"] = (write_bytes() - wb0) / n
        results[layout + "_items_per_s"] = n / (time.perf_counter() - t0)
        env.close()
        shutil.rmtree(path, ignore_errors=True)
    return results


def strace_fsyncs(base: str) -> str:
    if shutil.which("strace") is None:
        return "strace not installed"
    path, jdir = fresh(base, "strace")
    code = (
        "import time,sys;from wavemq_edge.storage import *;"
        f"s=QueueStore.open(StoreOptions(path={path!r},journal_dir={jdir!r}),0.0,time.time());"
        "s.create_queue('t',QueueKind.TRUNK,QueueLimits(10**6,1<<40),0.0);"
        "[(s.append('t',b'x'*200,i/50), s.flush_due(i/50) and s.flush(i/50)) for i in range(50*600)];"
        "s.close(600.0)"
    )
    proc = subprocess.run(
        ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync,msync,sync_file_range", sys.executable, "-c", code],
        capture_output=True,
        text=True,
    )
    shutil.rmtree(jdir, ignore_errors=True)
    lines = [ln for ln in proc.stderr.splitlines() if "sync" in ln or "total" in ln]
    return " | ".join(" ".join(ln.split()) for ln in lines) or proc.stderr[-300:]


def main() -> None:
    if len(sys.argv) >= 4 and sys.argv[1] == "--restart-child":
        restart_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dir", default=None, help="directory on the device to measure (default: a temp dir)")
    ap.add_argument("--strace", action="store_true", help="also count sync syscalls with strace")
    args = ap.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="wmq-bench-")
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    print(
        f"machine: {platform.machine()} nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
        f"lmdb={lmdb.__version__} dir={base}"
    )
    for name, fn in [
        ("in_window", lambda: bench_in_window(base, args.items)),
        ("backlog", lambda: bench_backlog(base, args.items)),
        ("steady_50_per_s", lambda: bench_fsyncs_per_minute(base)),
        ("restart_100k", lambda: bench_restart(base, args.items)),
        ("layout_1_queue_append", lambda: bench_layout(base, 1, False)),
        ("layout_50_queues_append", lambda: bench_layout(base, 50, False)),
        ("layout_50_queues_append_and_ack", lambda: bench_layout(base, 50, True)),
        ("layout_500_queues_append_and_ack", lambda: bench_layout(base, 500, True)),
    ]:
        result = fn()
        print(f"{name}: " + json.dumps(result, default=str))
    if args.strace:
        print("strace (10 simulated minutes, 50 items/s): " + strace_fsyncs(base))
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
