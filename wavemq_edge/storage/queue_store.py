"""The queue store: many bounded FIFO queues in one LMDB environment, flushed in batches.

Theory of operation
-------------------
Every queue is a ``RingQueue`` (pure bookkeeping). An accepted change (create, append, ack, drop,
touch, remove, dedup id) is applied in memory and appended to the tmpfs ``Journal`` before the call
returns; nothing touches flash. A *flush* turns the difference between the durable state and the
memory state into one ``FlushBatch`` and commits it in one synced LMDB write transaction:

1. ``prepare_flush(now)`` (event-loop thread, pure): rotates the journal to a new segment and snapshots
   the delta: new items still live, durable keys now acked or dropped, changed headers, removed queues,
   dedup ids. Items appended *and* acked since the last flush appear nowhere: zero flash bytes.
2. ``write_flush(batch)`` (blocking: run it in a worker thread): one write transaction + fsync. The
   loop keeps appending, peeking and acking meanwhile; all of that goes to the new journal segment.
3. ``complete_flush(batch, outcome, now)`` (loop thread): on success the durable ranges move, the
   written payloads leave RAM, and the journal segments the batch covers are deleted. On failure the
   delta stays pending for the next attempt (with backoff; ``flush_failure`` says why); if the map or
   the disk is full, the oldest backlog is shed (``storage-full``) only under ``shed_when_full``.

Recovery (``open``): load headers and item sizes/times from LMDB (payloads stay on disk), then replay
the journal segments newer than the generation the last commit covered. After a reboot tmpfs is empty
(or the boot id differs), so the durable state alone is used.

Clocks: every ``now`` is the caller's monotonic clock (``loop.time()``). Persisted times are wall-clock
(``now + (wall_time - now_at_open)``), since the monotonic clock restarts at boot; loaded times in the
future (a Pi without RTC booting with an old clock) are clamped to ``now``.
"""

from __future__ import annotations

import logging
from typing import Final

import cbor2

from .backend import Backend, FlushBatch, LmdbQueueBackend
from .errors import (
    CorruptStoreError,
    QueueExistsError,
    StorageError,
    TooManyQueuesError,
    UnknownQueueError,
)
from .flush_plan import plan_flush, ram_limit_bytes
from .flush_scheduler import FlushScheduler
from .journal import Journal, JournalReport
from .journaled_dedup import JournaledDedup
from .lmdb_env import StorageFullError
from .options import QueueKind, QueueLimits, StoreOptions
from .recovery import (
    _APPEND,
    _HEAD,
    _REC_APPEND,
    _REC_CREATE,
    _REC_HEAD,
    _REC_REMOVE,
    _REC_TOUCH,
    _REMOVE,
    _TOUCH,
    recover,
)
from .ring_queue import ACK, DropReason, QueueStats, RingQueue
from .store_types import FlushOutcome, QueueExpired, StoreStats

__all__ = ["FlushOutcome", "QueueExpired", "QueueStore", "StoreStats"]

log = logging.getLogger("wavemq_edge.storage")

#: Fraction of a queue's items shed when the map cannot grow any more (reason ``storage-full``).
_STORAGE_FULL_SHED_FRACTION: Final = 4


