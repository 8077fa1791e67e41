"""The processes a bench starts: routers, brokers and load workers, pinned to CPUs, stopped by PID.

Pinning: with two or more CPUs the measured server (a router, the designated router, Mosquitto) runs on
CPU 0 and every client on the others, so the clients' CPU is not what is measured. A process is pinned
from its first instruction (a one-line ``os.sched_setaffinity`` then ``exec`` shim), so every thread it
starts inherits the set.

Every process a run starts is registered in its :class:`Procs`; leaving the ``with`` block (a figure, an
error, Ctrl-C, SIGTERM) terminates each one still running by its PID, then kills it after
:data:`STOP_TIMEOUT_S`. Every wait here is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Final

from .common import BenchError

__all__ = [
    "POLL_S",
    "START_TIMEOUT_S",
    "Procs",
    "client_cpus",
    "pinned",
    "server_cpus",
    "stop_processes",
    "terminate_on_sigterm",
]

#: Seconds a router process may take to print its "listening" banner line.
START_TIMEOUT_S: Final = 20.0
#: Seconds a worker may take to write its readiness file unless the caller says more.
WORKER_READY_TIMEOUT_S: Final = 120.0
#: Seconds a terminated process may take to exit before it is killed.
STOP_TIMEOUT_S: Final = 10.0
#: Poll interval of the file and banner waits (the processes do not signal otherwise).
POLL_S: Final = 0.02

_LISTENING: Final = re.compile(r"listening:\s+(\S+) \(agents\)")
_SHIM: Final = "import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')}); " \
               "os.execvp(sys.argv[2], sys.argv[2:])"


def server_cpus(no_pin: bool) -> list[int] | None:
    """The measured server's CPU set ([0]), or None when not pinning (one CPU, or ``--no-pin``)."""
    return None if no_pin or (os.cpu_count() or 1) < 2 else [0]


def client_cpus(no_pin: bool) -> list[int] | None:
    """Every CPU but the server's, or None when not pinning."""
    n = os.cpu_count() or 1
    return None if no_pin or n < 2 else list(range(1, n))


def pinned(cmd: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    """``cmd`` run on ``cpus`` from its first instruction (or unchanged for None)."""
    if cpus is None:
        return list(cmd)
    return [sys.executable, "-c", _SHIM, ",".join(map(str, cpus)), *cmd]


def stop_processes(procs: Sequence[subprocess.Popen[Any]]) -> None:
    """Terminate each process still running (by its PID), then kill it if it has not exited in time."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM raises ``KeyboardInterrupt`` in the main thread, so the ``finally`` blocks
    that stop a run's processes run on a terminated bench too."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Procs:
    """The processes of one bench run; ``with Procs(args) as procs`` stops them all on the way out."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.all: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        stop_processes(self.all)

    def start_router(self, config: Path, log_path: Path, *, profile: bool = False, log_level: str = "WARNING",
                     cpus: Sequence[int] | None = None) -> tuple[subprocess.Popen[bytes], str]:
        """Start ``wavemq-edge run config`` on ``cpus`` (default: the server CPU); returns the process and
        its agent address, read from its banner."""
        cmd = [sys.executable, "-m", "wavemq_edge", "--log-level", log_level, "run", str(config)]
        env = dict(os.environ)
        if profile and getattr(self.args, "profile", None):
            env["WAVEMQ_EDGE_PROFILE"] = str(Path(self.args.profile).resolve())
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(pinned(cmd, cpus if cpus is not None else server_cpus(self.args.no_pin)),
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.all.append(proc)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            m = _LISTENING.search(log_path.read_text(errors="replace"))
            if m:
                return proc, m.group(1)
            if proc.poll() is not None:
                break
            time.sleep(POLL_S)
        raise BenchError(f"wavemq-edge bench: router did not start: {log_path.read_text(errors='replace')[-2000:]}")

    def start(self, cmd: Sequence[str], cpus: Sequence[int] | None, **kw: Any) -> subprocess.Popen[Any]:
        """Start any other process (a broker) on ``cpus``, registered for the stop."""
        proc: subprocess.Popen[Any] = subprocess.Popen(pinned(cmd, cpus), **kw)
        self.all.append(proc)
        return proc

    def worker(self, role: str, router: str, d: Path, entity: Path, *, messages: int, rate: int = 0,
               tag: str = "0", prefix: str = "bench", identifier: str | None = None, latency: bool = False,
               concurrency: int | None = None, timeout: float = 600.0) -> subprocess.Popen[str]:
        """Start a ``bench --role ROLE`` worker on the client CPUs."""
        a = self.args
        cmd = [sys.executable, "-m", "wavemq_edge", "bench", "--role", role, "--router", router, "--dir", str(d),
               "--entity", str(entity), "--messages", str(messages), "--payload", str(a.payload),
               "--concurrency", str(concurrency or a.concurrency), "--tag", tag, "--rate", str(rate),
               "--prefix", prefix, "--timeout", str(timeout),
               *(["--identifier", identifier] if identifier else []), *(["--latency"] if latency else [])]
        proc = subprocess.Popen(pinned(cmd, client_cpus(a.no_pin)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.all.append(proc)
        return proc


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = WORKER_READY_TIMEOUT_S) -> None:
    """Wait until a worker writes ``path`` (its readiness signal); raise if it dies or times out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise BenchError(f"wavemq-edge bench: worker failed: {_tail(proc)}")
        if time.monotonic() > deadline:
            raise BenchError(f"wavemq-edge bench: timed out waiting for {path.name}")
        time.sleep(POLL_S)


def _tail(proc: subprocess.Popen[str]) -> str:
    err = proc.stderr.read() if proc.stderr else ""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def worker_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """The JSON object a worker prints on its last line; raise :class:`.BenchError` if it failed or did
    not finish within ``timeout`` seconds (it is killed then)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT_S)
        raise BenchError(f"wavemq-edge bench: a worker did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise BenchError(f"wavemq-edge bench: worker failed ({proc.returncode}): "
                         f"{lines[-1] if lines else 'no output'}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed
