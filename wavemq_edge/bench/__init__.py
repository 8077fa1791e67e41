"""``wavemq-edge bench``: measurements of real router processes, kept out of the runtime package.

Modules: :mod:`.command` (the subcommand's flags and dispatch), :mod:`.router` (publish -> deliver
throughput, latency, CPU and memory of one router), :mod:`.tier` (a site's backlog drained to its
designated router), :mod:`.workers` (the load-generating worker processes), :mod:`.common` (helpers both
benches share: identities, starting routers and workers, timing and ratios) and :mod:`.proxy` (the one
fault-injecting TCP proxy, shared with the tiering tests).
"""

from __future__ import annotations

from .command import add_bench_parser, run_bench
from .common import BenchError, BenchUsageError

__all__ = ["BenchError", "BenchUsageError", "add_bench_parser", "run_bench"]
