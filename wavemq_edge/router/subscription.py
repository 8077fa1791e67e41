"""One subscription: its identity, its queue, and who it is delivering to right now.

Delivery theory of operation
----------------------------
A subscription owns one queue in the ``QueueStore`` (sequence numbers from the store). Zero or more
*consumers* (agent connections, later trunk links) are attached; they share the messages (competing
consumers: each message goes to one of them).

* ``cursor`` is the highest sequence handed out. New work is ``peek(queue, cursor, n)``.
* ``inflight`` maps a sequence to the consumer holding it, until that consumer acknowledges it. A
  consumer holds at most ``window`` unacknowledged messages (credit-based flow control): a slow agent
  stops receiving, and its backlog stays in the queue (bounded, on disk after a flush), never in RAM.
* When a consumer detaches, its in-flight sequences go to ``redeliver`` and are handed out first, in
  order, to the next consumer with credit: at-least-once, nothing lost with a dying connection.
* The queue's head (what the store may forget) is one below the lowest sequence still in flight or
  waiting for redelivery, else the cursor: the store only drops what every consumer finished.

The class is pure bookkeeping; ``RouterCore`` drives it with the store.
"""

from __future__ import annotations

from bisect import insort
from typing import Protocol

from ..uri import Pattern

__all__ = ["Consumer", "RouterSubscription"]


class Consumer(Protocol):
    """What a subscription delivers to (an agent session; a trunk link in the tiering issue)."""

    def credit(self, sub: RouterSubscription) -> int:
        """How many more messages of ``sub`` this consumer accepts now."""
        ...

    def deliver(self, sub: RouterSubscription, seq: int, item: bytes) -> None: ...

    def subscription_ended(self, sub: RouterSubscription, code: int, reason: str) -> None: ...


class RouterSubscription:
    __slots__ = (
        "_rr",
        "bound_site",
        "consumers",
        "cursor",
        "entity",
        "ephemeral",
        "expiry",
        "inflight",
        "key",
        "namespace",
        "pattern",
        "proof",
        "queue_id",
        "record",
        "redeliver",
        "sub_id",
    )

    def __init__(
        self,
        *,
        key: str,
        sub_id: str,
        entity: bytes,
        namespace: bytes,
        pattern: Pattern,
        expiry: float,
        proof: bytes,
        ephemeral: bool,
        cursor: int,
        record: bytes,
        bound_site: bytes = b"",
    ) -> None:
        self.key = key
        self.queue_id = key
        self.sub_id = sub_id
        self.entity = entity
        self.namespace = namespace
        self.pattern = pattern
        #: wall-clock seconds at which the subscription ends (min of requested and proof expiry).
        self.expiry = expiry
        self.proof = proof
        self.ephemeral = ephemeral
        #: the signed subscribe object, kept to re-register after a restart.
        self.record = record
        #: at a designated router: the site that forwarded this subscription (its consumer), else b"".
        self.bound_site = bound_site
        self.cursor = cursor
        self.consumers: list[Consumer] = []
        self.inflight: dict[int, Consumer] = {}
        self.redeliver: list[int] = []
        self._rr = 0

    def attach(self, consumer: Consumer) -> None:
        if consumer not in self.consumers:
            self.consumers.append(consumer)

    def detach(self, consumer: Consumer) -> None:
        """Remove ``consumer``; what it held unacknowledged will be handed out again."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        for seq in [s for s, c in self.inflight.items() if c is consumer]:
            del self.inflight[seq]
            insort(self.redeliver, seq)

    def next_consumer(self) -> Consumer | None:
        """A consumer with credit, round-robin among them, or None."""
        n = len(self.consumers)
        for i in range(n):
            c = self.consumers[(self._rr + i) % n]
            if c.credit(self) > 0:
                self._rr = (self._rr + i + 1) % n
                return c
        return None

    def acknowledge(self, consumer: Consumer, seq: int) -> bool:
        """``consumer`` finished ``seq``. False if it did not hold it (a stale or foreign ack)."""
        if self.inflight.get(seq) is consumer:
            del self.inflight[seq]
            return True
        return False

    def ack_floor(self) -> int:
        """Every sequence <= this is finished by all consumers; the store may drop through it."""
        low = self.cursor + 1
        if self.inflight:
            low = min(low, min(self.inflight))
        if self.redeliver:
            low = min(low, self.redeliver[0])
        return low - 1
