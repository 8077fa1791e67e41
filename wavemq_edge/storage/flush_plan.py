"""Phase one of a flush: the snapshot of what changed since the last one, taken on the loop thread.

Every queue with new items or a moved head contributes its delta (``RingQueue.plan_flush``), headers
that changed and queues that went are listed, the dedup window's ids are carried into the new journal
segment (they reach LMDB only at a clean stop, so a window in which every message was delivered and
acknowledged writes nothing to flash), and
the tmpfs journal rotates so the flush covers exactly the records before the new segment. Enqueue times
travel to disk as wall-clock seconds. Phases two and three (the synced transaction in a worker thread,
then applying the outcome) are ``QueueStore.write_flush`` and ``complete_flush``.

RAM bound: unflushed payloads (charged ``PENDING_ITEM_RAM_BYTES`` each beyond their size) trigger a flush at
``flush_bytes``; while that flush is written, new ones collect for the next. At ``RAM_LIMIT_FLUSHES`` times
``flush_bytes`` the store is full (``QueueStore.ram_full``): the server stops reading publishers until a
flush has moved the payloads to disk, so a queue's RAM is bounded by bytes however fast they publish.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from .backend import FlushBatch
from .options import StoreOptions
from .recovery import _APPEND, _DEDUP, _REC_APPEND, _REC_DEDUP, _REC_TAIL, _TAIL

if TYPE_CHECKING:
    from .journal import Journal
    from .queue_store import QueueStore
    from .ring_queue import RingQueue

__all__ = ["RAM_LIMIT_FLUSHES", "plan_flush", "ram_limit_bytes"]

#: Unflushed RAM allowed, in flushes: one being written and one filling.
RAM_LIMIT_FLUSHES: Final = 2


def ram_limit_bytes(options: StoreOptions) -> int:
    """The most a store keeps unflushed in RAM before publishers are held back (see the docstring)."""
    return RAM_LIMIT_FLUSHES * options.flush_bytes


def plan_flush(store: QueueStore, now: float, final: bool = False) -> FlushBatch | None:
    """Snapshot the durable delta (loop thread; no I/O except rotating the tmpfs journal).
    Returns ``None`` while another flush is in flight. ``final`` (close): message ids go to LMDB even
    when nothing else changed."""
    if store._in_flight is not None:
        return None
    journal = store._journal
    covers = journal.open_next() if journal is not None else store._covered_gen
    batch = FlushBatch(covers_gen=covers, next_incarnation=store._next_inc)
    batch.drop_incarnations = list(store._removed_incs)
    batch.headers = [(qid, None) for qid in sorted(store._removed_headers) if qid not in store._queues]
    # The settle spares a commit at a steady flow; a flush that size or RAM made due writes everything
    # (publishers may be held until it has).
    size_due = store._pending_bytes_total >= store.options.flush_bytes
    settled_before = math.inf if final or size_due else now - store.options.flush_settle_s
    deferred = False
    left: list[tuple[RingQueue, int]] = []  # queues with items left for the next flush, from that seq
    for q in store._queues.values():
        if q.header_dirty:
            batch.headers.append((q.queue_id, store._header(q)))
            q.header_dirty = False
            q.persisted_last_active = q.last_active
            q.persisted_next = q.tail
            q.has_db = True  # the header and the database are created in the same transaction
        if q.pending or q.disk_head < min(q.head, q.disk_tail):
            entry = q.plan_flush(settled_before)
            if entry.new_tail < q.tail:
                deferred = True
                left.append((q, max(entry.new_tail, q.head)))
            batch.entries.append(entry)
            batch.item_count += len(entry.items)
            for _seq, _when, item in entry.items:
                batch.item_bytes += len(item)
    if journal is not None:
        _carry_into_journal(store, journal, left)
    # Enqueue times travel to disk as wall-clock seconds.
    offset = store._offset
    for entry in batch.entries:
        entry.items[:] = [(seq, when + offset, item) for seq, when, item in entry.items]
    durable_change = bool(
        batch.drop_incarnations
        or batch.headers
        or any(e.items or e.delete_to > e.delete_from for e in batch.entries)
    )
    puts, deletes = _dedup_delta(store, final)
    batch.dedup_put = [(msg_id, when + offset) for msg_id, when in puts]
    batch.dedup_delete = deletes
    store._batch_dedup_puts = puts
    batch.empty = not (durable_change or batch.dedup_put or batch.dedup_delete)
    store._dirty = deferred  # items that were too young wait for the next flush, which must come
    store._in_flight = batch
    store._scheduler.started()
    return batch


def _carry_into_journal(store: QueueStore, journal: Journal, left: list[tuple[RingQueue, int]]) -> None:
    """What the fresh journal segment must hold because the segments this flush drops held it."""
    # A queue emptied in-window keeps no key that tells its next sequence, and its header is
    # not rewritten for that (flash). The fresh segment records it, so a crash-restart never
    # reuses a sequence number; only a power cut can (README, "API for the router").
    tails = [
        _TAIL.pack(_REC_TAIL, q.incarnation, q.tail)
        for q in store._queues.values()
        if q.depth == 0 and q.tail > q.persisted_next
    ]
    if tails:
        journal.write_many(tails)
    # Items left for the next flush: their append records are in the segments this flush drops,
    # so they are written again into the fresh one (replay skips a sequence it already has).
    appends = [
        _APPEND.pack(_REC_APPEND, q.incarnation, seq, q.enqueue_time(seq) + store._offset) + q.pending[seq]
        for q, first in left
        for seq in range(first, q.tail)
    ]
    if appends:
        journal.write_many(appends)


def _dedup_delta(store: QueueStore, final: bool) -> tuple[list[tuple[bytes, float]], list[bytes]]:
    """The duplicate window's puts and deletes for this flush's transaction."""
    journal = store._journal
    if final or journal is None:
        return store.dedup.window.take_delta()
    # Message ids never go to flash while the router runs (the window turns over completely every
    # few minutes under load, so writing it cost more than the messages: 55 B per message delivered
    # in the window). The ids not yet in LMDB move to the fresh journal segment, so dropping the old
    # segments forgets none; the final flush of a clean stop writes them. A power cut forgets them,
    # which only lets a resent message through once more (at-least-once, as for the rest of the window).
    carried = store.dedup.window.unflushed()
    if carried:
        offset = store._offset
        journal.write_many([_DEDUP.pack(_REC_DEDUP, when + offset) + msg_id for msg_id, when in carried])
    return [], []
