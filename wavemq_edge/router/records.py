"""A compacted log of records in a store queue: how the router keeps its own small state durable.

Durable subscriptions and the proofs queued messages were accepted under must survive a restart, and
they change rarely compared with messages. Each change is appended as one record to a dedicated store
queue, so it is journaled and flushed with everything else (no write of its own, no flash per
message). The log only grows, so when it holds ``compact_factor`` times more records than there are
live entries (and at least ``min_records``), the live entries are appended again and everything before
them is acknowledged away: replaying the log from the head always rebuilds the current state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final

from ..storage import QueueKind, QueueLimits, QueueStore

__all__ = ["RecordLog"]

#: Records read per ``peek`` while replaying.
_REPLAY_BATCH: Final = 1024


class RecordLog:
    def __init__(self, queues: QueueStore, queue_id: str, limits: QueueLimits, now: float, *,
                 compact_factor: int, min_records: int) -> None:
        self.queue_id = queue_id
        self._queues = queues
        self._compact_factor = compact_factor
        self._min_records = min_records
        queues.create_queue(queue_id, QueueKind.TRUNK, limits, now)

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """Every record from the head, in order, as (sequence, body)."""
        after = -1
        while True:
            batch = self._queues.peek(self.queue_id, after, _REPLAY_BATCH)
            if not batch:
                return
            for seq, body in batch:
                after = seq
                yield seq, body

    def append(self, body: bytes, now: float, live: int, snapshot: Callable[[], Iterable[bytes]]) -> None:
        """Append one record; compact when the log is ``compact_factor`` times longer than the ``live``
        entries, which ``snapshot`` returns as records."""
        self._queues.append(self.queue_id, body, now)
        stats = self._queues.stats(self.queue_id)
        if stats.depth > self._compact_factor * max(live, self._min_records):
            upto = stats.tail - 1
            for record in snapshot():
                self._queues.append(self.queue_id, record, now)
            self._queues.ack(self.queue_id, upto)
