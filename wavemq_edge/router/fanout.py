"""Fan-out: storing an accepted message and queueing it for every matching subscription, once each.

Whatever path accepted a message (an agent's publish, a site's trunk), it ends here: into the persisted
store when it asks to persist, into the queue of every matching subscription exactly once however many
patterns match (except a subscription a site forwarded, for a message that came from that site: the site
delivered it to its own subscribers already), and, when it was published here in a trunked namespace,
into that namespace's trunk queue, after which the tiering hooks hear of it.

The ids of messages published here in trunked namespaces are remembered for a while
(``LOCAL_ORIGIN_MAX``): their copies coming back down from the designated router are not delivered
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..lru import LRU
from ..storage import QueueStore
from ..wave import Message, format_id
from .hooks import TieringHooks
from .query import PersistedMessages
from .registry import SubscriptionRegistry
from .status import RouterCounters

__all__ = ["Fanout", "PublishResult"]

#: Message ids remembered as published at this site: more than a trunk's in-flight window plus the
#: designated router's delivery window.
LOCAL_ORIGIN_MAX: Final = 65536


@dataclass(frozen=True, slots=True)
class PublishResult:
    duplicate: bool
    subscribers: int


class Fanout:
    def __init__(self, *, queues: QueueStore, registry: SubscriptionRegistry, persist: PersistedMessages | None,
                 counters: RouterCounters, hooks: TieringHooks, trunk_queues: Mapping[bytes, str]) -> None:
        self._queues = queues
        self._registry = registry
        self._persist = persist
        self._counters = counters
        self._hooks = hooks
        self._trunk_queues = trunk_queues
        self._local_origin: LRU[bytes, bool] = LRU(LOCAL_ORIGIN_MAX)

    def published_here(self, msg_id: bytes) -> bool:
        return msg_id in self._local_origin

    def accept(self, msg: Message, now: float, from_site: bytes | None) -> PublishResult:
        """Store and fan out a verified message. ``from_site``: the site it came from over a trunk."""
        if msg.persist and self._persist is not None:
            self._persist.put(format_id(msg.namespace), msg.uri, msg.raw)
            self._counters.persisted += 1
        enqueued = 0
        for sub in self._registry.matching(msg.namespace, msg.resource):
            if sub.bound_site and sub.bound_site == msg.origin_router:
                continue  # that site delivered it to its own subscribers already
            self._queues.append(sub.queue_id, msg.raw, now)
            self._registry.mark_ready(sub)
            enqueued += 1
        trunk = self._trunk_queues.get(msg.namespace)
        if trunk is not None and from_site is None:
            seq = self._queues.append(trunk, msg.raw, now)
            self._local_origin.put(msg.msg_id, True)
            self._hooks.trunk_appended(msg.namespace, seq, msg)
        self._counters.published += 1
        self._counters.enqueued += enqueued
        return PublishResult(duplicate=False, subscribers=enqueued)
