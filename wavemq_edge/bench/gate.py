"""``wavemq-edge bench --gate FILE``: the CI regression check on the router's CPU per message.

A short saturated run (:data:`GATE_ROUNDS` rounds of :data:`GATE_MESSAGES` messages against one router,
the best round kept: a busy machine makes a round slower, never faster) measures the router's CPU per
secured message, and this machine's Ed25519 verify cost on the same core in the same run. The figure is
their ratio, verify µs / router µs (= capacity / verify rate), so a slower machine does not fail it. It
is printed beside the ratio recorded in FILE (``--record`` writes it); the check fails only below half
the recorded ratio: loose enough for a busy CI machine, tight enough to catch a lost fast path or an
accidental per-message syscall.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Final

from .common import BenchError, machine_summary, verify_rate
from .procs import server_cpus, terminate_on_sigterm
from .router import bench_run, measure_saturated

__all__ = ["FAIL_BELOW", "GATE_MESSAGES", "GATE_ROUNDS", "judge", "measure_ratio", "run_gate"]

GATE_ROUNDS: Final = 3
GATE_MESSAGES: Final = 4000
#: The check fails when the measured ratio is below this share of the recorded one.
FAIL_BELOW: Final = 0.5


def judge(measured: float, recorded: float) -> tuple[bool, str]:
    """Whether ``measured`` passes against ``recorded``, and the line saying so."""
    floor = FAIL_BELOW * recorded
    ok = measured >= floor
    verdict = "ok" if ok else "FAILED: the router's CPU per message regressed against the verify cost"
    return ok, (f"ratio verify/router {measured:.3f}, recorded {recorded:.3f} "
                f"(fails below {floor:.3f}): {verdict}")


def measure_ratio(args: argparse.Namespace) -> dict[str, float]:
    """The best of :data:`GATE_ROUNDS` short saturated rounds, and the verify cost of the same run."""
    verify = verify_rate(cpus=server_cpus(args.no_pin))
    best = float("inf")
    with bench_run(args) as run:
        for i in range(GATE_ROUNDS):
            best = min(best, measure_saturated(run, args, GATE_MESSAGES, prefix=f"gate{i}")["sat_cpu_us"])
    verify_us = 1e6 / verify
    return {"router_us": best, "verify_us": verify_us, "ratio": verify_us / best}


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def run_gate(args: argparse.Namespace) -> None:
    """Measure; with ``--record`` write FILE, else compare with FILE and raise :class:`.BenchError` on a
    regression."""
    path = Path(args.gate)
    recorded: float | None = None
    if not args.record:
        try:
            recorded = float(json.loads(path.read_text())["ratio"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"wavemq-edge bench --gate: cannot read the recorded ratio from {path}: {exc}") from None
    t0 = time.perf_counter()
    try:
        with terminate_on_sigterm():
            m = measure_ratio(args)
    except (OSError, ValueError) as exc:
        raise BenchError(f"wavemq-edge bench --gate: {exc}") from exc
    except KeyboardInterrupt:
        raise BenchError("wavemq-edge bench --gate: interrupted; every process it started was stopped") from None
    head = (f"bench gate: router {m['router_us']:.1f} µs/msg, Ed25519 verify {m['verify_us']:.1f} µs "
            f"(same run, {time.perf_counter() - t0:.0f} s)")
    if recorded is None:
        path.write_text(json.dumps({**{k: round(v, 4) for k, v in m.items()}, "machine": machine_summary(),
                                    "commit": _commit(), "messages": GATE_MESSAGES, "rounds": GATE_ROUNDS},
                                   indent=2, sort_keys=True) + "\n")
        print(f"{head}; ratio {m['ratio']:.3f} recorded in {path}")
        return
    ok, line = judge(m["ratio"], recorded)
    print(f"{head}; {line}")
    if not ok:
        raise BenchError(f"wavemq-edge bench --gate: {line}")
