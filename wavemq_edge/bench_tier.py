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
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from .bench import _result, _start_router, _verify_rate, _wait_file, _worker

__all__ = ["run_tier_bench"]


class _Gate:
    """A loopback TCP forwarder that refuses connections until opened (the uplink is 'down')."""

    def __init__(self, target_port: int) -> None:
        self.open = False
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        self._started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:  # the DR is gone (end of the run)
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, w2), pipe(r2, writer), return_exceptions=True)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(d: Path) -> tuple[Path, Path, str]:
    from .wave import (
        PSET_WAVEMQ,
        MemoryStore,
        ObjectType,
        Statement,
        build_proof,
        create_attestation,
        create_entity,
        format_id,
        save_entity_secret,
    )
    from .wave.files import write_armored

    now = time.time()
    ns, dr, svc, live = (create_entity(now - 60, 86400) for _ in range(4))
    store = MemoryStore()
    for e in (ns, dr, svc, live):
        store.put_entity(e.entity)
    grant = Statement(PSET_WAVEMQ, frozenset({"publish", "subscribe"}), ("*",))
    route = Statement(PSET_WAVEMQ, frozenset({"route"}), ("*",))
    store.put_attestation(create_attestation(ns, svc.entity, ns.id, [grant], now=now - 30, expiry_s=86400))
    # live traffic comes from another service than the backlog (one publisher's own messages keep their order)
    store.put_attestation(create_attestation(ns, live.entity, ns.id, [grant], now=now - 30, expiry_s=86400))
    (d / "live").mkdir()
    write_armored(d / "live" / "proof.pem", ObjectType.PROOF,
                  build_proof(store, live.id, ns.id, [grant], now=now).to_bytes())
    save_entity_secret(d / "live" / "live.ent", live)
    (d / "live" / "ns.id").write_bytes(ns.id)
    store.put_attestation(create_attestation(ns, dr.entity, ns.id, [route], now=now - 30, expiry_s=86400))
    write_armored(d / "proof.pem", ObjectType.PROOF, build_proof(store, svc.id, ns.id, [grant], now=now).to_bytes())
    write_armored(d / "route.pem", ObjectType.PROOF, build_proof(store, dr.id, ns.id, [route], now=now).to_bytes())
    save_entity_secret(d / "service.ent", svc)
    save_entity_secret(d / "dr.ent", dr)
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
    from .client import Client

    async with await Client.connect(address, entity=d / "service.ent", proofs=[d / "proof.pem"],
                                    reconnect=False) as c:
        status = await c.status()
    uplinks = status.get("uplinks")
    return dict(uplinks[0]) if isinstance(uplinks, list) and uplinks else {}


def _orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="wavemq-tierbench-"))
    shm = Path("/dev/shm")
    journal = Path(tempfile.mkdtemp(prefix="wavemq-tierbench-journal-", dir=shm if shm.is_dir() else d))
    procs: list[subprocess.Popen[Any]] = []
    gate: _Gate | None = None
    try:
        entity, route, ns_hash = _setup(d)
        verify_rate = _verify_rate()
        peer_port = _free_port()
        dr_cfg = _config(d, "dr", journal, f"  DesignatedNamespaceFiles = [\"{route}\"]\n"
                                           f"[PeerConfig]\n  listenAddr = \"127.0.0.1:{peer_port}\"")
        dr, dr_addr = _start_router(dr_cfg, args, d / "dr.log", "0", profile=False, log_level="INFO")
        procs.append(dr)
        gate = _Gate(peer_port)
        # reconnect quickly once the gate opens: the figure is the drain, not the backoff (default 30 s)
        site_cfg = _config(d, "site", journal, f"[[RoutingConfig.Router]]\n  Namespace = \"{ns_hash}\"\n"
                                               f"  Address = \"127.0.0.1:{gate.port}\"\n"
                                               "[PeerConfig]\n  reconnectMin = 0.1\n  reconnectMax = 0.5")
        site, site_addr = _start_router(site_cfg, args, d / "site.log", "1" if (os.cpu_count() or 1) >= 2 else "0",
                                        profile=False, log_level="INFO")
        procs.append(site)
        live_n = 200
        cloud = _worker("sub", args, dr_addr, d, entity, messages=args.messages, identifier="cloud")
        live = _worker("sub", args, dr_addr, d, entity, messages=live_n, prefix="live", identifier="live")
        procs += [cloud, live]
        _wait_file(d / "sub-bench.ready", cloud)
        _wait_file(d / "sub-live.ready", live)
        t0 = time.perf_counter()
        pub = _worker("pub", args, site_addr, d, entity)
        _result(pub, timeout=3600)
        queued_s = time.perf_counter() - t0
        backlog = int(asyncio.run(_uplink_status(site_addr, d)).get("backlog", 0))
        rp = psutil.Process(dr.pid)
        cpu0 = rp.cpu_times()
        gate.open = True
        t1 = time.perf_counter()
        live_pub = _worker("pub", args, site_addr, d / "live", d / "live" / "live.ent", messages=live_n, rate=20,
                           prefix="live")
        while int(asyncio.run(_uplink_status(site_addr, d)).get("backlog", 1)) > 0:
            if time.perf_counter() - t1 > 3600:
                raise RuntimeError("the backlog did not drain within an hour")
            time.sleep(0.2)
        drain_s = time.perf_counter() - t1  # every queued message is in the DR's store
        cpu1 = rp.cpu_times()
        cloud_result = _result(cloud, timeout=3600)
        deliver_s = time.perf_counter() - t1
        _result(live_pub, timeout=600)
        live_result = _result(live, timeout=600)
        status = asyncio.run(_uplink_status(site_addr, d))
        dr_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        acked = max(1, int(status.get("acked", 0)))
        wire = int(status.get("bytes_sent", 0)) + int(status.get("bytes_received", 0))
        received = int(cloud_result["received"])
        figures: dict[str, Any] = {
            "messages": args.messages,
            "payload_bytes": args.payload,
            "backlog_at_site": backlog,
            "site_accept_msgs_per_s": args.messages / queued_s,
            "drain_seconds": drain_s,
            "drain_msgs_per_s": backlog / drain_s,
            "dr_cpu_us_per_msg": 1e6 * dr_cpu / max(1, backlog),
            "ed25519_verify_per_s_one_core": verify_rate,
            "drain_ratio_to_verify_rate": backlog / drain_s / verify_rate,
            "delivered_to_dr_subscriber": received,
            "delivered_seconds": deliver_s,
            "live_lane_messages": int(status.get("live", 0)),
            "live_latency_p50_ms": live_result["p50_ms"],
            "live_latency_p99_ms": live_result["p99_ms"],
            "wire_bytes_per_message_both_directions": wire / acked,
        }
        return figures
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if gate is not None:
            gate.stop()
        shutil.rmtree(journal, ignore_errors=True)
        if os.environ.get("WAVEMQ_BENCH_KEEP"):
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def run_tier_bench(args: argparse.Namespace) -> int:
    try:
        f = _orchestrate(args)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"wavemq-edge bench --tier: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(f, sort_keys=True))
        return 0
    print("\n".join([
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}",
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
    ]))
    return 0
