"""The ``bench`` subcommand of ``wavemq-edge``: its flags, and the dispatch to a bench or a worker role.

``wavemq-edge bench`` measures a router (:mod:`.router`), ``bench --tier`` the trunk (:mod:`.tier`),
``--compare`` adds Mosquitto under the same load (:mod:`.compare`), ``--gate FILE`` is the CI regression
check (:mod:`.gate`); ``--role`` (hidden) runs one of the load workers those benches start as processes
(:mod:`.workers`). The benches are imported only when run, so building the command line's parser stays
cheap.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: --help builds this parser
if TYPE_CHECKING:
    from typing import Any

__all__ = ["add_bench_parser", "run_bench"]

_DESCRIPTION = """\
Measure a router process: its CPU per secured message (publish -> deliver) against this machine's
single-core Ed25519 verify rate in the same run, latency at a paced rate, memory idle and with a
backlog, disk bytes per message, and start-up times; min / median / max over --runs.
The router is pinned to CPU 0 and the load (pre-signed messages written from a buffer) to the others.
"""


def add_bench_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``bench`` subcommand to ``sub`` (the result of ``ArgumentParser.add_subparsers``)."""
    p = sub.add_parser("bench", help="measure a router: CPU per message, latency, memory, disk bytes",
                       description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs, each against a fresh router (default 3)")
    p.add_argument("--messages", type=int, default=20000,
                   help="messages of the saturated phase, or of the --tier backlog (default 20000)")
    p.add_argument("--payload", type=int, default=64, help="payload bytes per message (default 64)")
    p.add_argument("--concurrency", type=int, default=256, help="publishes unanswered at once (default 256)")
    p.add_argument("--publishers", type=int, default=1, help="publisher processes (default 1)")
    p.add_argument("--paced-rate", "--latency-rate", dest="paced_rate", type=int, default=1000,
                   help="msg/s of the paced phase (default 1000; 0 skips it)")
    p.add_argument("--paced-seconds", type=float, default=6.0,
                   help="length of the paced phase, longer than --flush-interval (default 6)")
    p.add_argument("--flush-interval", type=int, default=5, help="the router's flushInterval (default 5 s)")
    p.add_argument("--backlog", type=int, default=20000,
                   help="messages queued for an absent durable subscriber (default 20000; 0 skips it)")
    p.add_argument("--subscriptions", action="store_true", help="also measure 1000 idle durable subscriptions")
    p.add_argument("--compare", action="store_true",
                   help="also run Mosquitto (when installed) under the same load and print the ratio")
    p.add_argument("--no-pin", action="store_true", help="do not pin the router and the clients to CPUs")
    p.add_argument("--json", action="store_true", help="print the runs and the summary as one JSON object")
    p.add_argument("--profile", metavar="FILE", help="write a cProfile of the router process to FILE "
                   "(read it with python -m pstats FILE); profiling slows the router down")
    p.add_argument("--gate", metavar="FILE",
                   help="CI regression check: a short saturated run, its ratio against the one in FILE")
    p.add_argument("--record", action="store_true", help="with --gate: write the measured ratio to FILE")
    p.add_argument("--tier", action="store_true",
                   help="measure the trunk instead: a backlog queued at a site while its uplink is down, then "
                   "drained to a designated router (drain rate, DR CPU, live latency during the drain, bytes)")
    # internal: the router's queue bound, and the roles of the worker processes
    p.add_argument("--queue-max", type=int, default=1_000_000, help=argparse.SUPPRESS)
    p.add_argument("--role", choices=["pub", "sub", "subs", "mqtt-pub", "mqtt-sub"], help=argparse.SUPPRESS)
    p.add_argument("--rate", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--router", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--entity", help=argparse.SUPPRESS)
    p.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    p.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    p.add_argument("--identifier", default=None, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    p.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)


def _check(args: argparse.Namespace) -> None:
    from .common import BenchUsageError

    if args.messages < 1 or args.concurrency < 1 or args.publishers < 1 or args.payload < 0:
        raise BenchUsageError("wavemq-edge bench: --messages, --concurrency and --publishers must be >= 1, "
                              "--payload >= 0")
    problems = [
        (args.runs < 1, "--runs must be >= 1"),
        (args.paced_rate < 0 or args.backlog < 0, "--paced-rate and --backlog must be >= 0"),
        (args.paced_seconds <= 0, "--paced-seconds must be > 0"),
        (not 1 <= args.flush_interval <= 3600, "--flush-interval must be 1..3600"),
        (args.queue_max < 1, "--queue-max must be >= 1"),
        (args.record and not args.gate, "--record needs --gate FILE"),
    ]
    for bad, what in problems:
        if bad:
            raise BenchUsageError(f"wavemq-edge bench: {what}")


def run_bench(args: argparse.Namespace) -> None:
    """Run what ``args`` asks for and print its figures; raise :class:`.common.BenchError` on failure."""
    if args.role is not None:
        from .workers import run_role

        run_role(args)
        return
    _check(args)
    if args.gate:
        from .gate import run_gate

        run_gate(args)
    elif args.tier:
        from .tier import run_tier_bench

        run_tier_bench(args)
    else:
        from .compare import run_router_bench

        run_router_bench(args)
