"""Duplicate-suppression window: recently seen message ids, bounded by count and age.

Pure bookkeeping (``now`` passed in). Ids are kept in arrival order, so the oldest is evicted first when
there are more than ``max_ids`` or it is older than ``max_age_s``. The window survives restarts: new ids
and evictions are collected as a delta that the queue store writes in its next flush transaction (no
fsync per id) and also journals to tmpfs, so a process crash forgets nothing and a power cut forgets at
most one flush window, after which a resent message may be delivered twice (at-least-once).
"""

from __future__ import annotations

from collections import OrderedDict

from .options import DedupOptions

__all__ = ["DedupWindow"]


class DedupWindow:
    def __init__(self, options: DedupOptions) -> None:
        self.options = options
        self._ids: OrderedDict[bytes, float] = OrderedDict()
        self._durable: set[bytes] = set()
        self._put: dict[bytes, float] = {}
        self._delete: set[bytes] = set()
        self.evicted = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, msg_id: bytes) -> bool:
        return msg_id in self._ids

    def load(self, msg_id: bytes, when: float, durable: bool) -> None:
        """Recovery (durable entries first, in time order; then journal replay)."""
        self._ids[msg_id] = when
        self._ids.move_to_end(msg_id)
        if durable:
            self._durable.add(msg_id)
        else:
            self._put[msg_id] = when
            self._delete.discard(msg_id)

    def seen_or_add(self, msg_id: bytes, now: float) -> bool:
        """``True`` if ``msg_id`` was seen within the window (a duplicate); otherwise remember it."""
        if len(msg_id) > self.options.max_id_bytes:
            raise ValueError(
                f"message id of {len(msg_id)} bytes exceeds DedupOptions.max_id_bytes={self.options.max_id_bytes}"
            )
        self.expire(now)
        if msg_id in self._ids:
            self.duplicates += 1
            return True
        self._ids[msg_id] = now
        self._put[msg_id] = now
        self._delete.discard(msg_id)
        self._evict_over_count()
        return False

    def expire(self, now: float) -> None:
        cutoff = now - self.options.max_age_s
        ids = self._ids
        while ids:
            _msg_id, when = next(iter(ids.items()))
            if when > cutoff:
                break
            self._forget_oldest()

    def _evict_over_count(self) -> None:
        while len(self._ids) > self.options.max_ids:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        msg_id, _when = self._ids.popitem(last=False)
        self.evicted += 1
        self._put.pop(msg_id, None)
        if msg_id in self._durable:
            self._durable.discard(msg_id)
            self._delete.add(msg_id)

    def unflushed(self) -> list[tuple[bytes, float]]:
        """Ids remembered but not yet in LMDB (what a crash journal must keep), oldest first."""
        return list(self._put.items())

    @property
    def dirty(self) -> bool:
        return bool(self._put or self._delete)

    def take_delta(self) -> tuple[list[tuple[bytes, float]], list[bytes]]:
        """The puts and deletes for the next flush; call ``delta_committed`` or ``delta_failed``."""
        puts = list(self._put.items())
        deletes = list(self._delete)
        self._put = {}
        self._delete = set()
        return puts, deletes

    def delta_committed(self, puts: list[tuple[bytes, float]]) -> None:
        for msg_id, _when in puts:
            if msg_id in self._ids:
                self._durable.add(msg_id)
            else:
                self._delete.add(msg_id)  # evicted while the flush ran: delete it next time

    def delta_failed(self, puts: list[tuple[bytes, float]], deletes: list[bytes]) -> None:
        for msg_id, when in puts:
            if msg_id in self._ids and msg_id not in self._put:
                self._put[msg_id] = when
        for msg_id in deletes:
            if msg_id not in self._ids:
                self._delete.add(msg_id)
