"""A start-up failure nobody foresaw (not a ``StartupError``) is still one line on stderr and exit 3,
with no traceback and no "Task was destroyed but it is pending!"; the stores opened before it are
closed again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from wavemq_edge.cli import router_cmds
from wavemq_edge.cli.exit_codes import ExitCode
from wavemq_edge.config import load_default_config
from wavemq_edge.server import Server


def test_an_unexpected_exception_in_startup_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    async def broken(self: Server, backlog: int) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Server, "_listen_agents", broken)  # after the stores are open
    config = load_default_config(tmp_path)
    config = replace(config, queue=replace(config.queue, journal_dir=tmp_path / "journal"))
    for _attempt in range(2):  # the second finds the stores unlocked: the first closed them
        assert router_cmds.serve(config) == ExitCode.STARTUP
        err = capsys.readouterr().err
        assert err.splitlines() == ["wavemq-edge: cannot start: unexpected RuntimeError: boom (--log-level DEBUG "
                                    "shows where)"], err
