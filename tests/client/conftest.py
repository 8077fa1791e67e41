"""Fixtures of the client tests (helpers live in client_helpers.py, which builds on
tests/router/router_helpers.py: that directory goes on sys.path here, as in tests/net)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))

from router_helpers import World, new_world


@pytest.fixture
def world() -> World:
    return new_world()
