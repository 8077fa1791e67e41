"""Fixtures of the client tests (helpers live in client_helpers.py)."""

from __future__ import annotations

import pytest
from client_helpers import World, new_world


@pytest.fixture
def world() -> World:
    return new_world()
