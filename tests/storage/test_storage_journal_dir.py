"""Storage reads no environment: the journal directory is a parameter, and a store whose journal directory
was never chosen (``None``) is refused at open, before anything is written, instead of quietly running
without crash safety."""

from __future__ import annotations

import os
import time

import pytest

from wavemq_edge.storage import MemoryBackend, PersistOptions, PersistStore, QueueStore, StoreOptions
from wavemq_edge.storage.options import JOURNAL_DIR_UNSET


def test_queue_store_without_a_chosen_journal_dir_is_refused(store_path: str) -> None:
    with pytest.raises(ValueError, match=r"StoreOptions\.journal_dir is not set"):
        QueueStore.open(StoreOptions(path=store_path), 0.0, time.time())
    with pytest.raises(ValueError, match="journal_dir is not set"):
        QueueStore(MemoryBackend(), StoreOptions(path="(memory)"), 0.0, time.time())


def test_persist_store_without_a_chosen_journal_dir_is_refused(tmp_path: object) -> None:
    with pytest.raises(ValueError, match=r"PersistOptions\.journal_dir is not set"):
        PersistStore.open(PersistOptions(path=os.path.join(str(tmp_path), "persist")), 0.0)


def test_the_given_journal_dir_is_used_and_empty_means_none(store_path: str, journal_dir: str) -> None:
    s = QueueStore.open(StoreOptions(path=store_path, journal_dir=journal_dir), 0.0, time.time())
    assert sorted(os.listdir(journal_dir)) == sorted([s.store_id.hex(), "journal.key"])
    s.close(0.0)
    s = QueueStore(MemoryBackend(), StoreOptions(path="(memory)", journal_dir=""), 0.0, time.time())
    assert s.store_stats().journal_dir is None
    assert "config.Environment.journal_dir" in JOURNAL_DIR_UNSET
