"""``wavemq-edge bench --tier``: a site's backlog drained to its designated router (DR).

A DR and a site run as processes (the DR pinned to CPU 0, everything else on the others); a small
gate between them stays closed while a publisher queues ``--messages`` at the site, then opens. The
bench reports how fast the backlog drains into the DR (its subscriber receives every message), the
latency of live messages published during the drain, the DR's CPU per message against this machine's
single-core Ed25519 verify rate, and the trunk's bytes on the wire per message (both directions,
framing and encryption included, from the site's uplink counters).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from ..client import Client
from ..wave import PSET_WAVEMQ, MemoryStore, Statement, create_entity, format_id
from .common import (
    DAY_S,
    BenchError,
    cpu_seconds_between,
    free_port,
    grant_and_prove,
    machine_summary,
    start_router,
    start_worker,
    stop_processes,
    tmpfs_mkdtemp,
    verify_rate,
    wait_for_file,
    worker_result,
)
from .proxy import FaultProxy

__all__ = ["run_tier_bench"]

#: Messages of the live lane published (at :data:`LIVE_RATE` msg/s) while the backlog drains.
LIVE_MESSAGES: Final = 200
LIVE_RATE: Final = 20
#: Seconds the backlog may take to be queued, and to drain: beyond an hour the run is broken.
DRAIN_TIMEOUT_S: Final = 3600.0
#: Seconds the live lane's workers may take to finish once the backlog has drained.
LIVE_TIMEOUT_S: Final = 600.0
#: Poll interval of the site's backlog while it drains.
DRAIN_POLL_S: Final = 0.2


@dataclass
class _Run:
    """The processes and the gate of one tier bench run, stopped together at the end."""

    d: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    gate: FaultProxy | None = None
    dr: subprocess.Popen[bytes] | None = None
    dr_addr: str = ""
    site_addr: str = ""


def _setup(d: Path) -> tuple[Path, Path, str]:
    now = time.time()
    ns, dr, svc, live = (create_entity(now - 60, DAY_S) for _ in range(4))
    store = MemoryStore()
    for e in (ns, dr, svc, live):
        store.put_entity(e.entity)
    grant = Statement(PSET_WAVEMQ, frozenset({"publish", "subscribe"}), ("*",))
    route = Statement(PSET_WAVEMQ, frozenset({"route"}), ("*",))
    grant_and_prove(store, ns, svc, [grant], now, proof=d / "proof.pem", secret=d / "service.ent")
    # live traffic comes from another service than the backlog (one publisher's own messages keep their order)
    (d / "live").mkdir()
    grant_and_prove(store, ns, live, [grant], now, proof=d / "live" / "proof.pem", secret=d / "live" / "live.ent")
    (d / "live" / "ns.id").write_bytes(ns.id)
    grant_and_prove(store, ns, dr, [route], now, proof=d / "route.pem", secret=d / "dr.ent")
    (d / "ns.id").write_bytes(ns.id)
    return d / "service.ent", d / "route.pem", format_id(ns.id)


def _config(d: Path, name: str, journal: Path, extra: str) -> Path:
    path = d / f"{name}.toml"
    path.write_text(f"""
[WaveConfig]
  database = "{d}/{name}-wave"
[QueueConfig]
  queueDataStore = "{d}/{name}-queue"
  journalDir = "{journal}/{name}"
  trunkingQueueMaxLength = 1000000
  subscriptionQueueMaxLength = 1000000
  subscriptionQueueMaxSize = 1000
[LocalConfig]
  listenAddr = "127.0.0.1:0"
