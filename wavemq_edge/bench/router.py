"""``wavemq-edge bench``: secured publish -> deliver throughput and latency of a real router process.

The router runs as its own process, pinned to CPU 0 when ``taskset`` exists and the machine has two or
more CPUs; the publisher and subscriber run as separate processes pinned to the other CPU(s), so the
client is not what is measured. In the same run the bench measures this machine's single-core Ed25519
verify rate, because the router's ceiling is one signature check per message: the ratio of the two is
comparable across machines where absolute rates are not.

Figures: messages/s delivered, latency p50/p99 (publisher's signing timestamp -> subscriber's receipt,
same wall clock), router CPU seconds per message, router RSS and RssAnon idle and after the run, and the
RSS added by 1000 idle subscriptions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import psutil

from ..wave import PSET_WAVEMQ, MemoryStore, Statement, create_entity
from .common import (
    DAY_S,
    BenchError,
    BenchUsageError,
    cpu_seconds_between,
    grant_and_prove,
    machine_summary,
    pin_command,
    process_memory_mb,
    start_router,
    start_worker,
    stop_processes,
    tmpfs_mkdtemp,
    verify_rate,
    wait_for_file,
    worker_result,
)

__all__ = ["run_router_bench"]

#: Seconds the router is left alone before a memory sample (its start-up allocations settle).
SETTLE_S: Final = 0.5
#: Seconds the ``subs`` worker may take to open its 1000 subscriptions.
SUBS_READY_TIMEOUT_S: Final = 120.0


def _setup(d: Path) -> tuple[Path, Path]:
    now = time.time()
    ns = create_entity(now - 60, DAY_S)
    svc = create_entity(now - 60, DAY_S)
    store = MemoryStore()
    store.put_entity(ns.entity)
    store.put_entity(svc.entity)
    grant = Statement(PSET_WAVEMQ, frozenset({"publish", "subscribe"}), ("*",))
    grant_and_prove(store, ns, svc, [grant], now, proof=d / "proof.pem", secret=d / "service.ent")
    (d / "ns.id").write_bytes(ns.id)
    config = d / "wavemq.toml"
    journal = tmpfs_mkdtemp("wavemq-bench-journal-", d)
    (d / "journal.path").write_text(str(journal))
    config.write_text(f"""
[WaveConfig]
  database = "{d}/wave"
[QueueConfig]
  queueDataStore = "{d}/queue"
  journalDir = "{d}/journal"
[LocalConfig]
  listenAddr = "127.0.0.1:0"
[RoutingConfig]
  PersistDataStore = "{d}/persist"
  RouterEntityFile = "{d}/router.ent"
[LimitsConfig]
  maxConnections = 64
  maxSubscriptionsPerConnection = 300
