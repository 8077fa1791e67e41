"""``wavemq-edge bench``: measurements of real router processes, kept out of the runtime package.

Modules: :mod:`.command` (the subcommand's flags and dispatch), :mod:`.compare` (the runs of the router
bench, and Mosquitto beside them with ``--compare``), :mod:`.router` (one run: CPU per message, latency,
memory, disk bytes, start times of one router), :mod:`.tier` (a site's backlog drained to its designated
router), :mod:`.gate` (the CI regression check), :mod:`.load` (the load generator: pre-signed frames
written from a buffer), :mod:`.mqtt` (the same load in MQTT), :mod:`.workers` (the load's processes),
:mod:`.procs` (starting, pinning and stopping processes), :mod:`.procstat` (``/proc`` figures and
min/median/max), :mod:`.report`, :mod:`.common` (identities, tmpfs, the verify reference, status) and
:mod:`.proxy` (the one fault-injecting TCP proxy, shared with the tiering tests).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .command import add_bench_parser, run_bench
    from .common import BenchError, BenchUsageError
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".command": ("add_bench_parser", "run_bench"),
        ".common": ("BenchError", "BenchUsageError"),
    })

__all__ = ["BenchError", "BenchUsageError", "add_bench_parser", "run_bench"]
