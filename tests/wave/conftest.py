"""Fixtures for the WAVE-lite tests (helpers live in ``wave_world.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from wave_world import World, make_world


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture(autouse=True)
def _isolated_wave_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may touch the real per-user WAVE database."""
    monkeypatch.setenv("WAVE_HOME", str(tmp_path_factory.mktemp("wave_home")))
    yield