""")
    return config, d / "service.ent"


def _throughput(args: argparse.Namespace, router: subprocess.Popen[bytes], address: str, d: Path,
                entity: Path, rate: float) -> dict[str, Any]:
    """Publishers at full speed into one subscriber: throughput, latency under load, CPU and memory."""
    rp = psutil.Process(router.pid)
    time.sleep(SETTLE_S)
    idle_rss, idle_anon = process_memory_mb(router.pid)
    sub = start_worker("sub", args, address, d, entity, messages=args.messages * args.publishers)
    wait_for_file(d / "sub-bench.ready", sub)
    cpu0 = rp.cpu_times()
    t0 = time.perf_counter()
    pubs = [start_worker("pub", args, address, d, entity, tag=str(i)) for i in range(args.publishers)]
    pub_results = [worker_result(p) for p in pubs]
    sub_result = worker_result(sub)
    wall = time.perf_counter() - t0
    router_cpu = cpu_seconds_between(cpu0, rp.cpu_times())
    loaded_rss, loaded_anon = process_memory_mb(router.pid)
    delivered = int(sub_result["received"])
    figures: dict[str, Any] = {
        "messages": delivered,
        "payload_bytes": args.payload,
        "msgs_per_s": delivered / sub_result["seconds"] if sub_result["seconds"] > 0 else 0.0,
        "end_to_end_msgs_per_s": delivered / wall,
        "publisher_seconds": max(r["seconds"] for r in pub_results),
        "latency_p50_ms": sub_result["p50_ms"],
        "latency_p99_ms": sub_result["p99_ms"],
        "router_cpu_s": router_cpu,
        "router_cpu_us_per_msg": 1e6 * router_cpu / max(1, delivered),
        "router_cpu_utilisation": router_cpu / wall,
        "router_idle_rss_mb": idle_rss,
        "router_idle_rss_anon_mb": idle_anon,
        "router_loaded_rss_mb": loaded_rss,
        "router_loaded_rss_anon_mb": loaded_anon,
        "ed25519_verify_per_s_one_core": rate,
        "pinned": bool(pin_command("0", args.no_pin)),
    }
    figures["ratio_to_verify_rate"] = figures["msgs_per_s"] / rate
    figures["ratio_cpu_bound"] = (1e6 / figures["router_cpu_us_per_msg"]) / rate
    return figures


def _paced_latency(args: argparse.Namespace, address: str, d: Path, entity: Path) -> dict[str, Any]:
    """One publisher at ``--latency-rate`` msg/s, below capacity: latency of the router, not of a queue."""
    n = max(100, args.latency_rate * 5)
    (d / "sub-bench.ready").unlink()
    lsub = start_worker("sub", args, address, d, entity, messages=n)
    wait_for_file(d / "sub-bench.ready", lsub)
    lpub = start_worker("pub", args, address, d, entity, tag="lat", messages=n, rate=args.latency_rate)
    worker_result(lpub)
    lat = worker_result(lsub)
    return {
        "paced_rate_msgs_per_s": args.latency_rate,
        "paced_latency_p50_ms": lat["p50_ms"],
        "paced_latency_p99_ms": lat["p99_ms"],
    }


def _idle_subscriptions(args: argparse.Namespace, router: subprocess.Popen[bytes], address: str, d: Path,
                        entity: Path) -> dict[str, Any]:
    """The router memory added by 1000 idle durable subscriptions."""
    before_rss, before_anon = process_memory_mb(router.pid)
    holder = start_worker("subs", args, address, d, entity)
    wait_for_file(d / "subs.ready", holder, timeout=SUBS_READY_TIMEOUT_S)
    time.sleep(SETTLE_S)
    after_rss, after_anon = process_memory_mb(router.pid)
    (d / "subs.stop").write_text("1")
    worker_result(holder)
    return {
        "subs_1000_rss_added_mb": after_rss - before_rss,
        "subs_1000_rss_anon_added_mb": after_anon - before_anon,
    }


def _orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="wavemq-bench-"))
    router: subprocess.Popen[bytes] | None = None
    try:
        config, entity = _setup(d)
        rate = verify_rate()
        router, address = start_router(config, args, d / "router.log")
        figures = _throughput(args, router, address, d, entity, rate)
        if args.latency_rate > 0:
            figures.update(_paced_latency(args, address, d, entity))
        if not args.skip_subscriptions:
            figures.update(_idle_subscriptions(args, router, address, d, entity))
        return figures
    finally:
        if router is not None:
            stop_processes([router])
        journal_note = d / "journal.path"
        if journal_note.exists():
            shutil.rmtree(journal_note.read_text(), ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


def _report(figures: dict[str, Any]) -> str:
    f = figures
    lines = [
        f"machine: {machine_summary()}, "
        f"router {'pinned to CPU 0, clients to the others' if f['pinned'] else 'not pinned'}",
        f"messages delivered         {f['messages']} x {f['payload_bytes']} B payload",
        f"throughput                 {f['msgs_per_s']:,.0f} msg/s (end to end incl. ramp: "
        f"{f['end_to_end_msgs_per_s']:,.0f})",
        f"latency at full load       p50 {f['latency_p50_ms']:.1f} ms / p99 {f['latency_p99_ms']:.1f} ms "
        "(includes queueing in the saturated publisher)",
        f"router CPU                 {f['router_cpu_us_per_msg']:.0f} us/msg, "
        f"{100 * f['router_cpu_utilisation']:.0f}% of one core",
        f"router RSS idle / loaded   {f['router_idle_rss_mb']:.1f} MB / {f['router_loaded_rss_mb']:.1f} MB "
        f"(RssAnon {f['router_idle_rss_anon_mb']:.1f} / {f['router_loaded_rss_anon_mb']:.1f} MB)",
        f"Ed25519 verify, one core   {f['ed25519_verify_per_s_one_core']:,.0f} /s",
        f"ratio to verify rate       {f['ratio_to_verify_rate']:.2f} (CPU-bound estimate "
        f"{f['ratio_cpu_bound']:.2f})",
    ]
    if "paced_latency_p50_ms" in f:
        lines.append(f"latency at {f['paced_rate_msgs_per_s']} msg/s    p50 {f['paced_latency_p50_ms']:.1f} ms / "
                     f"p99 {f['paced_latency_p99_ms']:.1f} ms (publish signed -> delivered)")
    if "subs_1000_rss_added_mb" in f:
        lines.append(f"1000 subscriptions add     {f['subs_1000_rss_added_mb']:.1f} MB RSS "
                     f"({f['subs_1000_rss_anon_added_mb']:.1f} MB RssAnon)")
    return "\n".join(lines)


def run_router_bench(args: argparse.Namespace) -> None:
    """Validate the flags, run the bench, print the figures; raise :class:`.BenchError` on failure."""
    if args.messages < 1 or args.concurrency < 1 or args.publishers < 1 or args.payload < 0:
        raise BenchUsageError("wavemq-edge bench: --messages, --concurrency and --publishers must be >= 1, "
                              "--payload >= 0")
    try:
        figures = _orchestrate(args)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        raise BenchError(f"wavemq-edge bench: {exc}") from exc
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        print(_report(figures))
