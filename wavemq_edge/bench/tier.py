"""``wavemq-edge bench --tier``: a site's backlog drained to its designated router (DR).

A DR and a site run as processes (the DR pinned to CPU 0, everything else on the others); a gate (the
fault proxy of :mod:`.proxy`) between them stays closed while a publisher queues ``--messages`` at the
site, then opens. The bench reports how fast the backlog drains into the DR (its subscriber receives every
message), the DR's CPU per drained message (``/proc/PID/stat``) against this machine's single-core
Ed25519 verify rate measured in the same run, the latency of live messages published during the drain by
another service (signed timestamp -> receipt at the DR's subscriber), and the trunk's bytes on the wire
per message (both directions, framing and encryption included, from the site's uplink counters).
``--runs`` repeats it against fresh routers; the report gives min / median / max.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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
    free_port,
    grant_and_prove,
    machine_summary,
    router_status,
    status_int,
    tmpfs_mkdtemp,
    verify_rate,
)
from .procs import Procs, client_cpus, server_cpus, terminate_on_sigterm, wait_for_file, worker_result
from .procstat import cpu_seconds
from .proxy import FaultProxy
from .report import TIER_FIGURES, render, render_json

__all__ = ["run_tier_bench"]

#: Messages of the live lane published (at :data:`LIVE_RATE` msg/s) while the backlog drains.
LIVE_MESSAGES: Final = 200
LIVE_RATE: Final = 20
#: Seconds the backlog may take to be queued, and to drain: beyond that the run is broken.
DRAIN_TIMEOUT_S: Final = 1800.0
#: Seconds the live lane's workers may take to finish once the backlog has drained.
LIVE_TIMEOUT_S: Final = 120.0
#: Poll interval of the site's backlog while it drains.
DRAIN_POLL_S: Final = 0.2


@dataclass
class _Run:
    """The routers and the gate of one tier bench run."""

    d: Path
    procs: Procs
    gate: FaultProxy
    dr_pid: int
    dr_addr: str
    site_addr: str


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
  unixSocket = "{d}/{name}.sock"
[RoutingConfig]
  PersistDataStore = "{d}/{name}-persist"
  RouterEntityFile = "{d}/{name}.ent"
{extra}
""")
    return path


def _uplink(run: _Run) -> dict[str, Any]:
    """The site's uplink, from its full status: the operator's Unix socket (a TCP agent gets a summary
    without the byte counts)."""
    uplinks = router_status(f"unix:{run.d / 'site.sock'}").get("uplinks")
    return dict(uplinks[0]) if isinstance(uplinks, list) and uplinks and isinstance(uplinks[0], dict) else {}


@contextlib.contextmanager
def _routers(args: argparse.Namespace, route: Path, ns_hash: str, d: Path, journal: Path) -> Iterator[_Run]:
    """The DR, the gate (closed: the uplink is down) in front of its peer port, and the site behind it;
    on the way out every process stopped by PID and the gate closed."""
    peer_port = free_port()
    gate = FaultProxy("127.0.0.1", peer_port, mode="cut")
    try:
        with Procs(args) as procs:  # stopped before the gate, so no connection is cut mid-frame
            dr_cfg = _config(d, "dr", journal, f"  DesignatedNamespaceFiles = [\"{route}\"]\n"
                                               f"[PeerConfig]\n  listenAddr = \"127.0.0.1:{peer_port}\"")
            dr, dr_addr = procs.start_router(dr_cfg, d / "dr.log", log_level="INFO")
            # reconnect quickly once the gate opens: the figure is the drain, not the backoff (default 30 s)
            site_cfg = _config(d, "site", journal, f"[[RoutingConfig.Router]]\n  Namespace = \"{ns_hash}\"\n"
                                                   f"  Address = \"127.0.0.1:{gate.port}\"\n"
                                                   "[PeerConfig]\n  reconnectMin = 0.1\n  reconnectMax = 0.5")
            _site, site_addr = procs.start_router(site_cfg, d / "site.log", log_level="INFO",
                                                  cpus=client_cpus(args.no_pin))
            yield _Run(d, procs, gate, dr.pid, dr_addr, site_addr)
    finally:
        gate.stop()


