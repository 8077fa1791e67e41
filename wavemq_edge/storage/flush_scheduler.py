"""When to flush: pure timing rules, ``now`` passed in.

A flush is due ``flush_interval_s`` after the previous one when anything changed; at once when the
unflushed payload bytes pass ``flush_bytes`` (bounds RAM), when the current journal segment passes
``journal_max_bytes`` (bounds tmpfs), or when the journal broke (crash protection is off until the
data is durable). After a failed flush the next attempt backs off from ``RETRY_MIN_S`` doubling to the
interval, so a full or failing card is not hammered. Only one flush is in flight at a time.
"""

from __future__ import annotations

from typing import Final

__all__ = ["RETRY_MIN_S", "FlushScheduler"]

#: First retry delay after a failed flush (s); doubles up to the flush interval.
RETRY_MIN_S: Final = 1.0


class FlushScheduler:
    def __init__(self, interval_s: float, flush_bytes: int, journal_max_bytes: int, now: float) -> None:
        self.interval_s = interval_s
        self.flush_bytes = flush_bytes
        self.journal_max_bytes = journal_max_bytes
        self.last_flush = now
        self.in_flight = False
        self._retry_at: float | None = None
        self._retry_delay = RETRY_MIN_S

    def next_deadline(self, dirty: bool, pending_bytes: int, journal_bytes: int, journal_broken: bool) -> float | None:
        if self.in_flight or not dirty:
            return None
        if self._retry_at is not None:
            return self._retry_at
        if pending_bytes >= self.flush_bytes or journal_bytes >= self.journal_max_bytes or journal_broken:
            return self.last_flush  # already past: due now
        return self.last_flush + self.interval_s

    def started(self) -> None:
        self.in_flight = True

    def completed(self, now: float, ok: bool) -> None:
        self.in_flight = False
        self.last_flush = now
        if ok:
            self._retry_at = None
            self._retry_delay = RETRY_MIN_S
        else:
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.interval_s)
