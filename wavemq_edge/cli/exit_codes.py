"""The exit statuses of ``wavemq-edge`` and ``wv``, defined once (README "Exit codes" lists them).

The values follow conventions a shell user or systemd already knows: argparse exits 2 for bad usage,
uvicorn exits 3 (``STARTUP_FAILURE``) when its server never started, and a shell reports 128 + 2 for a
process ended by SIGINT.
"""

from __future__ import annotations

import enum

__all__ = ["ExitCode"]


class ExitCode(enum.IntEnum):
    """How a command ended; ``int(code)`` is the process's exit status."""

    #: Success (``wavemq-edge sub --count N`` after N messages, ``run`` after a graceful stop).
    OK = 0
    #: A runtime failure: a refused request, an unreachable or lost router, a failed bench run, a proof
    #: that does not verify (``wv verify``), a second Ctrl-C while ``run`` shuts down, a corrupt store
    #: found by ``check-store``.
    FAILURE = 1
    #: Bad usage or bad configuration: an unknown command or flag, an invalid wavemq.toml, a missing
    #: entity, an unreadable file, a malformed URI (argparse's own convention); ``check-store`` with no
    #: store to check.
    USAGE = 2
    #: ``wavemq-edge run``: the router could not start (a port in use, a store locked by another router or
    #: of the wrong kind, a read-only filesystem, an unusable router entity or route proof, a journal
    #: directory it does not trust). Always exactly one line on stderr naming the setting, the path and
    #: the cause; no traceback. (A store LMDB reports damaged is not a reason: it is set aside.)
    STARTUP = 3
    #: ``wavemq-edge pub``: the router's disk is full and it refused the message (``STORAGE_FULL``, 633);
    #: nothing was stored, publish again later (sysexits.h ``EX_TEMPFAIL``).
    TEMPFAIL = 75
    #: ``wv`` interrupted by Ctrl-C (128 + SIGINT).
    INTERRUPTED = 130
