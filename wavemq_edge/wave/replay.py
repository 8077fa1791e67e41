"""Replay suppression: a bounded window of ``(source, id)`` pairs already accepted.

Messages are deduplicated by ``(src, msg_id)`` and requests by ``(src, nonce)`` (reference §7.7). The
timestamp check refuses anything older than ``max_age_s``, so the window only has to remember ids
younger than that. At the :data:`REPLAY_WINDOW_MAX` bound the oldest entry is dropped *and the floor is
raised to its timestamp*: an object older than the floor is refused as REPLAYED, because we can no
longer tell whether we saw it. Under a flood the window narrows; it never lets a replay through.
"""

from __future__ import annotations

import heapq
from typing import Final

from .errors import Reason, VerificationError

__all__ = ["REPLAY_WINDOW_MAX", "ReplayGuard"]

#: Ids remembered. At 1000 messages/s with a 5-minute skew window a busy DR needs ~300k; a site far
#: fewer. Each entry is ~150 bytes of Python objects, so 200k is ~30 MiB at most.
REPLAY_WINDOW_MAX: Final = 200_000


class ReplayGuard:
    def __init__(self, *, max_age_s: float, max_entries: int = REPLAY_WINDOW_MAX) -> None:
        self._max_age_ms = int(max_age_s * 1000)
        self._max_entries = max_entries
        self._seen: set[tuple[bytes, bytes]] = set()
        self._order: list[tuple[int, bytes, bytes]] = []  # min-heap by timestamp
        self._floor_ms = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._seen)

    def accept(self, src: bytes, ident: bytes, timestamp_ms: int, now: float) -> None:
        """Record ``(src, ident)``; raise REPLAYED if seen (or too old to tell)."""
        self._expire(int(now * 1000) - self._max_age_ms)
        if timestamp_ms < self._floor_ms:
            raise VerificationError(Reason.REPLAYED, "older than the replay window can vouch for")
        key = (src, ident)
        if key in self._seen:
            raise VerificationError(Reason.REPLAYED, f"id {ident.hex()} from this source was already accepted")
        self._seen.add(key)
        heapq.heappush(self._order, (timestamp_ms, src, ident))
        while len(self._seen) > self._max_entries:
            ts, s, i = heapq.heappop(self._order)
            self._seen.discard((s, i))
            self._floor_ms = max(self._floor_ms, ts + 1)
            self.dropped += 1

    def _expire(self, horizon_ms: int) -> None:
        while self._order and self._order[0][0] < horizon_ms:
            _, s, i = heapq.heappop(self._order)
            self._seen.discard((s, i))