class QueueStore:
    """See the module docstring. Not thread-safe except ``write_flush``, which may run in one worker
    thread concurrently with every other method (but not ``close``)."""

    def __init__(self, backend: Backend, options: StoreOptions, now: float, wall_time: float) -> None:
        self.options = options
        self._backend = backend
        self._offset = wall_time - now
        self._queues: dict[str, RingQueue] = {}
        self._by_inc: dict[int, RingQueue] = {}
        self._removed_incs: list[int] = []
        self._removed_headers: set[str] = set()
        self._next_inc = 1
        self._covered_gen = 0
        self._dirty = False
        self._in_flight: FlushBatch | None = None
        self._batch_dedup_puts: list[tuple[bytes, float]] = []
        self._scheduler = FlushScheduler(options.flush_interval_s, options.flush_bytes, options.journal_max_bytes, now)
        self.dedup = JournaledDedup(self)
        self.flushes = 0
        self.empty_flushes = 0
        self.failed_flushes = 0
        self.items_written = 0
        self.bytes_written = 0
        self.journal_report = JournalReport()
        self._journal: Journal | None = None
        self.journal_on_tmpfs: bool | None = None
        self._closed = False
        self._pending_bytes_total = 0  # RAM of unflushed payloads (RingQueue.pending_ram)
        self._ram_limit = ram_limit_bytes(options)
        self.flush_failure: str | None = None  # why the last flush failed; None once one succeeded
        self._write_error = ""  # set by write_flush (worker thread), read by complete_flush
        #: the store's identity, read (or made) by the backend at recovery; names its journal directory
        self.store_id = b""
        recover(self, now)
        self._pending_bytes_total = sum(q.pending_ram for q in self._queues.values())

    # ----------------------------------------------------------------- open / recovery

    @classmethod
    def open(cls, options: StoreOptions, now: float, wall_time: float, backend: Backend | None = None) -> QueueStore:
        """Open (or create) the store at ``options.path``; ``wall_time`` is ``time.time()``."""
        if backend is None:
            backend = LmdbQueueBackend(options.path, options.map_size, options.max_map_size, options.max_queues)
        try:
            return cls(backend, options, now, wall_time)
        except BaseException:
            backend.close()
            raise

    def _from_wall(self, wall: float, now: float) -> float:
        t = wall - self._offset
        return t if t < now else now

    def _wall(self, now: float) -> float:
        return now + self._offset

    # ----------------------------------------------------------------- journal helpers

    def _log(self, *bodies: bytes) -> None:
        self._dirty = True
        journal = self._journal
        if journal is not None and not journal.broken:
            journal.write_many(bodies)

    def _queue(self, queue_id: str) -> RingQueue:
        q = self._queues.get(queue_id)
        if q is None:
            raise UnknownQueueError(f"queue {queue_id!r} is not open in store {self.options.path!r}")
        return q

    def _forget_queue(self, q: RingQueue) -> None:
        del self._queues[q.queue_id]
        del self._by_inc[q.incarnation]
        if q.has_db:
            self._removed_incs.append(q.incarnation)
            self._removed_headers.add(q.queue_id)

    # ----------------------------------------------------------------- queue API

    def create_queue(
        self, queue_id: str, kind: QueueKind, limits: QueueLimits, now: float, exist_ok: bool = True
    ) -> QueueStats:
        """Create a queue, or return the existing one's stats. For an existing queue, ``limits`` replace
        the recorded ones (an operator who lowers ``trunkingQueueMaxLength`` expects it to apply after a
        restart; WAVEMQ kept the old bounds); a queue now over its bounds drops its oldest items, counted,
        at the next append."""
        q = self._queues.get(queue_id)
        if q is not None:
            if not exist_ok:
                raise QueueExistsError(f"queue {queue_id!r} already exists in store {self.options.path!r}")
            if q.limits != limits:
                log.info("event=queue_limits_changed queue=%s old=%s new=%s", queue_id, q.limits, limits)
                q.limits = limits
                q.header_dirty = True
                self._dirty = True
            return q.stats()
        open_dbs = len(self._queues) + len(self._removed_incs)
        if open_dbs >= self.options.max_queues:
            raise TooManyQueuesError(
                f"store {self.options.path!r}: cannot create queue {queue_id!r}: {len(self._queues)} queues "
                f"(+{len(self._removed_incs)} removed, not yet flushed) reach max_queues={self.options.max_queues}"
            )
        kind = QueueKind(kind)
        inc = self._next_inc
        self._next_inc += 1
        q = RingQueue(queue_id, kind, limits, inc, now)
        header = self._header(q)
        self._log(bytes([_REC_CREATE]) + header)
        self._queues[queue_id] = q
        self._by_inc[inc] = q
        return q.stats()

    def _header(self, q: RingQueue) -> bytes:
        return bytes(
            cbor2.dumps(
                {
                    "id": q.queue_id,
                    "kind": q.kind.value,
                    "ml": q.limits.max_length,
                    "mb": q.limits.max_bytes,
                    "exp": q.limits.expiry_s,
                    "inc": q.incarnation,
                    "created": self._wall(q.created),
                    "active": self._wall(q.last_active),
                    "next": q.tail,
                    "drops": list(q.drops),
                }
            )
        )

    def has_queue(self, queue_id: str) -> bool:
        return queue_id in self._queues

    def queue_ids(self) -> list[str]:
        return list(self._queues)

    def append(self, queue_id: str, item: bytes, now: float) -> int:
        """Accept ``item`` at the tail (dropping the oldest at a bound, counted); returns its sequence.
        When this returns, the item survives a process crash (journal) and, after the next flush, a
        power cut."""
        q = self._queue(queue_id)
        n_count, n_bytes = q.overflow_drops(len(item))
        seq = q.tail
        rec = _APPEND.pack(_REC_APPEND, q.incarnation, seq, now + self._offset) + item
        before = q.pending_ram
        if n_count or n_bytes:
            # each drop counted under the bound that caused it: first the count bound, then bytes
            records: list[bytes] = []
            if n_count:
                records.append(_HEAD.pack(_REC_HEAD, q.incarnation, q.head + n_count, DropReason.OVERFLOW_COUNT))
            if n_bytes:
                records.append(_HEAD.pack(_REC_HEAD, q.incarnation, q.head + n_count + n_bytes,
                                          DropReason.OVERFLOW_BYTES))
            self._log(*records, rec)
            if n_count:
                q.advance_head(q.head + n_count, DropReason.OVERFLOW_COUNT)
            if n_bytes:
                q.advance_head(q.head + n_bytes, DropReason.OVERFLOW_BYTES)
        else:
            self._log(rec)
        q.append(item, now)
        self._pending_delta(q.pending_ram - before)
        return seq

    def _pending_delta(self, delta: int) -> None:
        self._pending_bytes_total += delta

    @property
    def unflushed_bytes(self) -> int:
        """Unflushed payloads as charged in RAM (size plus bookkeeping): at least what the next flush
        writes, so the disk check that uses it errs on the side of refusing."""
        return self._pending_bytes_total

    def ram_full(self) -> bool:
        """Unflushed payloads reached the RAM bound (``flush_plan.py``): hold publishers back until a flush."""
        return self._pending_bytes_total >= self._ram_limit

    def peek(self, queue_id: str, after_seq: int, max_items: int) -> list[tuple[int, bytes]]:
        """Up to ``max_items`` live items with sequence > ``after_seq``, oldest first. Payloads not yet
        flushed come from RAM, older ones from LMDB (a read transaction; no write)."""
        q = self._queue(queue_id)
        start = max(after_seq + 1, q.head)
        if max_items <= 0 or start >= q.tail:
            return []
        boundary = max(q.head, q.disk_tail)
        out: list[tuple[int, bytes]] = []
        if start < boundary:
            stop = min(boundary, start + max_items)
            out = self._backend.read_items(q.incarnation, start, stop, max_items)
            if len(out) != stop - start:
                raise CorruptStoreError(
                    f"store {self.options.path!r}: queue {queue_id!r} items {start}..{stop - 1} should be "
                    f"durable but {stop - start - len(out)} are missing"
                )
            start = stop
        pending = q.pending
        seq = start
        while seq < q.tail and len(out) < max_items:
            out.append((seq, pending[seq]))
            seq += 1
        return out

    def ack(self, queue_id: str, upto_seq: int, now: float | None = None) -> int:
        """Remove every item with sequence <= ``upto_seq``; returns how many. With ``now`` it also
        counts as consumer activity (``touch``)."""
        q = self._queue(queue_id)
        if now is not None:
            self.touch(queue_id, now)
        new_head = min(upto_seq + 1, q.tail)
        if new_head <= q.head:
            return 0
        self._log(_HEAD.pack(_REC_HEAD, q.incarnation, new_head, ACK))
        before = q.pending_ram
        n = q.advance_head(new_head, ACK)
        self._pending_delta(q.pending_ram - before)
        return n

    def touch(self, queue_id: str, now: float) -> None:
        """Consumer activity: postpones idle expiry of a subscription queue by ``expiry_s``."""
        q = self._queue(queue_id)
        if now > q.last_active:
            self._log(_TOUCH.pack(_REC_TOUCH, q.incarnation, now + self._offset))
            q.touch(now, self.options.touch_persist_granularity_s)

    def shed_oldest(
        self,
        queue_id: str,
        max_items: int | None = None,
        max_bytes: int | None = None,
        reason: DropReason = DropReason.BUDGET,
    ) -> int:
        """Drop the oldest items (at most ``max_items``, or until ``max_bytes`` are freed), counted
        under ``reason``; returns how many were dropped."""
        if max_items is None and max_bytes is None:
            raise ValueError("shed_oldest needs max_items or max_bytes")
        q = self._queue(queue_id)
        return self._drop_to(q, q.oldest_bytes_upto(max_items, max_bytes), reason)

    def _drop_to(self, q: RingQueue, new_head: int, reason: int) -> int:
        if new_head <= q.head:
            return 0
        self._log(_HEAD.pack(_REC_HEAD, q.incarnation, new_head, reason))
        before = q.pending_ram
        n = q.advance_head(new_head, reason)
        self._pending_delta(q.pending_ram - before)
        return n

    def remove_queue(self, queue_id: str) -> None:
        q = self._queue(queue_id)
        self._log(_REMOVE.pack(_REC_REMOVE, q.incarnation))
        self._pending_delta(-q.pending_ram)
        self._forget_queue(q)

    def stats(self, queue_id: str) -> QueueStats:
        return self._queue(queue_id).stats()

    def store_stats(self) -> StoreStats:
        drops = {reason.label: 0 for reason in DropReason}
        items = total = unflushed = unflushed_bytes = 0
        for q in self._queues.values():
            items += q.depth
            total += q.bytes
            unflushed += len(q.pending)
            unflushed_bytes += q.pending_bytes
            for reason in DropReason:
                drops[reason.label] += q.drops[reason]
        journal = self._journal
        return StoreStats(
            queues=len(self._queues),
            items=items,
            bytes=total,
            unflushed_items=unflushed,
            unflushed_bytes=unflushed_bytes,
            flushes=self.flushes,
            empty_flushes=self.empty_flushes,
            failed_flushes=self.failed_flushes,
            commits=self._backend.commits,
            items_written=self.items_written,
            bytes_written=self.bytes_written,
            journal_enabled=journal is not None,
            journal_ok=journal is not None and not journal.broken,
            journal_on_tmpfs=self.journal_on_tmpfs,
            journal_dir=journal.directory if journal is not None else None,
            recovered_records=self.journal_report.records,
            drops=drops,
        )

    # ----------------------------------------------------------------- timers

    def handle_timer(self, now: float) -> list[QueueExpired]:
        """Drop aged items (``expired``) and remove idle subscription queues; returns the removals so
        the router can drop their subscriptions. Flushing is separate (``prepare_flush``)."""
        removed: list[QueueExpired] = []
        for q in list(self._queues.values()):
            if q.is_idle_expired(now):
                removed.append(QueueExpired(q.queue_id, now - q.last_active))
                log.info("event=queue_expired queue=%s idle_s=%.0f depth=%d", q.queue_id, now - q.last_active, q.depth)
                self.remove_queue(q.queue_id)
                continue
            self._drop_to(q, q.expired_upto(now), DropReason.EXPIRED)
        self.dedup.window.expire(now)
        return removed

    def next_expiry_deadline(self) -> float | None:
        best: float | None = None
        for q in self._queues.values():
            d = q.next_deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def next_flush_deadline(self) -> float | None:
        journal = self._journal
        return self._scheduler.next_deadline(
            # message ids alone do not make a flush due: they ride in the journal (flush_plan.py)
            self._dirty or bool(self._removed_incs) or (self._journal is None and self.dedup.window.dirty),
            self._pending_bytes_total,
            journal.segment_bytes if journal is not None else 0,
            journal is not None and journal.broken,
        )

    def next_deadline(self) -> float | None:
        """The earliest of ``next_flush_deadline`` and ``next_expiry_deadline``."""
        a = self.next_flush_deadline()
        b = self.next_expiry_deadline()
        if a is None:
            return b
        if b is None:
            return a
        return a if a < b else b

    def flush_due(self, now: float) -> bool:
        d = self.next_flush_deadline()
        return d is not None and d <= now

    # ----------------------------------------------------------------- flush

    def prepare_flush(self, now: float, final: bool = False) -> FlushBatch | None:
        """Snapshot the durable delta (loop thread; no I/O except rotating the tmpfs journal).
        Returns ``None`` while another flush is in flight (``flush_plan.py``)."""
        return plan_flush(self, now, final)

    def write_flush(self, batch: FlushBatch) -> FlushOutcome:
        """Commit ``batch`` in one synced transaction. Blocking; safe in a worker thread while the loop
        thread keeps using the store. An empty batch costs no transaction and no flash write."""
        if batch.empty:
            return FlushOutcome.OK
        try:
            self._backend.commit(batch)
        except StorageError as e:
            full, self._write_error = isinstance(e, StorageFullError), str(e)
            log.error("event=flush_failed reason=%s detail=%r", "storage_full" if full else "write_error", str(e))
            return FlushOutcome.STORAGE_FULL if full else FlushOutcome.FAILED
        return FlushOutcome.OK

    def complete_flush(self, batch: FlushBatch, outcome: FlushOutcome, now: float) -> None:
        """Apply the outcome of ``write_flush`` (loop thread)."""
        if batch is not self._in_flight:
            raise StorageError("complete_flush called with a batch that is not the one in flight")
        self._in_flight = None
        puts = self._batch_dedup_puts
        self._batch_dedup_puts = []
        if outcome is FlushOutcome.OK:
            for entry in batch.entries:
                q = self._by_inc.get(entry.incarnation)
                if q is not None:
                    before = q.pending_ram
                    q.complete_flush(entry)
                    self._pending_delta(q.pending_ram - before)
                elif entry.incarnation not in self._removed_incs:
                    self._removed_incs.append(entry.incarnation)  # removed while this batch ran
            dropped = set(batch.drop_incarnations)
            self._removed_incs = [inc for inc in self._removed_incs if inc not in dropped]
            for qid, header in batch.headers:
                if header is None:
                    self._removed_headers.discard(qid)
            self._removed_headers -= set(self._queues)
            self._covered_gen = batch.covers_gen
            if self._journal is not None:
                self._journal.drop_upto(batch.covers_gen)
            self.dedup.window.delta_committed(puts)
            self.flushes += 1
            if batch.empty:
                self.empty_flushes += 1
            self.items_written += batch.item_count
            self.bytes_written += batch.item_bytes
            self._scheduler.completed(now, ok=True)
            self.flush_failure = None
            return
        self.failed_flushes += 1
        self.flush_failure = self._write_error or outcome.value
        self._dirty = True
        for qid, header in batch.headers:
            q = self._queues.get(qid)
            if header is not None and q is not None:
                q.header_dirty = True
        self.dedup.window.delta_failed(puts, batch.dedup_delete)
        self._scheduler.completed(now, ok=False)
        if outcome is FlushOutcome.STORAGE_FULL and self.options.shed_when_full:
            self._shed_for_space()

    def _shed_for_space(self) -> None:
        """The map cannot grow: drop the oldest quarter of the largest queue (counted)."""
        if not self._queues:
            return
        q = max(self._queues.values(), key=lambda x: (x.bytes, x.queue_id))
        n = max(1, q.depth // _STORAGE_FULL_SHED_FRACTION)
        dropped = self._drop_to(q, q.head + n, DropReason.STORAGE_FULL)
        log.error("event=storage_full_shed queue=%s dropped=%d", q.queue_id, dropped)

    def flush(self, now: float, final: bool = False) -> FlushOutcome:
        """prepare + write + complete on the calling thread (tests, shutdown, simple callers)."""
        batch = self.prepare_flush(now, final)
        if batch is None:
            raise StorageError("flush called while another flush is in flight")
        outcome = self.write_flush(batch)
        self.complete_flush(batch, outcome, now)
        return outcome

    def close(self, now: float) -> FlushOutcome:
        """Final flush, then close. After a successful final flush the journal is deleted (nothing to
        replay); after a failed one it is kept, so a process restart still recovers."""
        if self._closed:
            return FlushOutcome.OK
        if self._in_flight is not None:
            raise StorageError("close called while a flush is in flight; complete it first")
        self._dirty = True
        for q in self._queues.values():
            q.header_dirty = True  # record next seq and last activity for the restart
        outcome = self.flush(now, final=True)
        if self._journal is not None:
            self._journal.close(remove_all=outcome is FlushOutcome.OK)
        self._backend.close()
        self._closed = True
        return outcome

    def abandon(self) -> None:
        """Close without flushing, as a crash would (tests)."""
        if self._journal is not None:
            self._journal.close(remove_all=False)
        self._backend.close()
        self._closed = True

