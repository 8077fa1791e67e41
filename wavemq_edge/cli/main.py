"""The ``wavemq-edge`` command.

Subcommands parse their arguments here and call into the package; a user never sees a traceback for a
bad argument, a bad config file or a refused connection: one line on stderr and a non-zero exit.

Exit codes (:class:`.exit_codes.ExitCode`): 0 success; 1 runtime failure; 2 bad usage or bad
configuration (argparse's convention); 3 the router could not start (uvicorn's ``STARTUP_FAILURE``).

``run`` starts the daemon in one place, :func:`_serve`; everything else here is argument parsing and
printing. ``check-store`` reports the health of the stores without a router (``storage/store_health.py``).
Environment variables read by the command line: ``WAVEMQ_EDGE_PROFILE`` (``run``: write a
cProfile there, for ``wavemq-edge bench --profile``), and those of the client commands
(:mod:`.client_cmds`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .. import __version__
from ..client import DEFAULT_ROUTER
from ..config import Config, ConfigError, LocalConfig, load_config, load_default_config, parse_listen_address
from .exit_codes import ExitCode

__all__ = ["main"]

_CLIENT_COMMANDS = ("pub", "sub", "query", "unsub", "status", "demo")


# ---------------------------------------------------------------------- argument parsing


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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


def _add_router_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser("check-config", help="validate a wavemq.toml and print the effective config",
                           description="Validate a wavemq.toml file and print the effective configuration "
                           "with every default filled in. Exit 0 if valid, 2 with the problems if not.")
    check.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    check.add_argument("--state-dir", type=Path,
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
    store.add_argument("--state-dir", type=Path, help="where default paths live (see check-config --help)")

    run = sub.add_parser("run", help="run the router",
                         description="Run the router on CONFIG, or on the embedded default (loopback "
                         "listener 127.0.0.1:4516, data in the state directory) when no file is given. "
                         "SIGTERM or Ctrl-C stops it gracefully: stop accepting, flush queues, close stores.")
    run.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    run.add_argument("--state-dir", type=Path, help="where default paths live (see check-config --help)")
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


def _add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


# ---------------------------------------------------------------------- check-config and run


def _load(file: str | None, state_dir: Path | None) -> Config:
    if file is None:
        from ..wave import default_database_path

        # With no config file the router shares `wv`'s database ($WAVE_HOME or the per-user default),
        # so grants and revocations made with `wv` reach it without further set-up.
        config = load_default_config(state_dir)
        return replace(config, wave=replace(config.wave, database=default_database_path()))
    return load_config(file, state_dir)


def _cmd_check_config(args: argparse.Namespace) -> ExitCode:
    try:
        config = _load(args.file, args.state_dir)
    except ConfigError as exc:
        print(f"wavemq-edge: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    sys.stdout.write(config.to_toml())
    return ExitCode.OK


def _store_dirs(args: argparse.Namespace) -> list[str]:
    if not args.paths:
        config = _load(args.config, args.state_dir)
        return [str(config.queue.queue_data_store), str(config.routing.persist_data_store)]
    out: list[str] = []
    for path in args.paths:
        if os.path.isfile(os.path.join(path, "data.mdb")):
            out.append(path)
        else:
            out += [os.path.join(path, name) for name in ("queue", "persist")
                    if os.path.isfile(os.path.join(path, name, "data.mdb"))]
    return out


def _cmd_check_store(args: argparse.Namespace) -> ExitCode:
    """``wavemq-edge check-store``: one line per store; the walk runs in a forked child (LMDB aborts
    the process on some damage), so a badly damaged file is reported, not fatal to the command."""
    from ..storage.store_health import check_isolated

    try:
        dirs = _store_dirs(args)
    except ConfigError as exc:
        print(f"wavemq-edge: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    found = 0
    status = ExitCode.OK
    for path in dirs:
        try:
            health = check_isolated(path)
        except OSError as exc:
            print(f"wavemq-edge: {path}: cannot check: {exc}", file=sys.stderr)
            status = ExitCode.FAILURE
            continue
        found += health.state != "absent"
        print(health.line(), flush=True)
        if not health.healthy:
            status = ExitCode.FAILURE
    if not found and status is ExitCode.OK:
        print(f"wavemq-edge: no store found in {', '.join(args.paths or dirs)}", file=sys.stderr)
        return ExitCode.USAGE
    return status


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when importable (it is a dependency on Linux), else the stdlib loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _cmd_run(args: argparse.Namespace) -> ExitCode:
    try:
        config = _load(args.file, args.state_dir)
        if args.listen:
            try:
                addr = parse_listen_address(args.listen)
            except ValueError as exc:
                raise ConfigError("--listen", [f"{args.listen!r}: {exc}"]) from None
            config = replace(config, local=LocalConfig(listen_addr=addr, unix_socket=config.local.unix_socket))
    except ConfigError as exc:
        print(f"wavemq-edge: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    from ..ops import configure_logging

    configure_logging(args.log_level)
    return _serve(config)


def _serve(config: Config) -> ExitCode:
    """Run the router daemon on ``config`` until it stops; print the banner once it is listening.

    The one place the command line starts the daemon (``server.Server``).
    """
    from ..server import Server, StartupError

    service = Server(config)
    loop = _new_event_loop()
    up = False

    async def serve() -> None:
        nonlocal up
        ready = asyncio.Event()
        task = asyncio.create_task(service.serve(ready))
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A start-up failure ends ``task`` first: the waiter must not outlive the loop (asyncio
            # would print "Task was destroyed but it is pending!" at exit).
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        if ready.is_set():
            up = True
            _print_banner(config, _Listening(
                router_entity=service.router_entity.id if service.router_entity else None,
                agents=tuple(service.listen_addresses),
                peers=service.peer_address,
                designated=len(service.core.tiering.designated) if service.core else 0,
                metrics=getattr(service.ops, "metrics_address", ""),
            ))
        await task

    try:
        with _profiled():
            loop.run_until_complete(serve())
    except StartupError as exc:
        print(f"wavemq-edge: cannot start: {exc}", file=sys.stderr)
        return ExitCode.STARTUP
    except Exception as exc:
        if up:
            raise
        # A start-up failure nobody foresaw is still one line; the traceback is for --log-level DEBUG.
        logging.getLogger("wavemq_edge.server").debug("event=startup_failed", exc_info=True)
        print(f"wavemq-edge: cannot start: unexpected {type(exc).__name__}: {exc} (--log-level DEBUG shows "
              f"where)", file=sys.stderr)
        return ExitCode.STARTUP
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return ExitCode.FAILURE
    finally:
        loop.close()
    return ExitCode.OK


@contextlib.contextmanager
def _profiled() -> Iterator[None]:
    """Profile the block into ``$WAVEMQ_EDGE_PROFILE`` when set (``wavemq-edge bench --profile``)."""
    profile_path = os.environ.get("WAVEMQ_EDGE_PROFILE")
    if not profile_path:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


@dataclass(frozen=True)
class _Listening:
    """What the banner shows of a router that is up: its identity and where it listens."""

    router_entity: bytes | None
    agents: tuple[str, ...]
    peers: str
    designated: int
    metrics: str


def _print_banner(cfg: Config, up: _Listening) -> None:
    from ..wave import format_id

    rid = format_id(up.router_entity) if up.router_entity else "?"
    lines = [
        f"wavemq-edge {__version__} router {rid}",
        f"  config:     {cfg.source}",
    ]
    for addr in up.agents:
        lines.append(f"  listening:  {addr} (agents)")
    if up.peers:
        lines.append(f"  listening:  {up.peers} (peers: designated for {up.designated} namespace(s))")
    for peer in cfg.routing.routers:
        lines.append(f"  uplink:     {peer.namespace} -> {peer.address}")
    if up.metrics:
        lines.append(f"  metrics:    {up.metrics} (Prometheus /metrics)")
    lines += [
        f"  queues:     {cfg.queue.queue_data_store} (flush every {cfg.queue.flush_interval_s} s)",
        f"  wave db:    {cfg.wave.database}",
        "Try, in another terminal:",
        f"  wavemq-edge status --router {up.agents[0] if up.agents else ''}",
        "  wavemq-edge demo        (hello world end to end, with its own router)",
        "Stop with Ctrl-C or SIGTERM.",
    ]
    print("\n".join(lines), flush=True)


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
    if args.command == "check-config":
        return _cmd_check_config(args)
    if args.command == "check-store":
        return _cmd_check_store(args)
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "bench":
        return _cmd_bench(args)
    if args.command == "mqtt-passwd":
        from .mqtt_cmds import run_mqtt_passwd
        return run_mqtt_passwd(args)
    if args.command in _CLIENT_COMMANDS:
        from .client_cmds import run_client_command

        return run_client_command(args, _new_event_loop)
    parser.error(f"unknown command {args.command!r}")  # argparse exits; it rejects unknown commands first


def main(argv: Sequence[str] | None = None) -> int:
    """The ``wavemq-edge`` entry point; returns the exit status (:class:`.exit_codes.ExitCode`)."""
    parser = _build_parser()
    return int(_dispatch(parser, parser.parse_args(argv)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
