"""The designated router's intake of a site's ``T_PUB`` batches: the live lane first, the backlog in slices.

Admitting a message costs a signature check (~80-120 us here), so a window of backlog admitted in one go
would hold the event loop for tens of milliseconds. Batches are decoded when they arrive (cheap, and the
compact tables need arrival order) and admitted by ``run`` with a budget per call; the glue calls it
again soon, so newly arrived live batches are admitted between slices of the backlog.

Per publisher order: a site gives each publisher one lane per connection (``lanes.py``), and each lane's
batches are admitted in order, so a publisher's messages are admitted in the order the site accepted
them. An earlier site sent a publisher's single live message (lane ``true``) while that publisher's
backlog could still be here unadmitted: before a live message, its publisher's backlog messages already
here are admitted (a no-op for current sites). Each batch is acknowledged once all its messages are
admitted, each lane's batches in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ...wave import Message

__all__ = ["MAX_PENDING", "Intake", "PubBatch"]

#: Messages decoded but not admitted beyond which ``add`` admits at once (a site keeps far fewer in
#: flight: two lanes of ``PeerConfig.maxInflight``), bounding what a site can make the DR hold.
MAX_PENDING: Final = 16384

Entry = tuple[int, Message, "bytes | None"]
#: admit(seq, message, proof carried) -> None, or a refusal [seq, code, reason]
Admit = Callable[[int, Message, "bytes | None"], "list[object] | None"]


@dataclass(slots=True)
class PubBatch:
    #: what the DR acknowledges: the sequence of the batch's last message (-1: refusals only)
    ack: int
    live: bool
    entries: list[Entry | None]
    left: int = 0
    pos: int = 0
    refused: list[list[object]] = field(default_factory=list)


class Intake:
    def __init__(self) -> None:
        self._live: deque[PubBatch] = deque()
        self._backlog: deque[PubBatch] = deque()
        #: backlog messages waiting here, per publisher
        self._waiting: dict[bytes, int] = {}
        self.pending = 0

    def add(self, batch: PubBatch) -> None:
        batch.left = len(batch.entries)
        self.pending += batch.left
        if batch.live:
            self._live.append(batch)
        else:
            for e in batch.entries:
                if e is not None:
                    self._waiting[e[1].src] = self._waiting.get(e[1].src, 0) + 1
            self._backlog.append(batch)

    def has_work(self) -> bool:
        return self.pending > 0 or bool(self._live) or bool(self._backlog)

    def clear(self) -> None:
        self._live.clear()
        self._backlog.clear()
        self._waiting.clear()
        self.pending = 0

    def run(self, admit: Admit, done: Callable[[PubBatch], None], budget: int) -> None:
        """Admit up to about ``budget`` messages, live lane first; ``done`` is called for every batch
        completed, in each lane's order."""
        while budget > 0 and (self._live or self._backlog):
            lane = self._live if self._live else self._backlog
            batch = lane[0]
            while batch.pos < len(batch.entries) and budget > 0:
                entry = batch.entries[batch.pos]
                batch.pos += 1
                if entry is None:
                    continue
                if batch.live and self._waiting.get(entry[1].src):
                    budget -= self._flush_publisher(entry[1].src, admit, done)
                else:
                    self._forget(batch, entry)
                self._admit(batch, entry, admit)
                budget -= 1
            if batch.pos >= len(batch.entries):
                lane.popleft()
                done(batch)
            self._complete_backlog(done)

    def _admit(self, batch: PubBatch, entry: Entry, admit: Admit) -> None:
        refusal = admit(*entry)
        if refusal is not None:
            batch.refused.append(refusal)
        batch.left -= 1
        self.pending -= 1

    def _forget(self, batch: PubBatch, entry: Entry) -> None:
        if not batch.live:
            src = entry[1].src
            n = self._waiting.get(src, 0) - 1
            if n > 0:
                self._waiting[src] = n
            else:
                self._waiting.pop(src, None)

    def _flush_publisher(self, src: bytes, admit: Admit, done: Callable[[PubBatch], None]) -> int:
        """Admit ``src``'s backlog messages waiting here before its live message; returns how many."""
        n = 0
        for batch in self._backlog:
            for i in range(batch.pos, len(batch.entries)):
                entry = batch.entries[i]
                if entry is not None and entry[1].src == src:
                    batch.entries[i] = None
                    self._forget(batch, entry)
                    self._admit(batch, entry, admit)
                    n += 1
        self._complete_backlog(done)
        return n

    def _complete_backlog(self, done: Callable[[PubBatch], None]) -> None:
        while self._backlog and self._backlog[0].left == 0:
            done(self._backlog.popleft())
