"""The router-side subcommands of ``wavemq-edge``: ``check-config``, ``check-store`` and ``run``.

``run`` starts the daemon in one place, :func:`serve`; the rest is loading the configuration and printing.
``check-store`` reports the health of the stores without a router (``storage/store_health.py``).
Environment: ``WAVEMQ_EDGE_PROFILE`` (``run``: write a cProfile there, for ``wavemq-edge bench
--profile``). :mod:`.main` imports this module only for these commands, so that ``--help`` and the client
commands load neither the configuration nor the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from .. import __version__
from ..config import Config, ConfigError, LocalConfig, load_config, load_default_config, parse_listen_address
from .event_loop import new_event_loop
from .exit_codes import ExitCode

__all__ = ["COMMANDS", "check_config", "check_store", "run", "serve"]



def _load(file: str | None, state_dir: Path | None) -> Config:
    if file is None:
        from ..wave import default_database_path

        # With no config file the router shares `wv`'s database ($WAVE_HOME or the per-user default),
        # so grants and revocations made with `wv` reach it without further set-up.
        config = load_default_config(state_dir)
        return replace(config, wave=replace(config.wave, database=default_database_path()))
    return load_config(file, state_dir)


def check_config(args: argparse.Namespace) -> ExitCode:
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


def check_store(args: argparse.Namespace) -> ExitCode:
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


def run(args: argparse.Namespace) -> ExitCode:
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
    return serve(config)


def serve(config: Config) -> ExitCode:
    """Run the router daemon on ``config`` until it stops; print the banner once it is listening.

    The one place the command line starts the daemon (``server.Server``).
    """
    from ..server import Server, StartupError

    service = Server(config)
    loop = new_event_loop()
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


#: The handlers of the subcommands this module serves, by name (:mod:`.main` dispatches through it).
COMMANDS: Final[dict[str, Callable[[argparse.Namespace], ExitCode]]] = {
    "check-config": check_config,
    "check-store": check_store,
    "run": run,
}
