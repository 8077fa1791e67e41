"""Fixtures of the sans-I/O MQTT tests: the router tests' core and WAVE world (tests/router on sys.path,
as tests/net does), and devices driving ``MqttSession`` by hand (mqtt_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))

from router_helpers import World, new_world


@pytest.fixture
def world() -> World:
    return new_world()
