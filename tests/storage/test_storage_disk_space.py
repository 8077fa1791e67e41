"""``stored_bytes`` against what LMDB really writes: the disk check of a publish charges each message at
this estimate, so it must not fall below the file's growth (a refusal too late would break the promise)
nor be wildly above it (a refusal too early wastes the disk)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from wavemq_edge.storage import (
    PersistOptions,
    PersistStore,
    QueueKind,
    QueueLimits,
    QueueStore,
    StoreOptions,
    free_space,
    stored_bytes,
)

ITEMS = 1000
NS = "oOQCIA3mQ_DHPEddtOty_dVGaA2jTFFhf_zHY-NTTgJKMYLI"


def _file(path: Path) -> int:
    return (path / "data.mdb").stat().st_size


@pytest.mark.parametrize("size", [50, 200, 1000, 1900, 2048, 5000])
def test_queue_item_estimate_covers_the_file_growth(tmp_path: Path, size: int) -> None:
    s = QueueStore.open(StoreOptions(path=str(tmp_path / "q"), journal_dir=""), 0.0, time.time())
    s.create_queue("q", QueueKind.TRUNK, QueueLimits(1_000_000, 1 << 40, 0.0), 0.0)
    s.flush(0.0)
    before = _file(tmp_path / "q")
    for _ in range(ITEMS):
        s.append("q", os.urandom(size), 0.0)
    s.flush(1.0)
    per_item = (_file(tmp_path / "q") - before) / ITEMS
    s.close(2.0)
    assert per_item <= stored_bytes(size) <= 1.25 * per_item, (size, per_item, stored_bytes(size))


@pytest.mark.parametrize("size", [50, 200, 1000, 1900, 2048, 5000])
def test_persisted_message_estimate_covers_the_file_growth(tmp_path: Path, size: int) -> None:
    from wavemq_edge.router.disk_guard import PERSIST_FILL, PERSIST_KEY_BYTES

    ps = PersistStore.open(PersistOptions(path=str(tmp_path / "p"), journal_dir=""), 0.0)
    ps.flush(0.0)
    before = _file(tmp_path / "p")
    for i in range(ITEMS):
        ps.put(NS, f"sensors/t{i}", os.urandom(size))
    ps.flush(1.0)
    per_item = (_file(tmp_path / "p") - before) / ITEMS
    ps.close(2.0)
    estimate = stored_bytes(size, key=PERSIST_KEY_BYTES, value_header=0, fill=PERSIST_FILL)
    assert per_item <= estimate <= (3.0 if size < 200 else 2.0) * per_item, (size, per_item, estimate)


def test_free_space_names_the_filesystem(tmp_path: Path) -> None:
    here = free_space(str(tmp_path))
    assert here is not None and here.free_bytes > 0 and here.device == os.stat(tmp_path).st_dev
    assert free_space(str(tmp_path / "missing")) is None
