"""Subscription lifecycle: create, resume, end, and the durable records that outlive a restart.

Theory of operation
-------------------
A subscription's queue id derives from (entity, namespace, identifier) (``subscription_key``), so two
namespaces or two entities never share a queue; subscribing again with the same identifier resumes it
(and re-registers a changed pattern). A subscription ends at ``min(requested expiry, proof expiry)``,
when its proof is revoked, on a signed unsubscribe, or after ``queueExpiry`` with no consumer (the
store's idle expiry). At a designated router a subscription a site forwarded is bound to that site
(``bound_site``) and keyed by ``peer_subscription_key``.

Durable (non-ephemeral) subscriptions are recorded in a compacted log (``records.py``) in the store
queue ``SUBSCRIPTION_RECORDS``: each record is ``["add", key, subscribe, proof, bound_site]`` or
``["remove", key]``. After a restart ``restore`` re-registers every recorded subscription whose proof
still holds and whose queue still exists, so queueing goes on before its subscriber returns; queues of
ephemeral subscriptions (never recorded) died with their consumers and are removed.

Local subscriptions in a trunked namespace are announced to the tiering hooks, which forward them to
the designated router.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from typing import Final

import cbor2

from ..storage import QueueKind, QueueLimits, QueueStore, StorageError, TooManyQueuesError
from ..uri import Pattern, UriError
from ..wave import Subscribe, WaveError, format_id
from .admission import Admission
from .errors import ErrorCode
from .hooks import SubscriptionChange, TieringHooks
from .records import RecordLog
from .registry import SubscriptionRegistry
from .status import RouterCounters
from .subscription import RouterSubscription

__all__ = ["SUBSCRIPTION_RECORDS", "SubscriptionLifecycle", "peer_subscription_key", "subscription_key"]

log = logging.getLogger("wavemq_edge.router")

#: Store queue holding one record per durable subscription (add/remove log, compacted).
SUBSCRIPTION_RECORDS: Final = "router:subscriptions"
_RECORDS_LIMITS: Final = QueueLimits(max_length=1_000_000, max_bytes=256 * 1024 * 1024, expiry_s=0)
#: Compact the records when they are this many times the live durable subscriptions (at least 16 x).
_RECORDS_COMPACT_FACTOR: Final = 4
_RECORDS_MIN: Final = 16


def subscription_key(entity: bytes, namespace: bytes, sub_id: str) -> str:
    """Queue id of a subscription: a hash of (entity, namespace, identifier), so neither two namespaces
    nor two entities choosing the same identifier ever share a queue (WAVEMQ hashed entity||id only)."""
    h = hashlib.blake2b(digest_size=16, person=b"wl-subscription")
    for part in (entity, namespace, sub_id.encode("utf-8")):
        h.update(len(part).to_bytes(2, "big"))
        h.update(part)
    return "sub:" + h.hexdigest()


def peer_subscription_key(site_id: bytes, entity: bytes, namespace: bytes, sub_id: str) -> str:
    """Queue id at a designated router of a subscription forwarded by ``site_id``."""
    return "peer:" + subscription_key(site_id + entity, namespace, sub_id)[4:]


def _add_record(sub: RouterSubscription) -> bytes:
    return cbor2.dumps(["add", sub.key, sub.record, sub.proof, sub.bound_site])


class SubscriptionLifecycle:
    def __init__(self, *, queues: QueueStore, registry: SubscriptionRegistry, admission: Admission,
                 counters: RouterCounters, hooks: TieringHooks, limits: QueueLimits,
                 trunked: Collection[bytes], now: float) -> None:
        self._queues = queues
        self._registry = registry
        self._admission = admission
        self._counters = counters
        self._hooks = hooks
        self._limits = limits
        self._trunked = trunked
        self._records = RecordLog(queues, SUBSCRIPTION_RECORDS, _RECORDS_LIMITS, now,
                                  compact_factor=_RECORDS_COMPACT_FACTOR, min_records=_RECORDS_MIN)

    # ------------------------------------------------------------------ create, resume, end

    def create(self, key: str, req: Subscribe, pattern: Pattern, expiry: float, proof: bytes, ephemeral: bool,
               raw: bytes, now: float, bound_site: bytes = b"") -> RouterSubscription:
        try:
            stats = self._queues.create_queue(key, QueueKind.SUBSCRIPTION, self._limits, now)
        except TooManyQueuesError as exc:
            raise self._admission.refusal(ErrorCode.TOO_MANY_SUBSCRIPTIONS, str(exc)) from None
        except StorageError as exc:
            raise self._admission.refusal(ErrorCode.STORAGE_UNAVAILABLE, str(exc)) from None
        # A queue that outlived its subscription (idle, not yet expired) is delivered from its head.
        sub = RouterSubscription(key=key, sub_id=req.sub_id, entity=req.src, namespace=req.namespace,
                                 pattern=pattern, expiry=expiry, proof=proof, ephemeral=ephemeral,
                                 cursor=stats.head - 1, record=raw, bound_site=bound_site)
        self._registry.add(sub)
        if not ephemeral:
            self._record(_add_record(sub), now)
        self._announce(sub, SubscriptionChange.ADDED, None)
        log.info("event=subscribe sub=%s entity=%s ns=%s pattern=%s ephemeral=%s", req.sub_id,
                 format_id(req.src), format_id(req.namespace), req.uri, ephemeral)
        return sub

    def resume(self, sub: RouterSubscription, pattern: Pattern, expiry: float, proof: bytes, ephemeral: bool,
               raw: bytes, now: float) -> None:
        self._registry.repattern(sub, pattern)
        sub.expiry = expiry
        sub.proof = proof
        sub.record = raw
        if sub.ephemeral and not ephemeral:
            sub.ephemeral = False
        if not sub.ephemeral:
            self._record(_add_record(sub), now)
        self._announce(sub, SubscriptionChange.ADDED, None)

    def end(self, sub: RouterSubscription, code: ErrorCode, reason: str, now: float, *, notify: bool = True,
            unsubscribe: bytes | None = None) -> None:
        """End ``sub``: unregister, drop its queue and record, tell its consumers (unless ``notify`` is
        False: the consumer is the one that went away)."""
        if not self._registry.remove(sub):
            return
        self._announce(sub, SubscriptionChange.REMOVED, unsubscribe)
        if self._queues.has_queue(sub.queue_id):
            self._queues.remove_queue(sub.queue_id)
        if not sub.ephemeral:
            self._record(cbor2.dumps(["remove", sub.key]), now)
        consumers = list(sub.consumers)
        sub.consumers.clear()
        sub.inflight.clear()
        if notify:
            for c in consumers:
                c.subscription_ended(sub, int(code), reason)
        self._counters.subscriptions_ended += 1
        log.info("event=subscription_ended sub=%s entity=%s reason=%r", sub.sub_id, format_id(sub.entity), reason)

    def _announce(self, sub: RouterSubscription, change: SubscriptionChange, unsubscribe: bytes | None) -> None:
        if not sub.bound_site and sub.namespace in self._trunked:
            self._hooks.subscription_changed(sub, change, unsubscribe)

    # ------------------------------------------------------------------ durable records

    def _record(self, body: bytes, now: float) -> None:
        registry = self._registry
        self._records.append(body, now, registry.durable_count(),
                             lambda: [_add_record(s) for s in registry.all() if not s.ephemeral])

    def _recorded(self) -> dict[str, tuple[bytes, bytes, bytes]]:
        records: dict[str, tuple[bytes, bytes, bytes]] = {}
        for seq, body in self._records.replay():
            try:
                rec = cbor2.loads(body)
                if rec[0] == "add":
                    records[rec[1]] = (rec[2], rec[3], rec[4] if len(rec) > 4 else b"")
                elif rec[0] == "remove":
                    records.pop(rec[1], None)
            except (cbor2.CBORDecodeError, IndexError, TypeError, KeyError) as exc:
                log.error("event=bad_subscription_record seq=%d error=%r", seq, str(exc))
        return records

    def restore(self, wall: float) -> None:
        """Re-register durable subscriptions recorded before a restart (their proofs are re-checked)."""
        for key, (raw, proof, bound_site) in self._recorded().items():
            try:
                req = Subscribe.parse(raw)
                pattern = req.resource
                expiry = self._admission.grant_expiry(proof, subject=req.src, namespace=req.namespace,
                                                      permission="subscribe", resource=pattern, wall=wall)
            except (WaveError, UriError) as exc:
                log.warning("event=subscription_dropped_on_restore key=%s reason=%r", key, str(exc))
                if self._queues.has_queue(key):
                    self._queues.remove_queue(key)
                continue
            if req.abs_expiry:
                expiry = min(expiry, float(req.abs_expiry))
            if expiry <= wall or not self._queues.has_queue(key):
                continue
            stats = self._queues.stats(key)
            self._registry.add(RouterSubscription(
                key=key, sub_id=req.sub_id, entity=req.src, namespace=req.namespace, pattern=pattern,
                expiry=expiry, proof=proof, ephemeral=False, cursor=stats.head - 1, record=raw,
                bound_site=bound_site))
        for queue_id in self._queues.queue_ids():
            if queue_id.startswith(("sub:", "peer:")) and self._registry.get(queue_id) is None:
                self._queues.remove_queue(queue_id)
        if len(self._registry):
            log.info("event=subscriptions_restored count=%d", len(self._registry))
