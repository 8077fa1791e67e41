"""The ``wavemq-edge`` command.

Subcommands parse their arguments here and call into the package; a user never sees a traceback for a
bad argument, a bad config file or a refused connection: one line on stderr and a non-zero exit.

Exit codes: 0 success; 1 runtime failure; 2 bad usage or bad configuration (argparse's convention);
3 the router could not start (uvicorn's ``STARTUP_FAILURE``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from . import __version__
from .config import Config, ConfigError, load_config, load_default_config

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "EXIT_STARTUP", "main"]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 2
EXIT_STARTUP: Final = 3


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

    check = sub.add_parser("check-config", help="validate a wavemq.toml and print the effective config",
                           description="Validate a wavemq.toml file and print the effective configuration "
                           "with every default filled in. Exit 0 if valid, 2 with the problems if not.")
    check.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    check.add_argument("--state-dir", type=Path,
                       help="where default paths live (default: $WAVEMQ_STATE_DIR, $STATE_DIRECTORY, "
                       "$XDG_STATE_HOME/wavemq-edge or ~/.local/state/wavemq-edge)")

    run = sub.add_parser("run", help="run the router",
                         description="Run the router on CONFIG, or on the embedded default (loopback "
                         "listener 127.0.0.1:4516, data in the state directory) when no file is given.")
    run.add_argument("file", nargs="?", help="config file (default: the embedded default)")
    run.add_argument("--state-dir", type=Path, help="where default paths live (see check-config --help)")
    return parser


def _load(file: str | None, state_dir: Path | None) -> Config:
    if file is None:
        return load_default_config(state_dir)
    return load_config(file, state_dir)


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = _load(args.file, args.state_dir)
    except ConfigError as exc:
        print(f"wavemq-edge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(config.to_toml())
    return EXIT_OK


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when importable (it is a dependency on Linux), else the stdlib loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _cmd_run(args: argparse.Namespace) -> int:
    from .ops import configure_logging

    try:
        config = _load(args.file, args.state_dir)
    except ConfigError as exc:
        print(f"wavemq-edge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(args.log_level)
    loop = _new_event_loop()
    try:
        print(
            f"wavemq-edge: configuration {config.source} is valid, but the router itself is not built yet "
            "(see README, Status); nothing was started.",
            file=sys.stderr,
        )
        return EXIT_STARTUP
    finally:
        loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        return _cmd_check_config(args)
    if args.command == "run":
        return _cmd_run(args)
    parser.error(f"unknown command {args.command!r}")  # argparse exits; it rejects unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
