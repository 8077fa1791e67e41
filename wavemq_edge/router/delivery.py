"""Delivery: handing queued messages to consumers with credit, and taking their acknowledgements.

Operations mark subscriptions ready (``SubscriptionRegistry.mark_ready``); ``service()`` drains the
ready set, first redelivering what a departed consumer held (in order), then peeking new items past the
subscription's cursor, ``_PEEK_BATCH`` at a time, round-robin among consumers with credit (see
``subscription.py`` for the cursor, in-flight and redelivery bookkeeping). The glue calls ``service()``
after each batch of input. An acknowledgement moves the queue's head to the subscription's ack floor,
so the store forgets only what every consumer finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..storage import QueueStore
from .registry import SubscriptionRegistry
from .status import RouterCounters
from .subscription import Consumer, RouterSubscription

__all__ = ["Delivery"]

#: Items handed out per ``peek`` while servicing one subscription.
_PEEK_BATCH: Final = 64


class Delivery:
    def __init__(self, queues: QueueStore, registry: SubscriptionRegistry, counters: RouterCounters) -> None:
        self._queues = queues
        self._registry = registry
        self._counters = counters

    def service(self) -> int:
        """Hand queued messages to consumers with credit. Returns how many were delivered."""
        total = 0
        while True:
            sub = self._registry.pop_ready()
            if sub is None:
                return total
            if sub in self._registry and sub.consumers:
                total += self._redeliver(sub) + self._deliver_new(sub)

    def acknowledge(self, consumer: Consumer, sub: RouterSubscription, seqs: Iterable[int], now: float) -> int:
        n = sum(1 for seq in seqs if sub.acknowledge(consumer, seq))
        if n and sub in self._registry:
            self._queues.ack(sub.queue_id, sub.ack_floor(), now)
            self._counters.acked += n
            self._registry.mark_ready(sub)
        return n

    def _redeliver(self, sub: RouterSubscription) -> int:
        sent = 0
        while sub.redeliver:
            consumer = sub.next_consumer()
            if consumer is None:
                return sent
            seq = sub.redeliver.pop(0)
            items = self._queues.peek(sub.queue_id, seq - 1, 1)
            if items and items[0][0] == seq:
                sub.inflight[seq] = consumer
                consumer.deliver(sub, seq, items[0][1])
                self._counters.redelivered += 1
                sent += 1
            # else: the store dropped it meanwhile (overflow/expiry, counted there)
        return sent

    def _deliver_new(self, sub: RouterSubscription) -> int:
        sent = 0
        consumer = sub.next_consumer()
        while consumer is not None:
            items = self._queues.peek(sub.queue_id, sub.cursor, _PEEK_BATCH)
            if not items:
                return sent
            for seq, item in items:
                if consumer.credit(sub) <= 0:
                    consumer = sub.next_consumer()
                    if consumer is None:
                        return sent
                sub.cursor = seq
                sub.inflight[seq] = consumer
                consumer.deliver(sub, seq, item)
                self._counters.delivered += 1
                sent += 1
            consumer = sub.next_consumer()
        return sent
