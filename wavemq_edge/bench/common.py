"""What the router bench and the tier bench share: identities, router and worker processes, figures.

Both benches run real processes: routers (``wavemq-edge run``) and load workers (``wavemq-edge bench
--role pub|sub|subs``, see :mod:`.workers`), pinned with ``taskset`` when the machine has two or more
CPUs so the load generators are not what is measured. Workers print one JSON object on their last line
of standard output; the orchestrator reads it with :func:`worker_result`. Every wait here is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from ..wave import (
    EntitySecret,
    MemoryStore,
    ObjectType,
    Statement,
    build_proof,
    create_attestation,
    save_entity_secret,
)
from ..wave.files import write_armored

__all__ = [
    "DAY_S",
    "START_TIMEOUT_S",
    "BenchError",
    "BenchUsageError",
    "cpu_seconds_between",
    "free_port",
    "grant_and_prove",
    "machine_summary",
    "pin_command",
    "process_memory_mb",
    "start_router",
    "start_worker",
    "stop_processes",
    "tmpfs_mkdtemp",
    "verify_rate",
    "wait_for_file",
    "worker_result",
]

#: Seconds a router process may take to print its "listening" banner line.
START_TIMEOUT_S: Final = 20.0
#: Lifetime of the bench's entities and grants: longer than any run.
DAY_S: Final = 86400
#: Seconds a worker may take to write its readiness file, and to finish, unless the caller says more.
WORKER_READY_TIMEOUT_S: Final = 60.0
WORKER_TIMEOUT_S: Final = 600.0
#: Seconds a terminated process may take to exit before it is killed.
STOP_TIMEOUT_S: Final = 20.0
#: Poll interval of the file and banner waits (the processes do not signal otherwise).
POLL_S: Final = 0.05

_LISTENING = re.compile(r"listening:\s+(\S+) \(agents\)")


class BenchError(Exception):
    """A bench run failed (a process did not start, a worker failed or timed out). The message is the
    whole line to print, starting with the command (``wavemq-edge bench: ...``)."""


class BenchUsageError(BenchError):
    """The bench's flags are out of range: bad usage, not a failed run."""


class CpuTimes(Protocol):
    """The two fields of ``psutil.Process.cpu_times()`` the benches use."""

    @property
    def user(self) -> float: ...

    @property
    def system(self) -> float: ...


# ---------------------------------------------------------------------- timing and ratios


def verify_rate(seconds: float = 1.0) -> float:
    """This machine's single-core Ed25519 verify rate (per second): the router's ceiling per message."""
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


def cpu_seconds_between(before: CpuTimes, after: CpuTimes) -> float:
    """User plus system CPU seconds a process spent between two ``cpu_times()`` samples."""
    return (after.user + after.system) - (before.user + before.system)


def process_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS MB, RssAnon MB) of a process, from ``/proc/PID/status``."""
    rss = anon = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) / 1024
    return rss, anon


def machine_summary() -> str:
    """``N CPUs, python X.Y.Z``: the first words of each bench's report."""
    return f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}"


# ---------------------------------------------------------------------- files and identities


def tmpfs_mkdtemp(prefix: str, fallback: Path) -> Path:
    """A new directory on tmpfs (``/dev/shm``) where it exists, else under ``fallback``.

    The routers' crash journals belong on tmpfs, as in production; the caller removes the directory.
    """
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else fallback))


def grant_and_prove(store: MemoryStore, namespace: EntitySecret, grantee: EntitySecret,
                    statements: Sequence[Statement], now: float, *, proof: Path, secret: Path) -> None:
    """Grant ``statements`` on ``namespace`` to ``grantee``; write the grantee's proof and secret files."""
    store.put_attestation(create_attestation(namespace, grantee.entity, namespace.id, list(statements),
                                             now=now - 30, expiry_s=DAY_S))
    built = build_proof(store, grantee.id, namespace.id, list(statements), now=now)
    write_armored(proof, ObjectType.PROOF, built.to_bytes())
    save_entity_secret(secret, grantee)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a listener that must be configured in advance)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- processes


def pin_command(cpu: str, no_pin: bool) -> list[str]:
    """``taskset -c CPU`` when pinning makes sense (two or more CPUs, taskset installed), else nothing."""
    if no_pin or (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", cpu]


def start_router(config: Path, args: argparse.Namespace, log_path: Path, cpu: str = "0",
                 profile: bool = True, log_level: str = "WARNING") -> tuple[subprocess.Popen[bytes], str]:
    """Start ``wavemq-edge run config`` pinned to ``cpu``; returns the process and its agent address."""
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child; closed below
    cmd = [*pin_command(cpu, args.no_pin), sys.executable, "-m", "wavemq_edge", "--log-level", log_level,
           "run", str(config)]
    env = dict(os.environ)
    if profile and getattr(args, "profile", None):
        env["WAVEMQ_EDGE_PROFILE"] = str(Path(args.profile).resolve())
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        m = _LISTENING.search(log_path.read_text(errors="replace"))
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(POLL_S)
    proc.kill()
    raise RuntimeError(f"router did not start: {log_path.read_text(errors='replace')[-2000:]}")


def start_worker(role: str, args: argparse.Namespace, router: str, d: Path, entity: Path, tag: str = "0",
                 messages: int | None = None, rate: int = 0, prefix: str = "bench",
                 identifier: str | None = None) -> subprocess.Popen[str]:
    """Start a ``bench --role ROLE`` worker process on the CPUs other than the router's."""
    cpus = "1" if (os.cpu_count() or 1) == 2 else f"1-{(os.cpu_count() or 2) - 1}"
    cmd = [*pin_command(cpus, args.no_pin), sys.executable, "-m", "wavemq_edge", "bench", "--role", role,
           "--router", router, "--dir", str(d), "--entity", str(entity),
           "--messages", str(messages or args.messages), "--payload", str(args.payload),
           "--concurrency", str(args.concurrency), "--tag", tag, "--rate", str(rate), "--prefix", prefix,
           *(["--identifier", identifier] if identifier else [])]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = WORKER_READY_TIMEOUT_S) -> None:
    """Wait until a worker writes ``path`` (its readiness signal); raise if it dies or times out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"worker failed: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        time.sleep(POLL_S)


def worker_result(proc: subprocess.Popen[str], timeout: float = WORKER_TIMEOUT_S) -> dict[str, Any]:
    """The JSON object a worker prints on its last line; raise if it failed."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}): {err.strip()[-2000:]}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def stop_processes(procs: Iterable[subprocess.Popen[Any]]) -> None:
    """Terminate each process still running; kill it if it has not exited after :data:`STOP_TIMEOUT_S`."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
