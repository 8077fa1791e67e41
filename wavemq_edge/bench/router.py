"""``wavemq-edge bench``: what one router process costs per secured message, against the verify rate.

The router runs as its own process pinned to CPU 0; the load workers (:mod:`.workers`) run pinned to the
other CPU(s) and send pre-signed messages encoded once into frames (:mod:`.load`), so one client core
outruns the router and the figure is the router's: its CPU per message, read from ``/proc/PID/stat`` over
the measured window, and the capacity that implies (1e6 / CPU µs per message), beside this machine's
single-core Ed25519 verify rate measured on the same core in the same run (the router's ceiling is one
signature check per message, so the ratio is comparable across machines where absolute rates are not).

Each run starts a fresh router and measures, in order: idle RSS / RssAnon; the saturated publish ->
deliver phase (CPU per message, capacity, throughput, router utilisation, messages the subscriber's queue
dropped); a paced phase at ``--paced-rate`` msg/s (CPU per message, latency p50/p99 from the signed
timestamp to receipt, and disk bytes written per message delivered within the flush window, from
``/proc/PID/io``); a ``--backlog`` queued for an absent durable subscriber (RssAnon growth, then after
its drain); and the start time of a one-shot ``wavemq-edge pub`` and of ``wavemq-edge --help``.
``--runs`` repeats everything (default 3) and the report gives min / median / max of each figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..wave import PSET_WAVEMQ, MemoryStore, Statement, create_entity, format_id
from .common import (
    DAY_S,
    BenchError,
    grant_and_prove,
    router_status,
    status_int,
    subscription_depth,
    tmpfs_mkdtemp,
    verify_rate,
)
from .procs import POLL_S, Procs, server_cpus, wait_for_file, worker_result
from .procstat import cpu_seconds, io_write_bytes, memory_mb

__all__ = ["RouterRun", "bench_run", "measure_saturated", "one_run"]

#: Seconds the router is left alone before a memory sample (its start-up allocations settle).
SETTLE_S: Final = 0.5
#: Seconds a subscriber may lag behind its publishers' last reply before the router's queues are asked
#: whether anything is left to deliver.
QUIET_S: Final = 1.0
#: Seconds between two such status polls, and what one phase may take in all.
STATUS_POLL_S: Final = 0.25
PHASE_TIMEOUT_S: Final = 600.0
#: Seconds a worker may take to sign its messages, per 1000 messages (a Pi signs about 2000/s).
SIGN_S_PER_1000: Final = 2.0


@dataclass
class RouterRun:
    """One router of one run: its process, its address, and the files the workers need."""

    d: Path
    procs: Procs
    router: subprocess.Popen[bytes]
    address: str
    entity: Path
    ns_hash: str

    @property
    def status_address(self) -> str:
        """Full status (queue detail) is for the local operator: the run's Unix socket."""
        return f"unix:{self.d / 'agent.sock'}"


def _setup(d: Path) -> tuple[Path, str]:
    now = time.time()
    ns = create_entity(now - 60, DAY_S)
    svc = create_entity(now - 60, DAY_S)
    store = MemoryStore()
    store.put_entity(ns.entity)
    store.put_entity(svc.entity)
    grant = Statement(PSET_WAVEMQ, frozenset({"publish", "subscribe"}), ("*",))
    grant_and_prove(store, ns, svc, [grant], now, proof=d / "proof.pem", secret=d / "service.ent")
    (d / "ns.id").write_bytes(ns.id)
    return d / "service.ent", format_id(ns.id)


def _config(d: Path, journal: Path, args: argparse.Namespace) -> Path:
    config = d / "wavemq.toml"
    config.write_text(f"""
[WaveConfig]
  database = "{d}/wave"
[QueueConfig]
  queueDataStore = "{d}/queue"
  journalDir = "{journal}"
  flushInterval = {args.flush_interval}
  subscriptionQueueMaxLength = {args.queue_max}
  subscriptionQueueMaxSize = 1000
[LocalConfig]
  listenAddr = "127.0.0.1:0"
  unixSocket = "{d}/agent.sock"
[RoutingConfig]
  PersistDataStore = "{d}/persist"
  RouterEntityFile = "{d}/router.ent"
[LimitsConfig]
  maxConnections = 64
  maxSubscriptionsPerConnection = 300
[MetricsConfig]
  enabled = false
""")
    return config


@contextlib.contextmanager
def bench_run(args: argparse.Namespace) -> Iterator[RouterRun]:
    """A run directory, a tmpfs journal, and a started router; on the way out (whatever the way) every
    process of the run stopped by PID and both directories removed (``$WAVEMQ_BENCH_KEEP`` keeps the
    run directory)."""
    d = Path(tempfile.mkdtemp(prefix="wavemq-bench-"))
    journal = tmpfs_mkdtemp("wavemq-bench-journal-", d)
    try:
        with Procs(args) as procs:
            entity, ns_hash = _setup(d)
            router, address = procs.start_router(_config(d, journal, args), d / "router.log", profile=True)
            yield RouterRun(d, procs, router, address, entity, ns_hash)
    finally:
        shutil.rmtree(journal, ignore_errors=True)
        if os.environ.get("WAVEMQ_BENCH_KEEP"):
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def _sign_timeout(messages: int) -> float:
    return 30.0 + SIGN_S_PER_1000 * messages / 1000


