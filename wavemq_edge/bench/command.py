"""The ``bench`` subcommand of ``wavemq-edge``: its flags, and the dispatch to a bench or a worker role.

``wavemq-edge bench`` measures a router (:mod:`.router`), ``bench --tier`` the trunk (:mod:`.tier`);
``--role`` (hidden) runs one of the load workers those benches start as processes (:mod:`.workers`).
The benches are imported only when run, so building the command line's parser stays cheap.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import router

__all__ = ["add_bench_parser", "run_bench"]


def add_bench_parser(sub: Any) -> None:
    """Add the ``bench`` subcommand to ``sub`` (the result of ``ArgumentParser.add_subparsers``)."""
    p = sub.add_parser("bench", help="measure a router: throughput, latency, CPU, memory",
                       description=router.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def run_bench(args: argparse.Namespace) -> None:
    """Run what ``args`` asks for and print its figures; raise :class:`.common.BenchError` on failure."""
    if args.role is not None:
        from .workers import run_role

        run_role(args)
    elif args.tier:
        from .tier import run_tier_bench

        run_tier_bench(args)
    else:
        router.run_router_bench(args)