def _drain(run: _Run, args: argparse.Namespace, entity: Path) -> dict[str, float]:
    """Queue the backlog behind the closed gate, open it, and measure the drain and the live lane."""
    d, procs = run.d, run.procs
    cloud = procs.worker("sub", run.dr_addr, d, entity, messages=args.messages, identifier="cloud",
                         timeout=DRAIN_TIMEOUT_S)
    live = procs.worker("sub", run.dr_addr, d, entity, messages=LIVE_MESSAGES, prefix="live", identifier="live",
                        latency=True, timeout=DRAIN_TIMEOUT_S)
    wait_for_file(d / "sub-bench.ready", cloud)
    wait_for_file(d / "sub-live.ready", live)
    pub = procs.worker("pub", run.site_addr, d, entity, messages=args.messages, timeout=DRAIN_TIMEOUT_S)
    wait_for_file(d / "pub-bench-0.ready", pub, timeout=60 + args.messages / 500)
    t0 = time.perf_counter()
    (d / "go").write_text("1")
    worker_result(pub, timeout=DRAIN_TIMEOUT_S)
    queued_s = time.perf_counter() - t0
    backlog = int(_uplink(run).get("backlog", 0))
    live_pub = procs.worker("pub", run.site_addr, d / "live", d / "live" / "live.ent", messages=LIVE_MESSAGES,
                            rate=LIVE_RATE, prefix="live", timeout=DRAIN_TIMEOUT_S)
    wait_for_file(d / "live" / "pub-live-0.ready", live_pub)
    cpu0 = cpu_seconds(run.dr_pid)
    run.gate.set_mode("pass")
    t1 = time.perf_counter()
    (d / "live" / "go").write_text("1")
    while int(_uplink(run).get("backlog", 1)) > 0:
        if time.perf_counter() - t1 > DRAIN_TIMEOUT_S:
            raise BenchError(f"wavemq-edge bench --tier: the backlog did not drain within {DRAIN_TIMEOUT_S:.0f} s")
        time.sleep(DRAIN_POLL_S)
    drain_s = time.perf_counter() - t1  # every queued message is in the DR's store
    dr_cpu = cpu_seconds(run.dr_pid) - cpu0
    worker_result(cloud, timeout=DRAIN_TIMEOUT_S)
    worker_result(live_pub, timeout=LIVE_TIMEOUT_S)
    live_result = worker_result(live, timeout=LIVE_TIMEOUT_S)
    up = _uplink(run)
    acked = max(1, status_int(up, "acked"))
    us = 1e6 * dr_cpu / max(1, backlog)
    return {
        "backlog": float(backlog),
        "site_accept_per_s": args.messages / queued_s,
        "drain_per_s": backlog / drain_s,
        "dr_cpu_us": us,
        "live_lane": float(status_int(up, "live")),
        "live_p50_ms": float(live_result["p50_ms"]),
        "live_p99_ms": float(live_result["p99_ms"]),
        "trunk_bytes_per_msg": (status_int(up, "bytes_sent") + status_int(up, "bytes_received")) / acked,
    }


def _one_run(args: argparse.Namespace) -> dict[str, float]:
    rate = verify_rate(cpus=server_cpus(args.no_pin))
    d = Path(tempfile.mkdtemp(prefix="wavemq-tierbench-"))
    journal = tmpfs_mkdtemp("wavemq-tierbench-journal-", d)
    try:
        entity, route, ns_hash = _setup(d)
        with _routers(args, route, ns_hash, d, journal) as run:
            figures = _drain(run, args, entity)
    finally:
        shutil.rmtree(journal, ignore_errors=True)
        if os.environ.get("WAVEMQ_BENCH_KEEP"):
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
    figures["verify_us"] = 1e6 / rate
    figures["drain_ratio"] = figures["drain_per_s"] / rate
    figures["dr_capacity_ratio"] = 1e6 / figures["dr_cpu_us"] / rate
    return figures


def run_tier_bench(args: argparse.Namespace) -> None:
    """Run the tier bench ``--runs`` times and print its figures; raise :class:`.BenchError` on failure."""
    runs = []
    try:
        with terminate_on_sigterm():
            for _ in range(args.runs):
                runs.append(_one_run(args))
    except (OSError, ValueError) as exc:
        raise BenchError(f"wavemq-edge bench --tier: {exc}") from exc
    except KeyboardInterrupt:
        raise BenchError("wavemq-edge bench --tier: interrupted; every process it started was stopped") from None
    if args.json:
        print(render_json(runs, TIER_FIGURES, {"machine": machine_summary()}))
        return
    title = (f"machine: {machine_summary()}; DR pinned to CPU 0\n"
             f"backlog: {args.messages} x {args.payload} B queued at the site while its uplink is down, then "
             f"drained; {LIVE_RATE} live msg/s from another service during the drain; {args.runs} run(s)")
    print(render(title, runs, TIER_FIGURES))