def await_subscriber(run: RouterRun, sub: subprocess.Popen[str], prefix: str, deadline: float) -> dict[str, Any]:
    """The subscriber's figures once it has everything, or once the router has nothing left to deliver
    (what its queue dropped never comes: the subscriber is told to stop). Bounded by ``deadline``."""
    quiet_from = time.monotonic() + QUIET_S
    while sub.poll() is None and time.monotonic() < deadline:
        if time.monotonic() >= quiet_from:
            if subscription_depth(router_status(run.status_address)) == 0:
                (run.d / f"sub-{prefix}.stop").write_text("1")
                break
            time.sleep(STATUS_POLL_S)
        else:
            time.sleep(POLL_S)
    return worker_result(sub, timeout=max(5.0, deadline - time.monotonic()))


def _go(d: Path) -> None:
    (d / "go").write_text("1")


def _reset(d: Path, prefix: str) -> None:
    for name in ("go", f"sub-{prefix}.ready", f"sub-{prefix}.stop"):
        (d / name).unlink(missing_ok=True)


def measure_saturated(run: RouterRun, args: argparse.Namespace, messages: int,
                      prefix: str = "bench") -> dict[str, float]:
    """Publishers at full speed into one subscriber: the router's CPU per delivered message."""
    d, pid = run.d, run.router.pid
    _reset(d, prefix)
    total = messages * args.publishers
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    sub = run.procs.worker("sub", run.address, d, run.entity, messages=total, prefix=prefix)
    wait_for_file(d / f"sub-{prefix}.ready", sub)
    pubs = [run.procs.worker("pub", run.address, d, run.entity, messages=messages, tag=str(i), prefix=prefix)
            for i in range(args.publishers)]
    for i, p in enumerate(pubs):
        wait_for_file(d / f"pub-{prefix}-{i}.ready", p, timeout=_sign_timeout(messages))
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    _go(d)
    published = 0
    client_cpu = 0.0
    for p in pubs:
        r = worker_result(p, timeout=max(5.0, deadline - time.monotonic()))
        published += int(r["published"])
        client_cpu += float(r["cpu_s"])
        if r["refused"]:
            raise BenchError(f"wavemq-edge bench: the router refused {r['refused']} publishes: {r['first_refusal']}")
    sub_result = await_subscriber(run, sub, prefix, deadline)
    client_cpu += float(sub_result["cpu_s"])
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    delivered = int(sub_result["received"])
    if delivered == 0:
        raise BenchError("wavemq-edge bench: the subscriber received nothing")
    us = 1e6 * cpu / delivered
    return {
        "sat_messages": float(published),
        "sat_delivered": float(delivered),
        # what the subscriber's queue dropped (the ephemeral queue and its drop counters end with it)
        "sat_dropped": float(published - delivered),
        "sat_cpu_us": us,
        "sat_capacity": 1e6 / us,
        "sat_throughput": delivered / wall,
        "sat_router_busy": cpu / wall,
        "sat_client_cpu_us": 1e6 * client_cpu / delivered,
    }


def _paced(run: RouterRun, args: argparse.Namespace) -> dict[str, float]:
    """One publisher at ``--paced-rate`` msg/s, below capacity: CPU per message, latency, disk bytes."""
    d, pid, prefix = run.d, run.router.pid, "paced"
    _reset(d, prefix)
    n = max(100, int(args.paced_rate * args.paced_seconds))
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    # durable (an identifier): the subscriber's exit does not remove its queue inside the measured window
    sub = run.procs.worker("sub", run.address, d, run.entity, messages=n, prefix=prefix, latency=True,
                           identifier="paced")
    wait_for_file(d / f"sub-{prefix}.ready", sub)
    # the new subscription (and the previous phase's clean-up) are durable changes: their flush belongs
    # before the measured window, which counts only what delivering messages costs
    _await_flush(run, args, status_int(router_status(run.status_address), "flushes"))
    pub = run.procs.worker("pub", run.address, d, run.entity, messages=n, rate=args.paced_rate, prefix=prefix)
    wait_for_file(d / f"pub-{prefix}-0.ready", pub, timeout=_sign_timeout(n))
    flushes0 = status_int(router_status(run.status_address), "flushes")
    cpu0, io0 = cpu_seconds(pid), io_write_bytes(pid)
    _go(d)
    late_ms = float(worker_result(pub, timeout=max(5.0, deadline - time.monotonic()))["late_ms"])
    lat = await_subscriber(run, sub, prefix, deadline)
    cpu = cpu_seconds(pid) - cpu0
    _await_flush(run, args, flushes0)  # the window's writes reach the disk, or were never needed
    io1 = io_write_bytes(pid)
    delivered = max(1, int(lat["received"]))
    figures = {
        "paced_cpu_us": 1e6 * cpu / delivered,
        "paced_p50_ms": float(lat["p50_ms"]),
        "paced_p99_ms": float(lat["p99_ms"]),
        "paced_late_ms": late_ms,
    }
    if io0 is not None and io1 is not None:
        figures["flash_bytes_per_msg"] = (io1 - io0) / delivered
    return figures


