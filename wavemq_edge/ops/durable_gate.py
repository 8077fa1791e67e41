"""Refusing new durable subscriptions while the queue store's disk is below its reserve.

A durable subscription promises to keep queueing on disk while its subscriber is away; making that
promise when the disk is already short would only turn into ``budget`` drops later. So while the budget
watch reports disk pressure, a *new* durable subscription is refused with ``STORAGE_UNAVAILABLE`` (631)
and a reason naming the directory and the reserve; resuming an existing one and ephemeral
subscriptions (RAM only until a flush, and gone with their connection) are still accepted.

This is a ``RouterCore`` subclass rather than a hook inside the core because the gate is an operations
policy that the core does not need to know about; it runs before the proof check, on the request's own
fields, and only for a request signed as the connection's authenticated entity.
"""

from __future__ import annotations

from collections.abc import Callable

from ..router import RouterCore, RouterError
from ..router.core import subscription_key
from ..router.errors import ErrorCode
from ..router.subscription import Consumer, Subscription
from ..wave import Entity, Subscribe, WaveError

__all__ = ["DurableGateRouterCore"]


class DurableGateRouterCore(RouterCore):
    #: set by the budget watch: why new durable subscriptions are refused, or None to accept them.
    refuse_durable_reason: str | None = None
    refused_durable: int = 0

    def subscribe(self, consumer: Consumer, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None],
                  ephemeral: bool, consumer_subscriptions: int, now: float) -> tuple[Subscription, bool]:
        reason = self.refuse_durable_reason
        if reason is not None and not ephemeral:
            try:
                req = Subscribe.parse(raw)
            except WaveError:
                req = None  # the core refuses it with the precise reason
            if req is not None and req.src == source.id and \
                    self.subscription(subscription_key(req.src, req.namespace, req.sub_id)) is None:
                self.counters.refuse(ErrorCode.STORAGE_UNAVAILABLE)
                self.refused_durable += 1
                raise RouterError(ErrorCode.STORAGE_UNAVAILABLE,
                                  f"new durable subscriptions are refused until disk space returns: {reason}; "
                                  "an ephemeral subscription (no --id) still works")
        return super().subscribe(consumer, source, raw, proof_for, ephemeral, consumer_subscriptions, now)
