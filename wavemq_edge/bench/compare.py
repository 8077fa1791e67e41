"""``wavemq-edge bench`` runs, and ``--compare``: Mosquitto under the same load shape beside them.

Each run measures a fresh router (:func:`.router.one_run`); with ``--compare`` the same run then starts
Mosquitto on the router's CPU and drives it with the same shape: ``--messages`` QoS 1 publishes of
``--payload`` bytes, ``--concurrency`` unacknowledged, one subscriber acknowledging in bulk
(:mod:`.mqtt`). Its CPU per delivered message (``/proc/PID/stat``) goes beside the router's, and the
ratio of the two. Mosquitto checks no signature: the ratio is the price of the security plus ours.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from .common import BenchError, free_port, machine_summary, tmpfs_root
from .procs import POLL_S, Procs, server_cpus, terminate_on_sigterm, wait_for_file, worker_result
from .procstat import cpu_seconds
from .report import ROUTER_FIGURES, render, render_json, summaries
from .router import PHASE_TIMEOUT_S, one_run

__all__ = ["find_mosquitto", "headline", "mosquitto_run", "run_router_bench"]

#: Seconds Mosquitto may take to accept connections, and its subscriber to finish after the last PUBACK.
BROKER_START_S: Final = 10.0
BROKER_DRAIN_S: Final = 30.0


def find_mosquitto() -> str | None:
    """The ``mosquitto`` broker's path (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + BROKER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(POLL_S)
    raise BenchError(f"wavemq-edge bench: mosquitto did not start: {log.read_text(errors='replace')[-500:]}")


def mosquitto_run(args: argparse.Namespace, broker: str) -> dict[str, float]:
    """Mosquitto's CPU per message under the saturated phase's load shape."""
    d = Path(tempfile.mkdtemp(prefix="wavemq-bench-mqtt-", dir=tmpfs_root()))
    try:
        with Procs(args) as procs:
            port = free_port()
            (d / "mosquitto.conf").write_text(
                f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_inflight_messages 64\nmax_queued_messages 1000000\nlog_dest stderr\n")
            with open(d / "mosquitto.log", "wb") as log:
                mq: subprocess.Popen[bytes] = procs.start([broker, "-c", str(d / "mosquitto.conf")],
                                                          server_cpus(args.no_pin), stdout=log,
                                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            _wait_listening(port, mq, d / "mosquitto.log")
            address = f"127.0.0.1:{port}"
            total = args.messages * args.publishers
            sub = procs.worker("mqtt-sub", address, d, d / "none", messages=total)
            wait_for_file(d / "sub-bench.ready", sub)
            pubs = [procs.worker("mqtt-pub", address, d, d / "none", messages=args.messages, tag=str(i))
                    for i in range(args.publishers)]
            for i, p in enumerate(pubs):
                wait_for_file(d / f"pub-bench-{i}.ready", p)
            cpu0, t0 = cpu_seconds(mq.pid), time.perf_counter()
            (d / "go").write_text("1")
            for p in pubs:
                worker_result(p, timeout=PHASE_TIMEOUT_S)
            try:
                result = worker_result(sub, timeout=BROKER_DRAIN_S)
            except BenchError:
                raise BenchError("wavemq-edge bench: mosquitto's subscriber did not get every message") from None
            wall, cpu = time.perf_counter() - t0, cpu_seconds(mq.pid) - cpu0
    finally:
        shutil.rmtree(d, ignore_errors=True)
    delivered = max(1, int(result["received"]))
    return {"mqtt_cpu_us": 1e6 * cpu / delivered, "mqtt_throughput": delivered / wall}


def _one(args: argparse.Namespace, broker: str | None) -> dict[str, float]:
    figures = one_run(args)
    if broker is not None:
        figures.update(mosquitto_run(args, broker))
        figures["mqtt_ratio"] = figures["sat_cpu_us"] / figures["mqtt_cpu_us"]
    return figures


def run_router_bench(args: argparse.Namespace) -> None:
    """``--runs`` runs (with Mosquitto beside each under ``--compare``), then the report."""
    broker = find_mosquitto() if args.compare else None
    notes = []
    if args.compare and broker is None:
        print("wavemq-edge bench: mosquitto not installed; running without --compare", file=sys.stderr)
        notes.append("mosquitto not installed: no comparison")
    runs = []
    try:
        with terminate_on_sigterm():
            for i in range(args.runs):
                runs.append(_one(args, broker))
                if not args.json:
                    r = runs[-1]
                    print(f"run {i + 1}/{args.runs}: router {r['sat_cpu_us']:.1f} µs/msg, verify "
                          f"{r['verify_us']:.1f} µs, ratio {r['sat_ratio']:.2f}", file=sys.stderr, flush=True)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise BenchError(f"wavemq-edge bench: {exc}") from exc
    except KeyboardInterrupt:
        raise BenchError("wavemq-edge bench: interrupted; every process it started was stopped") from None
    dropped = max(r.get("sat_dropped", 0.0) for r in runs)
    if dropped:
        notes.append(f"the subscriber's queue dropped up to {dropped:.0f} messages: CPU per delivered message "
                     "overstates the cost (raise the router's queue bound)")
    pin = "router pinned to CPU 0, clients on the others" if server_cpus(args.no_pin) else "not pinned"
    paced = f"{args.paced_rate} msg/s paced for {args.paced_seconds:g} s" if args.paced_rate else "no paced phase"
    backlog = f"backlog {args.backlog}" if args.backlog else "no backlog"
    title = (f"machine: {machine_summary()}; {pin}\n"
             f"load: {args.messages} x {args.payload} B saturated ({args.concurrency} unanswered), {paced}, "
             f"{backlog}, flushInterval {args.flush_interval} s; {args.runs} run(s)")
    if args.json:
        print(render_json(runs, ROUTER_FIGURES, {"machine": machine_summary(), "args": _args_dict(args)}))
    else:
        print(render(f"{title}\n{headline(runs)}", runs, ROUTER_FIGURES, notes))


def headline(runs: Sequence[Mapping[str, float]]) -> str:
    """The figure the bench is for, as one line: the median run's CPU per message, capacity and ratio."""
    s = summaries(runs, ROUTER_FIGURES)
    line = (f"headline (median of {len(runs)}): router CPU {s['sat_cpu_us'].median:.1f} µs per secured message "
            f"= capacity {s['sat_capacity'].median:,.0f} msg/s = {s['sat_ratio'].median:.2f} x the verify rate "
            f"(verify {s['verify_us'].median:.1f} µs)")
    if "mqtt_cpu_us" in s:
        line += f"; Mosquitto {s['mqtt_cpu_us'].median:.1f} µs (unsigned)"
    return line


def _args_dict(args: argparse.Namespace) -> dict[str, object]:
    keys = ("runs", "messages", "payload", "concurrency", "publishers", "paced_rate", "paced_seconds", "backlog",
            "flush_interval", "compare", "no_pin")
    return {k: getattr(args, k) for k in keys}
