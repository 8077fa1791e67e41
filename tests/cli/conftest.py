"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _isolated_wave_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may touch the real per-user WAVE database (``wv`` and ``wavemq-edge`` default to it)."""
    monkeypatch.setenv("WAVE_HOME", str(tmp_path_factory.mktemp("wave_home")))
    yield
