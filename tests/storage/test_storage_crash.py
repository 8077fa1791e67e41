"""Crash test: SIGKILL a writer at random moments; every accepted item must survive, once, in order.

The writer (``storage_crash_writer.py``) prints a number only after ``append`` returned. We kill it
at a random moment (before, during or after a flush in its worker thread), reopen the store in this
process and check that the items form one gap-free sequence 1..N with N >= the last number reported.
The same store and journal are reused across trials, so later trials also recover from journals that
earlier recoveries left (torn records, segments not yet covered by a flush).

``WAVEMQ_CRASH_TRIALS`` sets the number of trials (default 20).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from wavemq_edge.storage import QueueStore, StoreOptions

WRITER = os.path.join(os.path.dirname(__file__), "storage_crash_writer.py")
TRIALS = int(os.environ.get("WAVEMQ_CRASH_TRIALS", "20"))


def _numbers(store: QueueStore) -> list[int]:
    tail = store.stats("crash").tail
    items = store.peek("crash", 0, tail + 1)
    return [int(item.split(b":")[0]) for _seq, item in items]


def _run_and_kill(store_path: str, journal_dir: str, seed: int, rng: random.Random) -> int:
    proc = subprocess.Popen(
        [sys.executable, WRITER, store_path, journal_dir, str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == b"READY\n", (line, proc.stderr.read() if proc.stderr else b"")
    time.sleep(rng.uniform(0.01, 0.3))  # not synchronisation: the random moment of the kill is the fault
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    lines = out.split(b"\n")
    # The last line may be cut mid-number by the kill: only complete lines were reported.
    reported = [int(x) for x in lines[:-1] if x]
    return reported[-1] if reported else 0


@pytest.mark.timeout(600)
def test_sigkill_loses_no_accepted_item(store_path: str, journal_dir: str) -> None:
    rng = random.Random(int(os.environ.get("WAVEMQ_CRASH_SEED", "4")))
    last_reported = 0
    for trial in range(TRIALS):
        reported = _run_and_kill(store_path, journal_dir, trial, rng)
        last_reported = max(last_reported, reported)
        store = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), now=0.0, wall_time=time.time())
        try:
            numbers = _numbers(store)
            report = store.journal_report
        finally:
            store.abandon()  # leave the journal exactly as a crash would, for the next trial
        assert not report.corrupt, (trial, report)
        assert numbers == list(range(1, len(numbers) + 1)), f"trial {trial}: gap, duplicate or reorder"
        assert len(numbers) >= last_reported, f"trial {trial}: accepted {last_reported}, found {len(numbers)}"
    assert last_reported > 0


def test_reboot_keeps_a_consistent_flushed_prefix(store_path: str, journal_dir: str) -> None:
    """A power cut/reboot (the tmpfs journal is gone): the store opens, uncorrupted, with a gap-free
    prefix of what was accepted; at most the last flush window is missing."""
    rng = random.Random(7)
    reported = _run_and_kill(store_path, journal_dir, 1, rng)
    shutil.rmtree(journal_dir)
    os.makedirs(journal_dir)
    store = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), now=0.0, wall_time=time.time())
    try:
        numbers = _numbers(store)
    finally:
        store.close(0.0)
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) <= reported + 1
