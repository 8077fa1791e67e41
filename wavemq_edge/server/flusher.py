"""Flushes: the one place a blocking call leaves the event loop.

The stores decide what to write and when (``storage``: prepare, write, complete); this runs the write
(one LMDB transaction and its fdatasync) in a worker thread while the loop keeps accepting and
delivering, at most one flush per store at a time, and keeps the timings ops reports (``FlushTimes``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..ops.state import FlushTimes
from ..storage import PersistStore, QueueStore

__all__ = ["Flusher"]

log = logging.getLogger("wavemq_edge.server")


class Flusher:
    def __init__(self, queues: QueueStore, persist: PersistStore | None) -> None:
        self.queues = queues
        self.persist = persist
        self.times = FlushTimes()
        self._queue_task: asyncio.Task[None] | None = None
        self._persist_task: asyncio.Task[None] | None = None

    def due(self, now: float) -> None:
        """Start the flushes whose time has come (called from the timer)."""
        if self._queue_task is None and self.queues.flush_due(now):
            self._queue_task = asyncio.create_task(self._flush_queues(), name="wavemq-flush")
        if self.persist is not None and self._persist_task is None and self.persist.flush_due(now):
            self._persist_task = asyncio.create_task(self._flush_persist(), name="wavemq-persist-flush")

    def request(self) -> bool:
        """Start a queue flush now (the budget watch asks when memory is over budget); False if one runs."""
        if self._queue_task is not None:
            return False
        self._queue_task = asyncio.create_task(self._flush_queues(), name="wavemq-flush")
        return True

    def next_deadline(self) -> float | None:
        persist = self.persist.next_flush_deadline() if self.persist is not None else None
        deadlines = [d for d in (self.queues.next_deadline(), persist) if d is not None]
        return min(deadlines) if deadlines else None

    async def wait_idle(self, timeout_s: float) -> None:
        """Let the flushes in flight finish (bounded): shutdown's last flush must not overlap them."""
        for task in (self._queue_task, self._persist_task):
            if task is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(task), timeout=timeout_s)
                except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    log.warning("event=flush_wait_failed task=%s", task.get_name())

    async def _flush_queues(self) -> None:
        loop = asyncio.get_running_loop()
        queues, times = self.queues, self.times
        try:
            batch = queues.prepare_flush(loop.time())
            if batch is None:
                return
            t0 = time.perf_counter()
            times.started = loop.time()
            outcome = await loop.run_in_executor(None, queues.write_flush, batch)
            elapsed = time.perf_counter() - t0
            times.max_s = max(times.max_s, elapsed)
            queues.complete_flush(batch, outcome, loop.time())
            times.last_s = elapsed
            times.total_s += elapsed
            if not batch.empty:
                log.debug("event=flushed items=%d bytes=%d seconds=%.4f outcome=%s", batch.item_count,
                          batch.item_bytes, elapsed, outcome.value)
        finally:
            times.started = None
            self._queue_task = None

    async def _flush_persist(self) -> None:
        loop = asyncio.get_running_loop()
        persist = self.persist
        assert persist is not None
        try:
            batch = persist.prepare_flush(loop.time())
            if batch is None:
                return
            outcome = await loop.run_in_executor(None, persist.write_flush, batch)
            persist.complete_flush(batch, outcome, loop.time())
        finally:
            self._persist_task = None
