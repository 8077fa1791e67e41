"""The queue store's duplicate-suppression window: a ``DedupWindow`` whose additions are journaled to tmpfs
with the store's other changes, so a process crash forgets none of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dedup import DedupWindow
from .recovery import _DEDUP, _REC_DEDUP

if TYPE_CHECKING:
    from .queue_store import QueueStore

__all__ = ["JournaledDedup"]


class JournaledDedup:
    """``DedupWindow`` whose additions are journaled with the store's other changes."""

    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self.window = DedupWindow(store.options.dedup)

    def seen_or_add(self, msg_id: bytes, now: float) -> bool:
        """``True`` if ``msg_id`` is a duplicate within the window; otherwise remember it."""
        if self.window.seen_or_add(msg_id, now):
            return True
        store = self._store
        store._log(_DEDUP.pack(_REC_DEDUP, now + store._offset) + msg_id)
        return False

    def __len__(self) -> int:
        return len(self.window)