def _backlog(run: RouterRun, args: argparse.Namespace) -> dict[str, float]:
    """RssAnon added by ``--backlog`` messages queued for an absent durable subscriber, and after it
    comes back and drains them."""
    d, pid, prefix = run.d, run.router.pid, "backlog"
    _reset(d, prefix)
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    worker_result(run.procs.worker("sub", run.address, d, run.entity, messages=0, prefix=prefix,
                                   identifier="absent"), timeout=60.0)  # subscribe, then go away
    time.sleep(SETTLE_S)
    anon0 = memory_mb(pid)[1]
    pub = run.procs.worker("pub", run.address, d, run.entity, messages=args.backlog, prefix=prefix)
    wait_for_file(d / f"pub-{prefix}-0.ready", pub, timeout=_sign_timeout(args.backlog))
    flushes0, io0 = status_int(router_status(run.status_address), "flushes"), io_write_bytes(pid)
    _go(d)
    worker_result(pub, timeout=max(5.0, deadline - time.monotonic()))
    time.sleep(SETTLE_S)
    anon1 = memory_mb(pid)[1]
    _await_flush(run, args, flushes0)
    io1 = io_write_bytes(pid)
    _reset(d, prefix)
    sub = run.procs.worker("sub", run.address, d, run.entity, messages=args.backlog, prefix=prefix,
                           identifier="absent")
    await_subscriber(run, sub, prefix, deadline)
    time.sleep(SETTLE_S)
    figures = {"backlog_anon_mb": anon1 - anon0, "backlog_drained_anon_mb": memory_mb(pid)[1] - anon0}
    if io0 is not None and io1 is not None:
        figures["backlog_bytes_per_msg"] = (io1 - io0) / args.backlog
    return figures


def _await_flush(run: RouterRun, args: argparse.Namespace, flushes0: int) -> None:
    """Wait (bounded: two flush intervals) until the router has flushed since ``flushes0``."""
    deadline = time.monotonic() + 2 * args.flush_interval + 5
    while status_int(router_status(run.status_address), "flushes") <= flushes0 and time.monotonic() < deadline:
        time.sleep(STATUS_POLL_S)


def _subscriptions(run: RouterRun) -> dict[str, float]:
    """The router memory 1000 idle durable subscriptions add."""
    before_rss, before_anon = memory_mb(run.router.pid)
    holder = run.procs.worker("subs", run.address, run.d, run.entity, messages=0)
    wait_for_file(run.d / "subs.ready", holder)
    time.sleep(SETTLE_S)
    after_rss, after_anon = memory_mb(run.router.pid)
    (run.d / "subs.stop").write_text("1")
    worker_result(holder, timeout=120.0)
    return {"subs_rss_mb": after_rss - before_rss, "subs_anon_mb": after_anon - before_anon}


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wavemq-edge bench: {' '.join(cmd[-3:])} failed: {done.stderr.decode()[-300:]}")
    return 1000 * (time.perf_counter() - t0)


def _start_times(run: RouterRun) -> dict[str, float]:
    """Wall milliseconds of a one-shot ``wavemq-edge pub`` (to this router) and of ``--help``."""
    script = Path(sys.executable).parent / "wavemq-edge"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "wavemq_edge"]
    pub = [*base, "pub", "--router", run.address, "--entity", str(run.entity), "--namespace", run.ns_hash,
           "--proof", str(run.d / "proof.pem"), "oneshot/t1", "21.5"]
    return {"start_pub_ms": _timed(pub), "start_help_ms": _timed([*base, "--help"])}


def one_run(args: argparse.Namespace) -> dict[str, float]:
    """Every figure of one run, against a fresh router."""
    figures = {"verify_per_s": verify_rate(cpus=server_cpus(args.no_pin))}
    figures["verify_us"] = 1e6 / figures["verify_per_s"]
    with bench_run(args) as run:
        time.sleep(SETTLE_S)
        figures["idle_rss_mb"], figures["idle_anon_mb"] = memory_mb(run.router.pid)
        figures.update(measure_saturated(run, args, args.messages))
        figures["sat_ratio"] = figures["sat_capacity"] / figures["verify_per_s"]
        if args.paced_rate > 0:
            figures.update(_paced(run, args))
        if args.backlog > 0:
            figures.update(_backlog(run, args))
        if args.subscriptions:
            figures.update(_subscriptions(run))
        figures.update(_start_times(run))
    return figures
