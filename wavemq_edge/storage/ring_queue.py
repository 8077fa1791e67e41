"""Bookkeeping of one bounded FIFO queue: pure, no I/O, no clock, written for mypyc.

Theory of operation
-------------------
Items get consecutive sequence numbers. The live items are the range ``[head, tail)``; an ack or a drop
only ever moves ``head`` forward, an append moves ``tail`` forward, so the live set is always one
contiguous range and a per-item sequence never has to be stored. For every live item we keep its size
and enqueue time in two ``array`` columns (16 bytes per item: a 100 000-item backlog costs 1.6 MB of
RAM, the payloads stay on disk).

Durability is tracked as a second range, ``[disk_head, disk_tail)``: the keys the durable store holds
as of the last completed flush. Payloads of live items at or above ``disk_tail`` are not durable yet and
are held in ``pending`` (seq -> bytes): the only copy in RAM (the journal record is written and gone, a
delivery encodes its own frame), charged to ``pending_ram`` at its size plus ``PENDING_ITEM_RAM_BYTES``, so
the store can bound what it keeps in RAM by bytes (many small items cost more than their payloads). A
flush (``plan_flush``) writes the pending items that are still live and deletes the durable keys below
``head``; an item appended and acked between two flushes is therefore never written (DESIGN.md "Flash is precious").

Bounds (wavemq-behaviour.md §4.3): before an append, while the queue is non-empty and one more item
would exceed ``max_length`` or ``max_bytes``, the oldest item is dropped and counted (``overflow-count``
or ``overflow-bytes``). As in the original, an item larger than ``max_bytes`` empties the queue and is
still accepted. Items older than ``expiry_s`` are dropped (``expired``) by ``expire``.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .options import QueueKind, QueueLimits

__all__ = ["PENDING_ITEM_RAM_BYTES", "DropReason", "FlushPlanEntry", "QueueStats", "RingQueue"]

#: Compact the per-item columns once this many dead slots precede ``head`` (and they are at least half
#: the columns), so acks stay O(1) amortised and dead slots never exceed the live ones for long.
_COMPACT_MIN: Final = 4096
#: RAM one unflushed item costs beyond its payload: its ``pending`` entry and bytes header (~135 B, measured
#: with tracemalloc for 100 000 64-byte items) plus its share of a flush plan while the flush runs (~128 B).
PENDING_ITEM_RAM_BYTES: Final = 256


class DropReason(IntEnum):
    """Why items left a queue without being acknowledged. The value is stored in the journal."""

    OVERFLOW_COUNT = 1
    OVERFLOW_BYTES = 2
    EXPIRED = 3
    BUDGET = 4
    #: The LMDB map could not grow past ``max_map_size`` (disk or address space exhausted).
    STORAGE_FULL = 5

    @property
    def label(self) -> str:
        return _REASON_LABELS[self]


_REASON_LABELS: Final = {
    DropReason.OVERFLOW_COUNT: "overflow-count",
    DropReason.OVERFLOW_BYTES: "overflow-bytes",
    DropReason.EXPIRED: "expired",
    DropReason.BUDGET: "budget",
    DropReason.STORAGE_FULL: "storage-full",
}
#: Not a drop: the head moved because the consumer acknowledged.
ACK: Final = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of one queue. ``drops`` maps a ``DropReason.label`` to a count of items."""

    queue_id: str
    kind: QueueKind
    depth: int
    bytes: int
    head: int
    tail: int
    appended: int
    acked: int
    drops: dict[str, int]
    unflushed_items: int
    durable_items: int
    last_active: float


@dataclass(frozen=True, slots=True)
class FlushPlanEntry:
    """What one flush does to one queue: delete durable keys ``[delete_from, delete_to)`` then write
    ``items`` (seq, enqueue time, payload); afterwards the durable range is ``[new_head, new_tail)``."""

    incarnation: int
    delete_from: int
    delete_to: int
    items: list[tuple[int, float, bytes]]
    new_head: int
    new_tail: int