[RoutingConfig]
  PersistDataStore = "{d}/{name}-persist"
  RouterEntityFile = "{d}/{name}.ent"
{extra}
""")
    return path


async def _uplink_status(address: str, d: Path) -> dict[str, Any]:
    async with await Client.connect(address, entity=d / "service.ent", proofs=[d / "proof.pem"],
                                    reconnect=False) as c:
        status = await c.status()
    uplinks = status.get("uplinks")
    return dict(uplinks[0]) if isinstance(uplinks, list) and uplinks else {}


def _start_routers(run: _Run, args: argparse.Namespace, journal: Path, route: Path, ns_hash: str) -> None:
    """The DR, the gate (closed: the uplink is down) in front of its peer port, and the site behind it."""
    d = run.d
    peer_port = free_port()
    dr_cfg = _config(d, "dr", journal, f"  DesignatedNamespaceFiles = [\"{route}\"]\n"
                                       f"[PeerConfig]\n  listenAddr = \"127.0.0.1:{peer_port}\"")
    run.dr, run.dr_addr = start_router(dr_cfg, args, d / "dr.log", "0", profile=False, log_level="INFO")
    run.procs.append(run.dr)
    run.gate = FaultProxy("127.0.0.1", peer_port, mode="cut")
    # reconnect quickly once the gate opens: the figure is the drain, not the backoff (default 30 s)
    site_cfg = _config(d, "site", journal, f"[[RoutingConfig.Router]]\n  Namespace = \"{ns_hash}\"\n"
                                           f"  Address = \"127.0.0.1:{run.gate.port}\"\n"
                                           "[PeerConfig]\n  reconnectMin = 0.1\n  reconnectMax = 0.5")
    site, run.site_addr = start_router(site_cfg, args, d / "site.log", "1" if (os.cpu_count() or 1) >= 2 else "0",
                                       profile=False, log_level="INFO")
    run.procs.append(site)


def _drain(run: _Run, args: argparse.Namespace, entity: Path, rate: float) -> dict[str, Any]:
    """Queue the backlog behind the closed gate, open it, and measure the drain and the live lane."""
    d = run.d
    assert run.dr is not None and run.gate is not None
    cloud = start_worker("sub", args, run.dr_addr, d, entity, messages=args.messages, identifier="cloud")
    live = start_worker("sub", args, run.dr_addr, d, entity, messages=LIVE_MESSAGES, prefix="live",
                        identifier="live")
    run.procs += [cloud, live]
    wait_for_file(d / "sub-bench.ready", cloud)
    wait_for_file(d / "sub-live.ready", live)
    t0 = time.perf_counter()
    worker_result(start_worker("pub", args, run.site_addr, d, entity), timeout=DRAIN_TIMEOUT_S)
    queued_s = time.perf_counter() - t0
    backlog = int(asyncio.run(_uplink_status(run.site_addr, d)).get("backlog", 0))
    rp = psutil.Process(run.dr.pid)
    cpu0 = rp.cpu_times()
    run.gate.set_mode("pass")
    t1 = time.perf_counter()
    live_pub = start_worker("pub", args, run.site_addr, d / "live", d / "live" / "live.ent",
                            messages=LIVE_MESSAGES, rate=LIVE_RATE, prefix="live")
    while int(asyncio.run(_uplink_status(run.site_addr, d)).get("backlog", 1)) > 0:
        if time.perf_counter() - t1 > DRAIN_TIMEOUT_S:
            raise RuntimeError("the backlog did not drain within an hour")
        time.sleep(DRAIN_POLL_S)
    drain_s = time.perf_counter() - t1  # every queued message is in the DR's store
    dr_cpu = cpu_seconds_between(cpu0, rp.cpu_times())
    cloud_result = worker_result(cloud, timeout=DRAIN_TIMEOUT_S)
    deliver_s = time.perf_counter() - t1
    worker_result(live_pub, timeout=LIVE_TIMEOUT_S)
    live_result = worker_result(live, timeout=LIVE_TIMEOUT_S)
    status = asyncio.run(_uplink_status(run.site_addr, d))
    acked = max(1, int(status.get("acked", 0)))
    wire = int(status.get("bytes_sent", 0)) + int(status.get("bytes_received", 0))
    return {
        "messages": args.messages,
        "payload_bytes": args.payload,
        "backlog_at_site": backlog,
        "site_accept_msgs_per_s": args.messages / queued_s,
        "drain_seconds": drain_s,
        "drain_msgs_per_s": backlog / drain_s,
        "dr_cpu_us_per_msg": 1e6 * dr_cpu / max(1, backlog),
        "ed25519_verify_per_s_one_core": rate,
        "drain_ratio_to_verify_rate": backlog / drain_s / rate,
        "delivered_to_dr_subscriber": int(cloud_result["received"]),
        "delivered_seconds": deliver_s,
        "live_lane_messages": int(status.get("live", 0)),
        "live_latency_p50_ms": live_result["p50_ms"],
        "live_latency_p99_ms": live_result["p99_ms"],
        "wire_bytes_per_message_both_directions": wire / acked,
    }


@contextlib.contextmanager
def _bench_run() -> Iterator[tuple[_Run, Path]]:
    """A run directory and a tmpfs journal directory; on exit every process stopped, the gate closed,
    and both directories removed (the run directory kept when ``$WAVEMQ_BENCH_KEEP`` is set)."""
    run = _Run(Path(tempfile.mkdtemp(prefix="wavemq-tierbench-")))
    journal = tmpfs_mkdtemp("wavemq-tierbench-journal-", run.d)
    try:
        yield run, journal
    finally:
        stop_processes(run.procs)
        if run.gate is not None:
            run.gate.stop()
        shutil.rmtree(journal, ignore_errors=True)
        if os.environ.get("WAVEMQ_BENCH_KEEP"):
            print(f"kept {run.d}", file=sys.stderr)
        else:
            shutil.rmtree(run.d, ignore_errors=True)


def _orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    with _bench_run() as (run, journal):
        entity, route, ns_hash = _setup(run.d)
        rate = verify_rate()
        _start_routers(run, args, journal, route, ns_hash)
        return _drain(run, args, entity, rate)


def _report(f: dict[str, Any]) -> str:
    return "\n".join([
        f"machine: {machine_summary()}",
        f"backlog queued at the site  {f['backlog_at_site']} x {f['payload_bytes']} B "
        f"(accepted at {f['site_accept_msgs_per_s']:,.0f} msg/s)",
        f"drained into the DR         in {f['drain_seconds']:.1f} s = {f['drain_msgs_per_s']:,.0f} msg/s "
        "(site backlog 0: every message verified and stored at the DR)",
        f"DR CPU during the drain     {f['dr_cpu_us_per_msg']:.0f} us/msg (incl. delivery to its subscriber)",
        f"delivered to a DR subscriber {f['delivered_to_dr_subscriber']} after {f['delivered_seconds']:.1f} s",
        f"Ed25519 verify, one core    {f['ed25519_verify_per_s_one_core']:,.0f} /s; drain ratio "
        f"{f['drain_ratio_to_verify_rate']:.2f}",
        f"live messages during drain  p50 {f['live_latency_p50_ms']:.0f} ms / p99 {f['live_latency_p99_ms']:.0f} ms "
        f"({f['live_lane_messages']} sent by the live lane)",
        f"trunk bytes per message     {f['wire_bytes_per_message_both_directions']:.1f} (both directions, "
        "encrypted, acks included)",
    ])


def run_tier_bench(args: argparse.Namespace) -> None:
    """Run the tier bench and print its figures; raise :class:`.BenchError` on failure."""
    try:
        figures = _orchestrate(args)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        raise BenchError(f"wavemq-edge bench --tier: {exc}") from exc
    print(json.dumps(figures, sort_keys=True) if args.json else _report(figures))
