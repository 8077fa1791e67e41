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
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import psutil

__all__ = ["add_bench_parser", "run_bench"]

START_TIMEOUT_S: Final = 20.0


def add_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure a router: throughput, latency, CPU, memory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=20000, help="messages to publish (default 20000)")
    p.add_argument("--payload", type=int, default=64, help="payload bytes per message (default 64)")
    p.add_argument("--concurrency", type=int, default=256, help="publishes in flight (default 256)")
    p.add_argument("--publishers", type=int, default=1, help="publisher processes (default 1)")
    p.add_argument("--latency-rate", type=int, default=500,
                   help="messages/s of the paced latency phase (default 500; 0 skips it)")
    p.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    p.add_argument("--skip-subscriptions", action="store_true", help="skip the 1000-subscription memory step")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the router process to FILE "
                   "(read it with python -m pstats FILE); profiling slows the router down")
    # internal roles of the worker processes
    p.add_argument("--role", choices=["pub", "sub", "subs"], help=argparse.SUPPRESS)
    p.add_argument("--router", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--entity", help=argparse.SUPPRESS)
    p.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--identifier", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tier", action="store_true",
                   help="measure the trunk instead: a backlog queued at a site while its uplink is down, then "
                   "drained to a designated router (drain rate, live latency during the drain, wire bytes)")


# ---------------------------------------------------------------------- worker processes


async def _role_pub(args: argparse.Namespace) -> dict[str, Any]:
    from .client import Client

    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    client = await Client.connect(args.router, entity=args.entity, proofs=[d / "proof.pem"], reconnect=False)
    payload = os.urandom(args.payload)
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.perf_counter()

    async def one(i: int) -> None:
        async with sem:
            await client.publish(ns, f"{args.prefix}/p{args.tag}/m{i % 100}", [("b", payload)])

    if args.rate > 0:
        # Paced (open loop at a fixed rate below capacity): latency then measures the router, not a
        # queue of signed messages waiting in the publisher.
        tasks = []
        for i in range(args.messages):
            due = t0 + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    else:
        await asyncio.gather(*[one(i) for i in range(args.messages)])
    elapsed = time.perf_counter() - t0
    await client.close()
    return {"published": args.messages, "seconds": elapsed}


async def _role_sub(args: argparse.Namespace) -> dict[str, Any]:
    from .client import Client

    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    client = await Client.connect(args.router, entity=args.entity, proofs=[d / "proof.pem"], reconnect=False)
    latencies: list[float] = []
    async with client.subscribe(ns, f"{args.prefix}/*", identifier=args.identifier) as sub:
        (d / f"sub-{args.prefix}.ready").write_text("1")
        first = last = 0.0
        async for msg in sub:
            now = time.time()
            if not latencies:
                first = time.perf_counter()
            latencies.append(now - msg.timestamp_ms / 1000.0)
            last = time.perf_counter()
            if len(latencies) >= args.messages:
                break
    await client.close()
    latencies.sort()
    return {
        "received": len(latencies),
        "seconds": last - first,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


async def _role_subs(args: argparse.Namespace) -> dict[str, Any]:
    """Open 1000 durable subscriptions (250 per connection) and hold them until told to stop."""
    from .client import Client

    d = Path(args.dir)
    ns = (d / "ns.id").read_bytes()
    clients = [await Client.connect(args.router, entity=args.entity, proofs=[d / "proof.pem"], reconnect=False)
               for _ in range(4)]
    subs = []
    for c, client in enumerate(clients):
        for i in range(250):
            sub = client.subscribe(ns, f"idle/{c}/{i}/*", identifier=f"idle-{c}-{i}")
            await sub.start()
            subs.append(sub)
    (d / "subs.ready").write_text(str(len(subs)))
    while not (d / "subs.stop").exists():
        await asyncio.sleep(0.1)
    for client in clients:
        for s in list(subs):
            if s.client is client:
                await client.unsubscribe(s.identifier)
        await client.close()
    return {"subscriptions": len(subs)}


# ---------------------------------------------------------------------- orchestration


def _verify_rate(seconds: float = 1.0) -> float:
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    signed = key.sign(b"x" * 200)
    vk = key.verify_key
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            vk.verify(signed)
        n += 100
    return n / (time.perf_counter() - t0)


def _mem(pid: int) -> tuple[float, float]:
    """(RSS MB, RssAnon MB) of a process."""
    rss = anon = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) / 1024
    return rss, anon


def _pin(cpu: str, no_pin: bool) -> list[str]:
    if no_pin or (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpu]


def _worker(role: str, args: argparse.Namespace, router: str, d: Path, entity: Path, tag: str = "0",
            messages: int | None = None, rate: int = 0, prefix: str = "bench",
            identifier: str | None = None) -> subprocess.Popen[str]:
    cpus = "1" if (os.cpu_count() or 1) == 2 else f"1-{(os.cpu_count() or 2) - 1}"
    cmd = [*_pin(cpus, args.no_pin), sys.executable, "-m", "wavemq_edge", "bench", "--role", role, "--router", router,
           "--dir", str(d), "--entity", str(entity), "--messages", str(messages or args.messages),
           "--payload", str(args.payload), "--concurrency", str(args.concurrency), "--tag", tag,
           "--rate", str(rate), "--prefix", prefix, *(["--identifier", identifier] if identifier else [])]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"worker failed: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        time.sleep(0.05)


