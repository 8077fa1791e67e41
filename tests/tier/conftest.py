"""Fixtures of the tiering tests (helpers live in tier_helpers.py and fault_proxy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tier_helpers import Tier, make_tier


@pytest.fixture
def tier(tmp_path: Path) -> Iterator[Tier]:
    t = make_tier(tmp_path)
    yield t
    t.stop()
