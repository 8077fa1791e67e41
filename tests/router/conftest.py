"""Fixtures of the router tests (helpers live in router_helpers.py)."""

from __future__ import annotations

import pytest
from router_helpers import World, new_world


@pytest.fixture
def world() -> World:
    return new_world()