def _result(proc: subprocess.Popen[str], timeout: float = 600.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {err.strip()[-2000:]}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def _setup(d: Path) -> tuple[Path, Path]:
    from .wave import (
        PSET_WAVEMQ,
        MemoryStore,
        ObjectType,
        Statement,
        build_proof,
        create_attestation,
        create_entity,
        save_entity_secret,
    )
    from .wave.files import write_armored

    now = time.time()
    ns = create_entity(now - 60, 86400)
    svc = create_entity(now - 60, 86400)
    store = MemoryStore()
    store.put_entity(ns.entity)
    store.put_entity(svc.entity)
    grant = Statement(PSET_WAVEMQ, frozenset({"publish", "subscribe"}), ("*",))
    store.put_attestation(create_attestation(ns, svc.entity, ns.id, [grant], now=now - 30, expiry_s=86400))
    proof = build_proof(store, svc.id, ns.id, [grant], now=now)
    write_armored(d / "proof.pem", ObjectType.PROOF, proof.to_bytes())
    save_entity_secret(d / "service.ent", svc)
    (d / "ns.id").write_bytes(ns.id)
    config = d / "wavemq.toml"
    shm = Path("/dev/shm")
    journal = Path(tempfile.mkdtemp(prefix="wavemq-bench-journal-", dir=shm if shm.is_dir() else d))
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


def _start_router(config: Path, args: argparse.Namespace, log_path: Path, cpu: str = "0",
                  profile: bool = True, log_level: str = "WARNING") -> tuple[subprocess.Popen[bytes], str]:
    """Start ``wavemq-edge run config`` pinned to ``cpu``; returns the process and its agent address."""
    import re

    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child; closed below
    cmd = [*_pin(cpu, args.no_pin), sys.executable, "-m", "wavemq_edge", "--log-level", log_level, "run", str(config)]
    env = dict(os.environ)
    if profile and getattr(args, "profile", None):
        env["WAVEMQ_EDGE_PROFILE"] = str(Path(args.profile).resolve())
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        m = re.search(r"listening:\s+(\S+) \(agents\)", log_path.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"router did not start: {log_path.read_text(errors='replace')[-2000:]}")


def _orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="wavemq-bench-"))
    router: subprocess.Popen[bytes] | None = None
    try:
        config, entity = _setup(d)
        verify_rate = _verify_rate()
        router, address = _start_router(config, args, d / "router.log")
        rp = psutil.Process(router.pid)
        time.sleep(0.5)
        idle_rss, idle_anon = _mem(router.pid)
        sub = _worker("sub", args, address, d, entity, messages=args.messages * args.publishers)
        _wait_file(d / "sub-bench.ready", sub)
        cpu0 = rp.cpu_times()
        t0 = time.perf_counter()
        pubs = [_worker("pub", args, address, d, entity, tag=str(i)) for i in range(args.publishers)]
        pub_results = [_result(p) for p in pubs]
        sub_result = _result(sub)
        wall = time.perf_counter() - t0
        cpu1 = rp.cpu_times()
        router_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
        loaded_rss, loaded_anon = _mem(router.pid)
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
            "ed25519_verify_per_s_one_core": verify_rate,
            "pinned": bool(_pin("0", args.no_pin)),
        }
        figures["ratio_to_verify_rate"] = figures["msgs_per_s"] / verify_rate
        figures["ratio_cpu_bound"] = (1e6 / figures["router_cpu_us_per_msg"]) / verify_rate
        if args.latency_rate > 0:
            n = max(100, args.latency_rate * 5)
            (d / "sub-bench.ready").unlink()
            lsub = _worker("sub", args, address, d, entity, messages=n)
            _wait_file(d / "sub-bench.ready", lsub)
            lpub = _worker("pub", args, address, d, entity, tag="lat", messages=n, rate=args.latency_rate)
            _result(lpub)
            lat = _result(lsub)
            figures["paced_rate_msgs_per_s"] = args.latency_rate
            figures["paced_latency_p50_ms"] = lat["p50_ms"]
            figures["paced_latency_p99_ms"] = lat["p99_ms"]
        if not args.skip_subscriptions:
            before_rss, before_anon = _mem(router.pid)
            holder = _worker("subs", args, address, d, entity)
            _wait_file(d / "subs.ready", holder, timeout=120)
            time.sleep(0.5)
            after_rss, after_anon = _mem(router.pid)
            (d / "subs.stop").write_text("1")
            _result(holder)
            figures["subs_1000_rss_added_mb"] = after_rss - before_rss
            figures["subs_1000_rss_anon_added_mb"] = after_anon - before_anon
        return figures
    finally:
        if router is not None and router.poll() is None:
            router.terminate()
            try:
                router.wait(timeout=20)
            except subprocess.TimeoutExpired:
                router.kill()
        journal_note = d / "journal.path"
        if journal_note.exists():
            shutil.rmtree(journal_note.read_text(), ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


def _print(figures: dict[str, Any]) -> None:
    f = figures
    lines = [
        f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
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
    print("\n".join(lines))


def run_bench(args: argparse.Namespace) -> int:
    if args.role == "pub":
        print(json.dumps(asyncio.run(_role_pub(args))))
        return 0
    if args.role == "sub":
        print(json.dumps(asyncio.run(_role_sub(args))))
        return 0
    if args.role == "subs":
        print(json.dumps(asyncio.run(_role_subs(args))))
        return 0
    if args.tier:
        from .bench_tier import run_tier_bench

        return run_tier_bench(args)
    if args.messages < 1 or args.concurrency < 1 or args.publishers < 1 or args.payload < 0:
        print("wavemq-edge bench: --messages, --concurrency and --publishers must be >= 1, --payload >= 0",
              file=sys.stderr)
        return 2
    try:
        figures = _orchestrate(args)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"wavemq-edge bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        _print(figures)
    return 0
