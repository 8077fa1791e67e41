"""Fixtures for the storage tests: a durable store path on the real filesystem and a journal dir on
tmpfs (``/dev/shm``), both removed afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def journal_dir() -> Iterator[str]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = tempfile.mkdtemp(prefix="wmq-test-journal-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store_path(tmp_path: object) -> str:
    return os.path.join(str(tmp_path), "queue")