class RingQueue:
    """One queue's bookkeeping; see the module docstring."""

    def __init__(
        self,
        queue_id: str,
        kind: QueueKind,
        limits: QueueLimits,
        incarnation: int,
        created: float,
        head: int = 1,
    ) -> None:
        self.queue_id = queue_id
        self.kind = kind
        self.limits = limits
        self.incarnation = incarnation
        self.created = created
        self.last_active = created
        self.persisted_last_active = created
        self.head = head
        self.tail = head
        self._base = head
        self._sizes: array[int] = array("q")
        self._times: array[float] = array("d")
        self.bytes = 0
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        #: ``pending_bytes`` plus ``PENDING_ITEM_RAM_BYTES`` per pending item: what the payloads cost in RAM
        self.pending_ram = 0
        self.disk_head = head
        self.disk_tail = head
        self.appended = 0
        self.acked = 0
        self.drops: list[int] = [0, 0, 0, 0, 0, 0]
        #: Header fields (drops, last_active, next seq) changed since the last flush.
        self.header_dirty = True
        #: ``next`` as written in the durable header (see ``QueueStore.prepare_flush``).
        self.persisted_next = head
        #: The durable store has (or is being given) a database for this incarnation.
        self.has_db = False

    # ----------------------------------------------------------------- queries

    @property
    def depth(self) -> int:
        return self.tail - self.head

    def next_deadline(self) -> float | None:
        """Earliest time at which ``expire`` has work: the head item ages out, or (subscription
        queues) the queue has been idle for ``expiry_s``."""
        exp = self.limits.expiry_s
        if exp <= 0:
            return None
        deadline: float | None = None
        if self.tail > self.head:
            deadline = self._times[self.head - self._base] + exp
        if self.kind is QueueKind.SUBSCRIPTION:
            idle = self.last_active + exp
            if deadline is None or idle < deadline:
                deadline = idle
        return deadline

    def is_idle_expired(self, now: float) -> bool:
        exp = self.limits.expiry_s
        return self.kind is QueueKind.SUBSCRIPTION and exp > 0 and now >= self.last_active + exp

    def stats(self) -> QueueStats:
        drops = {reason.label: self.drops[reason] for reason in DropReason}
        return QueueStats(
            queue_id=self.queue_id,
            kind=self.kind,
            depth=self.depth,
            bytes=self.bytes,
            head=self.head,
            tail=self.tail,
            appended=self.appended,
            acked=self.acked,
            drops=drops,
            unflushed_items=len(self.pending),
            durable_items=max(0, self.disk_tail - max(self.disk_head, self.head)),
            last_active=self.last_active,
        )

    # ----------------------------------------------------------------- mutations

    def overflow_drops(self, size: int) -> tuple[int, int]:
        """How many oldest items an append of ``size`` bytes must drop: (for the count bound, then for
        the bytes bound). The count bound is checked first at every step and, once met, stays met, so
        the drops are ``n_count`` for ``overflow-count`` followed by ``n_bytes`` for ``overflow-bytes``.
        Pure: nothing changes."""
        n_count = n_bytes = 0
        depth = self.tail - self.head
        total = self.bytes
        limits = self.limits
        n = 0
        while depth - n > 0:
            if depth - n + 1 > limits.max_length:
                n_count += 1
            elif total + size > limits.max_bytes:
                n_bytes += 1
            else:
                break
            total -= self._sizes[self.head + n - self._base]
            n += 1
        return n_count, n_bytes

    def append(self, item: bytes, now: float) -> int:
        """Append one item (the caller applied ``overflow_drops`` first). Returns its sequence."""
        seq = self.tail
        self._sizes.append(len(item))
        self._times.append(now)
        self.pending[seq] = item
        self.pending_bytes += len(item)
        self.pending_ram += len(item) + PENDING_ITEM_RAM_BYTES
        self.bytes += len(item)
        self.tail = seq + 1
        self.appended += 1
        return seq

    def reset_empty(self, seq: int) -> None:
        """Recovery: the queue is empty and its next item gets ``seq``."""
        if self.tail != self.head:
            raise ValueError(f"queue {self.queue_id!r}: reset_empty on a queue of depth {self.depth}")
        self.head = self.tail = self._base = self.disk_head = self.disk_tail = seq
        del self._sizes[:]
        del self._times[:]

    def restore(self, seq: int, size: int, when: float) -> None:
        """Recovery: register a durable item (payload stays on disk)."""
        if seq != self.tail:
            raise ValueError(f"queue {self.queue_id!r}: restored seq {seq} is not the tail {self.tail}")
        self._sizes.append(size)
        self._times.append(when)
        self.bytes += size
        self.tail = seq + 1
        self.disk_tail = self.tail

    def advance_head(self, new_head: int, reason: int) -> int:
        """Move ``head`` to ``new_head`` (clamped to ``tail``): an ack (``reason`` 0) or a drop.
        Returns the number of items removed."""
        if new_head > self.tail:
            new_head = self.tail
        n = new_head - self.head
        if n <= 0:
            return 0
        base = self._base
        sizes = self._sizes
        pending = self.pending
        for seq in range(self.head, new_head):
            size = sizes[seq - base]
            self.bytes -= size
            if pending.pop(seq, None) is not None:
                self.pending_bytes -= size
                self.pending_ram -= size + PENDING_ITEM_RAM_BYTES
        self.head = new_head
        if reason == ACK:
            self.acked += n
        else:
            self.drops[reason] += n
            self.header_dirty = True
        dead = new_head - base
        if dead >= _COMPACT_MIN and dead * 2 >= len(sizes):
            del self._sizes[:dead]
            del self._times[:dead]
            self._base = new_head
        return n

    def expired_upto(self, now: float) -> int:
        """The new head after dropping items older than ``expiry_s`` (== ``head`` if none)."""
        exp = self.limits.expiry_s
        seq = self.head
        if exp <= 0:
            return seq
        cutoff = now - exp
        base = self._base
        times = self._times
        while seq < self.tail and times[seq - base] <= cutoff:
            seq += 1
        return seq

    def touch(self, now: float, granularity_s: float) -> None:
        if now > self.last_active:
            self.last_active = now
            if now - self.persisted_last_active >= granularity_s:
                self.header_dirty = True

    def oldest_bytes_upto(self, max_items: int | None, max_bytes: int | None) -> int:
        """New head after shedding at most ``max_items`` items or at least ``max_bytes`` bytes."""
        seq = self.head
        freed = 0
        while seq < self.tail:
            if max_items is not None and seq - self.head >= max_items:
                break
            if max_bytes is not None and freed >= max_bytes:
                break
            freed += self._sizes[seq - self._base]
            seq += 1
        return seq

    # ----------------------------------------------------------------- flush

    def enqueue_time(self, seq: int) -> float:
        """When live item ``seq`` was enqueued (loop clock)."""
        return self._times[seq - self._base]

    def plan_flush(self, settled_before: float = math.inf) -> FlushPlanEntry:
        """The delta from the durable range to the live range. Pure: ``complete_flush`` applies it.
        Items enqueued after ``settled_before`` wait for the next flush (they are in the journal): one
        still in flight to a consumer when the flush starts is usually acknowledged a moment later, and
        writing it would cost a whole commit."""
        delete_to = min(self.head, self.disk_tail)
        start = max(self.head, self.disk_tail)
        base = self._base
        times = self._times
        pending = self.pending
        cut = self.tail
        while cut > start and times[cut - 1 - base] > settled_before:
            cut -= 1
        items = [(seq, times[seq - base], pending[seq]) for seq in range(start, cut)]
        if cut > self.head:
            new_head, new_tail = self.head, cut
        else:
            new_head = new_tail = self.head
        return FlushPlanEntry(
            incarnation=self.incarnation,
            delete_from=self.disk_head,
            delete_to=delete_to,
            items=items,
            new_head=new_head,
            new_tail=new_tail,
        )

    def complete_flush(self, entry: FlushPlanEntry) -> None:
        """The plan's transaction committed: the durable range moved; release written payloads."""
        self.disk_head = entry.new_head
        self.disk_tail = entry.new_tail
        pending = self.pending
        for seq, _when, item in entry.items:
            if pending.pop(seq, None) is not None:
                self.pending_bytes -= len(item)
                self.pending_ram -= len(item) + PENDING_ITEM_RAM_BYTES
