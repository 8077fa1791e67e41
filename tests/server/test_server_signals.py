"""The daemon shell's signal handling: the first signal asks for a graceful shutdown (a flag only), a
second SIGINT while shutting down forces the process out at once with status 130."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from wavemq_edge.config import load_default_config
from wavemq_edge.server import Server, shell


class _Exited(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _server(tmp_path: Path) -> Server:
    async def make() -> Server:
        return Server(load_default_config(tmp_path))

    return asyncio.run(make())


def test_first_signal_only_sets_the_flag(tmp_path: Path) -> None:
    server = _server(tmp_path)
    server.handle_exit(signal.SIGTERM)
    assert server.should_exit.is_set() and not server.force_exit


def test_second_sigint_while_shutting_down_forces_the_exit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_exit(status: int) -> None:
        raise _Exited(status)

    monkeypatch.setattr(shell.os, "_exit", fake_exit)
    server = _server(tmp_path)
    server.handle_exit(signal.SIGINT)
    with pytest.raises(_Exited) as info:
        server.handle_exit(signal.SIGINT)
    assert info.value.status == shell.FORCED_EXIT_STATUS == 130 and server.force_exit


def test_a_second_sigterm_does_not_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shell.os, "_exit", lambda status: pytest.fail("forced exit on SIGTERM"))
    server = _server(tmp_path)
    server.handle_exit(signal.SIGTERM)
    server.handle_exit(signal.SIGTERM)
    assert server.should_exit.is_set() and not server.force_exit
