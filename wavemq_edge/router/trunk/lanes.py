"""Site-side bookkeeping of the trunk's two lanes: which lane each publisher uses, what each lane sends
next, the frames each lane has in flight, and the queued messages the designated router has acknowledged
but the trunk queue cannot drop yet.

Order per publisher: when a connection opens, ``plan`` gives every publisher exactly one lane for that
connection. Publishers with nothing queued, or at most ``PROMOTE_MAX`` (their queued messages are sent
first by the live lane), use the live lane; a publisher with more queued is *held*: its backlog and every
message it publishes during the connection go by the backlog lane, after its backlog, in queue order.
Each lane is sent, admitted by the DR and acknowledged in order, so each publisher's messages reach the
DR in the order the site accepted them; a new connection starts again from the first unacknowledged
message (the DR drops what it already has by message id), so a reconnect or a restart keeps it too.

The trunk queue removes a prefix only (``QueueStore.ack(upto)``), while the two lanes are acknowledged
independently: the live lane's messages are acknowledged long before the backlog ahead of them. Those
acknowledged ranges wait in ``AckedRanges`` until the prefix below them is acknowledged too; they live
in the ``Uplink`` (not the connection), so a reconnect does not resend what the DR already has (a
restart does: the DR drops those resends by message id).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .end import BATCH_BYTES, source_of

__all__ = ["BACKLOG", "LIVE", "MAX_HOLES", "PROMOTE_MAX", "AckedRanges", "Lane", "Plan", "SentFrame", "cut", "pick",
           "plan", "runs"]

#: Lane values of ``T_PUB``'s last field. ``False``: the backlog lane (what was queued when the uplink
#: came up), acknowledged in order. ``2``: the live lane (acknowledged in order, admitted first by the
#: DR). ``True`` was the single-message live frame of earlier sites (acknowledged only by refusals).
BACKLOG: Final = False
LIVE: Final = 2
#: A publisher with at most this many messages queued when the uplink comes up has them sent first by
#: the live lane, followed at once by its new messages; a publisher with more is held in the backlog lane
#: for the connection (its new messages follow its backlog there).
PROMOTE_MAX: Final = 64
#: Sequence gaps allowed in one frame (each gap is listed in the frame's ``skipped``).
MAX_HOLES: Final = 64
#: Queued messages read per ``peek`` when a connection opens and counts who has messages waiting.
_SCAN_BATCH: Final = 4096
#: Queued messages read per ``peek`` when a lane looks for its own messages among the other lane's.
_PICK_BATCH: Final = 512

#: peek(after_seq, max_items) -> [(seq, raw)], oldest first (``QueueStore.peek`` of the trunk queue)
Peek = Callable[[int, int], list[tuple[int, bytes]]]
Item = tuple[int, bytes]


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


@dataclass(slots=True)
class Plan:
    #: queued sequences sent first by the live lane (publishers with at most ``PROMOTE_MAX``), in order
    promote: list[int]
    #: publishers whose queued messages go by the backlog lane, and so do their new ones
    held: set[bytes]


def plan(peek: Peek, acked: AckedRanges, after: int, cap: int) -> Plan:
    """Read the queue after ``after`` once and give each publisher its lane: at most ``cap`` promoted
    messages in all, smallest backlogs first. Cheap: the source id sits at a fixed offset."""
    small: dict[bytes, list[int]] = {}
    held: set[bytes] = set()
    while batch := peek(after, _SCAN_BATCH):
        for seq, raw in batch:
            after = seq
            if acked.covering(seq) is not None:
                continue
            src = source_of(raw)
            if src in held:
                continue
            mine = small.setdefault(src, [])
            mine.append(seq)
            if len(mine) > PROMOTE_MAX:
                held.add(src)
                del small[src]
    chosen: list[int] = []
    for src, seqs in sorted(small.items(), key=lambda kv: len(kv[1])):
        if len(chosen) + len(seqs) > cap:
            held.add(src)  # and every larger one after it
            continue
        chosen += seqs
    return Plan(sorted(chosen), held)


def pick(peek: Peek, after: int, room: int, mine: Callable[[bytes], bool] | None) -> tuple[list[Item], int, bool]:
    """The lane's next messages after ``after`` for one frame, in order: those for which ``mine(raw)`` (all
    when None), at most ``room`` of them, ``BATCH_BYTES`` of payload and ``MAX_HOLES`` other sequences in
    between. Returns them; the sequence below which nothing else is the lane's (its cursor if it does not
    send them); and whether the frame was cut by bytes or holes (a frame worth sending at once)."""
    items: list[Item] = []
    skip_to, size, holes = after, 0, 0
    while len(items) < room:
        want = room - len(items) if mine is None else _PICK_BATCH
        batch = peek(after, want)
        if not batch:
            return items, skip_to, False
        for seq, raw in batch:
            after = seq
            if mine is not None and not mine(raw):
                if not items:
                    skip_to = seq
                    continue
                holes += 1
                if holes > MAX_HOLES:
                    return items, skip_to, True
                continue
            if items and size + len(raw) > BATCH_BYTES:
                return items, skip_to, True
            items.append((seq, raw))
            size += len(raw)
            if len(items) >= room:
                break
    return items, skip_to, False


def cut(items: list[Item]) -> list[Item]:
    """The longest prefix within ``BATCH_BYTES`` (at least one item)."""
    size = 0
    for i, (_seq, raw) in enumerate(items):
        size += len(raw)
        if size > BATCH_BYTES and i > 0:
            return items[:i]
    return items
