"""The bench as a whole, with real router processes: it ends when a subscriber's queue drops messages,
keeps the router's journal on tmpfs, stops every process it started on every way out, and runs
Mosquitto under the same load when it is installed."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from waiting import wait_until

from wavemq_edge.bench.common import tmpfs_root
from wavemq_edge.bench.compare import find_mosquitto, mosquitto_run

pytestmark = pytest.mark.timeout(180)

#: Seconds a short bench run may take on a loaded 2-core machine; the hang it guards against was forever.
RUN_BOUND_S = 120.0


def _procs_mentioning(path: Path) -> list[int]:
    """PIDs of processes (not this one) whose command line mentions ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(path).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _bench(tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "wavemq_edge", "bench", "--runs", "1", "--paced-rate", "0", "--backlog", "0",
            "--json", *extra]


def _run_bounded(cmd: list[str], tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``cmd`` within ``RUN_BOUND_S``; past it, the bench and every process of its run are killed (by
    PID: a killed bench cannot stop its own routers), then the test fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=RUN_BOUND_S)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *_procs_mentioning(tmp)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"the bench did not finish within {RUN_BOUND_S:.0f} s") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _env(tmp: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), **more}


def test_a_subscriber_queue_that_drops_does_not_hang_the_bench(tmp_path: Path) -> None:
    # a 20-message queue behind 256 unanswered publishes: most of them are dropped and never delivered
    t0 = time.monotonic()
    done = _run_bounded(_bench(tmp_path, "--messages", "1500", "--queue-max", "20"), tmp_path,
                        _env(tmp_path, WAVEMQ_BENCH_KEEP="1"))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - t0 < RUN_BOUND_S
    run = json.loads(done.stdout)["runs"][0]
    assert run["sat_dropped"] > 0
    assert run["sat_delivered"] + run["sat_dropped"] == 1500
    assert _procs_mentioning(tmp_path) == []
    # the run directory was kept: its router's journal was on tmpfs, not next to it under $TMPDIR
    (config,) = tmp_path.glob("wavemq-bench-*/wavemq.toml")
    journal = next(line.split('"')[1] for line in config.read_text().splitlines() if "journalDir" in line)
    root = tmpfs_root()
    assert root is not None and Path(journal).parent == root
    assert not Path(journal).exists()  # removed with the run


def test_a_terminated_bench_stops_every_process_it_started(tmp_path: Path) -> None:
    bench = subprocess.Popen(_bench(tmp_path, "--messages", "200000"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    try:
        # the router and a worker signing its 200 000 messages
        wait_until(lambda: len(_procs_mentioning(tmp_path)) >= 3, 60, "the bench's router and workers")
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(timeout=10)
    assert bench.returncode == 1
    assert "interrupted; every process it started was stopped" in err
    assert wait_until(lambda: _procs_mentioning(tmp_path) == [], 10, "no process of the bench left")


def test_compare_runs_mosquitto_under_the_same_load() -> None:
    broker = find_mosquitto()
    if broker is None:
        pytest.skip("mosquitto not installed")
    args = argparse.Namespace(messages=2000, publishers=1, payload=64, concurrency=256, no_pin=False)
    figures = mosquitto_run(args, broker)
    assert figures["mqtt_cpu_us"] > 0 and figures["mqtt_throughput"] > 0
