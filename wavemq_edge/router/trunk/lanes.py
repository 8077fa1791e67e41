"""Site-side bookkeeping of the trunk's two lanes: the frames each lane has in flight, and the queued
messages the designated router has acknowledged but the trunk queue cannot drop yet.

The trunk queue removes a prefix only (``QueueStore.ack(upto)``), while the two lanes are acknowledged
independently: the live lane's messages are acknowledged long before the backlog ahead of them. Those
acknowledged ranges wait in ``AckedRanges`` until the prefix below them is acknowledged too; they live
in the ``Uplink`` (not the connection), so a reconnect does not resend what the DR already has (a
restart does: the DR drops those resends by message id).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Final

__all__ = ["BACKLOG", "LIVE", "AckedRanges", "Lane", "SentFrame", "runs"]

#: Lane values of ``T_PUB``'s last field. ``False``: the backlog lane (what was queued when the uplink
#: came up), acknowledged in order. ``2``: the live lane (acknowledged in order, admitted first by the
#: DR). ``True`` was the single-message live frame of earlier sites (acknowledged only by refusals).
BACKLOG: Final = False
LIVE: Final = 2


def runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted sequences as inclusive ranges of consecutive values."""
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] + 1 == s:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


@dataclass(slots=True)
class SentFrame:
    #: the DR acknowledges the frame by the sequence of its last message
    last: int
    #: the queue sequences it accounts for (its messages, and unparsable ones it skipped)
    ranges: list[tuple[int, int]]
    #: messages it counts against the lane's window
    count: int
    sent_at: float


@dataclass(slots=True)
class Lane:
    """One lane's frames in flight, oldest first; the DR acknowledges a lane's frames in order."""

    frames: deque[SentFrame] = field(default_factory=deque)
    inflight: int = 0

    def sent(self, frame: SentFrame) -> None:
        self.frames.append(frame)
        self.inflight += frame.count

    def acknowledge(self, upto: int) -> list[SentFrame] | None:
        """The frames acknowledged by an ack of ``upto`` (that frame and every older one of the lane), or
        None when no frame of this lane ends at ``upto``."""
        for i, f in enumerate(self.frames):
            if f.last == upto:
                done = [self.frames.popleft() for _ in range(i + 1)]
                self.inflight -= sum(d.count for d in done)
                return done
        return None


class AckedRanges:
    """Acknowledged sequences above the queue's head, as sorted, disjoint, non-adjacent ranges."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._starts)

    def add(self, a: int, b: int) -> None:
        i = bisect.bisect_left(self._ends, a - 1)  # first range that ends at or after a - 1
        j = i
        while j < len(self._starts) and self._starts[j] <= b + 1:
            a, b = min(a, self._starts[j]), max(b, self._ends[j])
            j += 1
        self._starts[i:j] = [a]
        self._ends[i:j] = [b]

    def covering(self, seq: int) -> int | None:
        """The end of the range holding ``seq``, or None."""
        i = bisect.bisect_right(self._starts, seq) - 1
        return self._ends[i] if i >= 0 and self._ends[i] >= seq else None

    def next_start(self, after: int) -> int | None:
        """The start of the first range beginning after ``after``."""
        i = bisect.bisect_right(self._starts, after)
        return self._starts[i] if i < len(self._starts) else None

    def take_prefix(self, head: int) -> int | None:
        """Forget ranges at or below the queue's ``head``; if one reaches ``head``, the sequence the queue
        may now be acknowledged up to."""
        upto = None
        while self._starts and self._starts[0] <= head:
            end = self._ends[0]
            del self._starts[0], self._ends[0]
            if end >= head:
                upto, head = end, end + 1
        return upto
