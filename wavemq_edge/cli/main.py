"""The ``wavemq-edge`` command.

Subcommands parse their arguments here and call into the package; a user never sees a traceback for a
bad argument, a bad config file or a refused connection: one line on stderr and a non-zero exit.

Exit codes (:class:`.exit_codes.ExitCode`): 0 success; 1 runtime failure; 2 bad usage or bad
configuration (argparse's convention); 3 the router could not start (uvicorn's ``STARTUP_FAILURE``).

This module builds the parser and nothing else at import: each command's module is imported by its
handler (``check-config``, ``check-store`` and ``run``: :mod:`.router_cmds`; the client commands:
:mod:`.client_cmds`; ``bench``: :mod:`wavemq_edge.bench`), so ``--help`` loads no event loop, no crypto
and no store, and ``run`` none of the client or bench code (``tests/cli/test_lazy_imports.py`` holds it
to that). Environment variables: see :mod:`.router_cmds` and :mod:`.client_cmds`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..client.defaults import DEFAULT_ROUTER
from .exit_codes import ExitCode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see wavemq_edge/lazy.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main"]

_ROUTER_COMMANDS = ("check-config", "check-store", "run")
_CLIENT_COMMANDS = ("pub", "sub", "query", "unsub", "status", "demo")


# ---------------------------------------------------------------------- argument parsing


def _path(text: str) -> os.PathLike[str]:
    """The type of ``--state-dir``: a ``pathlib.Path`` (pathlib is imported only when one is given)."""
    from pathlib import Path

    return Path(text)


class _SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it records its ``add_argument`` calls and makes them when it is first used
    (its arguments parsed, its help or usage printed), so that starting one command builds the flags of
    that command only. The ~80 flags of all commands, each with a help formatter and gettext look-ups,
    cost a few milliseconds at every start, and the parser ``run`` keeps would hold them for months."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deferred: list[tuple[tuple[Any, ...], dict[str, Any]]] | None = []
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        """Record the flag (returns None while recording: nothing here uses the ``Action``)."""
        if self._deferred is None:
            return super().add_argument(*args, **kwargs)
        self._deferred.append((args, kwargs))
        return None

    def _complete(self) -> None:
        deferred, self._deferred = self._deferred, None
        for args, kwargs in deferred or ():
            super().add_argument(*args, **kwargs)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self._complete()
        return super().parse_known_args(*args, **kwargs)

    def _parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self._complete()  # where a Python version's subparsers action calls this one directly
        return super()._parse_known_args(*args, **kwargs)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavemq-edge",
        description=(
            "A tiered publish/subscribe message router with WAVE-style security. "
            "Compatible with WAVEMQ's wavemq.toml; entities and grants are managed with `wv`."
        ),
    )
    parser.add_argument("--version", action="version", version=f"wavemq-edge {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging threshold (default: INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubcommandParser)
    _add_router_commands(sub)
    _add_client_commands(sub)
    from .mqtt_cmds import add_mqtt_commands
    add_mqtt_commands(sub)
    demo = sub.add_parser("demo", help="run the hello-world example end to end in a temporary directory",
                          description="Creates a namespace and a service entity, grants the service "
                          "publish/subscribe on the namespace, starts a router on a free loopback port, "
                          "publishes 'hello world' five times to a subscriber that prints them, then exits.")
    demo.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")

    from ..bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def _add_router_commands(sub: argparse._SubParsersAction[_SubcommandParser]) -> None:
    check = sub.add_parser("check-config", help="validate a wavemq.toml and print the effective config",
                           description="Validate a wavemq.toml file and print the effective configuration "
                           "with every default filled in. Exit 0 if valid, 2 with the problems if not.")
    check.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    check.add_argument("--state-dir", type=_path,
                       help="where default paths live (default: $WAVEMQ_STATE_DIR, $STATE_DIRECTORY, "
                       "$XDG_STATE_HOME/wavemq-edge or ~/.local/state/wavemq-edge)")

    store = sub.add_parser("check-store", help="report whether the queue and persist stores are sound",
                           description="Read every page of each store LMDB can reach (read-only; an aborted "
                           "write transaction also checks the free-page list) and print one line per store: "
                           "ok with its counts, or corrupt with LMDB's error. PATH is a store directory or a "
                           "directory holding queue/ and persist/; without PATH, the stores of CONFIG (or of "
                           "the embedded default). The router need not be stopped. Exit 0 if every store is "
                           "sound, 1 if one is corrupt, 2 if there is no store to check.")
    store.add_argument("paths", nargs="*", metavar="PATH",
                       help="a store directory, or a directory with queue/ and persist/")
    store.add_argument("--config", metavar="FILE", help="check the stores this config file names")
    store.add_argument("--state-dir", type=_path, help="where default paths live (see check-config --help)")

    run = sub.add_parser("run", help="run the router",
                         description="Run the router on CONFIG, or on the embedded default (loopback "
                         "listener 127.0.0.1:4516, data in the state directory) when no file is given. "
                         "SIGTERM or Ctrl-C stops it gracefully: stop accepting, flush queues, close stores.")
    run.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    run.add_argument("--state-dir", type=_path, help="where default paths live (see check-config --help)")
    run.add_argument("--listen", metavar="ADDR",
                     help="override LocalConfig.listenAddr (host:port; port 0 picks a free port)")


def _client_args(p: argparse.ArgumentParser, entity: bool = True, namespace: bool = True) -> None:
    p.add_argument("--router", default=None, metavar="ADDR",
                   help=f"router address host:port or unix:PATH (default: $WAVEMQ_ROUTER, else {DEFAULT_ROUTER})")
    if entity:
        p.add_argument("--entity", default=None, metavar="FILE",
                       help="this service's entity secret file (default: $WAVEMQ_ENTITY)")
        p.add_argument("--proof", action="append", default=[], metavar="FILE",
                       help="a proof file to use (repeatable); default: build proofs from the WAVE database")
        p.add_argument("--db", default=None, metavar="DIR",
                       help="WAVE database to build proofs from (default: $WAVE_HOME, else the wv default)")
    if namespace:
        p.add_argument("--namespace", required=True, metavar="NS",
                       help="namespace entity file or its 48-character hash")


def _add_client_commands(sub: argparse._SubParsersAction[_SubcommandParser]) -> None:
    pub = sub.add_parser("pub", help="publish one message",
                         description="Publish MESSAGE (or standard input) to URI in the namespace.")
    _client_args(pub)
    pub.add_argument("--persist", action="store_true", help="the router keeps it as the last value of URI")
    pub.add_argument("uri", metavar="URI")
    pub.add_argument("message", nargs="?", metavar="MESSAGE", help="the payload (default: read standard input)")

    subp = sub.add_parser("sub", help="subscribe and print messages",
                          description="Print one line per message (URI<TAB>payload; payload as text when it "
                          "is UTF-8, else base64), or JSON with --json. With --id the subscription is durable: "
                          "it keeps queueing after sub exits and `sub --id` resumes it without loss; without "
                          "--id it is removed when sub exits.")
    _client_args(subp)
    subp.add_argument("--id", dest="identifier", default=None, metavar="ID", help="durable subscription identifier")
    subp.add_argument("--count", type=int, default=0, metavar="N", help="exit 0 after N messages")
    subp.add_argument("--json", action="store_true", help="one JSON object per line")
    subp.add_argument("pattern", metavar="PATTERN", help="URI pattern: + is one segment, * zero or more")

    query = sub.add_parser("query", help="print persisted messages matching a pattern")
    _client_args(query)
    query.add_argument("--json", action="store_true", help="one JSON object per line")
    query.add_argument("pattern", metavar="PATTERN")

    unsub = sub.add_parser("unsub", help="remove a durable subscription")
    _client_args(unsub)
    unsub.add_argument("--id", dest="identifier", required=True, metavar="ID")

    status = sub.add_parser("status", help="show a running router's status")
    _client_args(status, entity=False, namespace=False)
    status.add_argument("--json", action="store_true", help="machine-readable output")


# ---------------------------------------------------------------------- entry point


def _cmd_bench(args: argparse.Namespace) -> ExitCode:
    from ..bench import BenchError, BenchUsageError, run_bench

    try:
        run_bench(args)
    except BenchUsageError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.USAGE
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.FAILURE
    return ExitCode.OK


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ExitCode:
    if args.command is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    if args.command in _ROUTER_COMMANDS:
        from . import router_cmds

        return router_cmds.COMMANDS[args.command](args)
    if args.command == "bench":
        return _cmd_bench(args)
    if args.command == "mqtt-passwd":
        from .mqtt_cmds import run_mqtt_passwd
        return run_mqtt_passwd(args)
    if args.command in _CLIENT_COMMANDS:
        from .client_cmds import run_client_command

        return run_client_command(args)
    parser.error(f"unknown command {args.command!r}")  # argparse exits; it rejects unknown commands first


def main(argv: Sequence[str] | None = None) -> int:
    """The ``wavemq-edge`` entry point; returns the exit status (:class:`.exit_codes.ExitCode`)."""
    parser = _build_parser()
    return int(_dispatch(parser, parser.parse_args(argv)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
