"""Fixtures of the agent-server glue tests (the mock transport lives in net_helpers.py).

These tests build their router core exactly as the sans-I/O router tests do, so tests/router (where
router_helpers.py lives) goes on sys.path here too: pytest only adds a test directory with a conftest,
and tests/net is collected before tests/router."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))

from router_helpers import World, new_world


@pytest.fixture
def world() -> World:
    return new_world()
