"""The routing core: the facade the agent sessions and the trunk call, with no I/O.

Theory of operation
-------------------
``RouterCore`` builds the parts, one concept per module, and routes calls to them:

* ``admission.py``: every signature, timestamp, replay and proof check, and the one place refusals are
  counted;
* ``registry.py``: live subscriptions (trie, owners, the ready set); ``lifecycle.py``: create, resume,
  end, and the durable records a restart replays;
* ``fanout.py``: an accepted message into the persisted store, every matching queue and the trunk
  queue; ``delivery.py``: queued messages to consumers with credit, acknowledgements back;
* ``query.py``: queries, local or forwarded; ``tiering.py``: what trunks bring and take;
* ``status.py``: counters and the core's status snapshot.

Publish, in the order of reference ``wave-security.md`` §7.7 (the frame bound and strict frame decode
happened in ``wire``): strict decode of the signed message -> timestamp window -> source is the
connection's entity -> signature and derived id -> no wildcard -> dedup of ``(source, id)`` (after the
signature, so nobody can poison the window with ids they could not sign) -> the proof grants
``wavemq:publish`` on the URI (verification cache) -> fan-out.

Inputs are the calls below; each takes ``now`` (the caller's monotonic clock, for queues and timers)
and, where a security check needs it, ``wall`` (epoch seconds: timestamps and validity windows are epoch
times). The core reads no clock. Output is what the calls return, the consumers' ``deliver`` calls made
by ``service()``, and the tiering hooks given at construction (``hooks.py``). The glue calls
``service()`` after each batch of input, and ``handle_timer`` at ``next_deadline``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from ..storage import PersistStore, QueueKind, QueueLimits, QueueStore
from ..uri import Pattern
from ..wave import Entity, Message, Revocation, Subscribe, Unsubscribe, VerificationError, Verifier, format_id
from ..wave.batch import BatchVerify, verify_sequential
from .admission import Admission
from .delivery import Delivery
from .disk_guard import DiskGuard, OnDiskFull
from .errors import ErrorCode, code_for_reason
from .fanout import Fanout, PublishResult
from .hooks import NO_TIERING, QueryReply, TieringHooks
from .lifecycle import SubscriptionLifecycle, subscription_key
from .options import RouterOptions
from .proof_store import ProofStore
from .publish_batch import Prepared
from .query import PersistedMessages, QueryAnswer, QueryDesk
from .registry import SubscriptionRegistry
from .status import CoreStatus, RouterCounters
from .subscription import Consumer, RouterSubscription
from .tiering import Tiering, trunk_queue_id

__all__ = ["RouterCore"]

log = logging.getLogger("wavemq_edge.router")


class RouterCore:
    def __init__(self, *, router_id: bytes, queues: QueueStore, verifier: Verifier, options: RouterOptions,
                 now: float, wall: float, persist: PersistedMessages | None = None,
                 designated: frozenset[bytes] = frozenset(), trunked: Mapping[bytes, QueueLimits] | None = None,
                 hooks: TieringHooks = NO_TIERING) -> None:
        """``designated``: the namespaces this router is the designated router for; ``trunked``: the
        namespaces with an uplink, and the bounds of each one's trunk queue; ``hooks``: the uplinks."""
        self.router_id = router_id
        self.queues = queues
        self.verifier = verifier
        self.options = options
        self.started = now
        self.counters = RouterCounters()
        self.admission = Admission(verifier, options, self.counters)
        #: checks the signatures of a read's publishes in one call (``publish_batch.py``); the server
        #: installs one that uses a second core
        self.verify_many: BatchVerify = verify_sequential
        self.registry = SubscriptionRegistry()
        trunk_queues: dict[bytes, str] = {}
        for namespace, limits in (trunked or {}).items():
            trunk_queues[namespace] = trunk_queue_id(namespace)
            queues.create_queue(trunk_queues[namespace], QueueKind.TRUNK, limits, now)
        self.lifecycle = SubscriptionLifecycle(
            queues=queues, registry=self.registry, admission=self.admission, counters=self.counters, hooks=hooks,
            limits=options.subscription_limits, trunked=frozenset(trunk_queues), now=now)
        self.proofs = ProofStore(queues, now)
        self.fanout = Fanout(queues=queues, registry=self.registry, persist=persist, counters=self.counters,
                             hooks=hooks, trunk_queues=trunk_queues)
        self.delivery = Delivery(queues, self.registry, self.counters)
        self.queries = QueryDesk(self.admission, persist, options, self.counters, hooks)
        self.tiering = Tiering(router_id=router_id, designated=designated, admission=self.admission,
                               registry=self.registry, lifecycle=self.lifecycle, fanout=self.fanout, queues=queues,
                               proofs=self.proofs, queries=self.queries, counters=self.counters)
        self._refuse_durable: str | None = None
        self._trunked = frozenset(trunk_queues)
        self._persists = persist is not None
        self.disk = DiskGuard(options.disk_reserve_bytes, options.on_disk_full, queues,
                              persist if isinstance(persist, PersistStore) else None)
        self.lifecycle.restore(wall)

    # ------------------------------------------------------------------ inputs from operations

    def refuse_new_durable(self, reason: str | None) -> None:
        """While ``reason`` is set (the budget watch: the disk is below its reserve), a *new* durable
        subscription is refused with ``STORAGE_UNAVAILABLE``: it promises to queue on disk while its
        subscriber is away, which a short disk would turn into drops later. Resuming one, and ephemeral
        subscriptions, are still accepted."""
        self._refuse_durable = reason

    # ------------------------------------------------------------------ publish

    def publish(self, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None], now: float,
                wall: float, prepared: Prepared | None = None) -> PublishResult:
        """Accept a signed message from ``source`` (the authenticated connection entity).
        ``proof_for(proof_id)`` returns the proof bytes the connection sent earlier, or None; ``prepared``
        is ``raw`` already parsed, its signature checked in a batch (``publish_batch.py``)."""
        admission = self.admission
        msg = admission.agent_message(raw, source, wall, prepared)
        if msg.origin_router not in (b"", self.router_id):
            raise admission.refusal(ErrorCode.BAD_REQUEST,
                                    f"message names origin router {format_id(msg.origin_router)}; an agent "
                                    f"publishes with this router ({format_id(self.router_id)}) or none as origin")
        self._check_disk(msg, now)  # before the dedup window records it: a refused message may come again
        if not admission.first_time(msg.src, msg.msg_id, msg.timestamp_ms, wall):
            # An agent retrying a publish it already got accepted (e.g. after a reconnect): idempotent.
            self.counters.duplicates += 1
            return PublishResult(duplicate=True, subscribers=0)
        proof = admission.require_proof(proof_for, msg.proof_id)
        admission.check_proof_id(msg.proof_id, proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                                 resource=msg.resource, wall=wall)
        self.proofs.remember(msg.proof_id, proof, now)
        return self.fanout.accept(msg, now, from_site=None)

    def _check_disk(self, msg: Message, now: float) -> None:
        """Refuse (``STORAGE_FULL``) a message the stores could not keep (``disk_guard.py``)."""
        if self.disk.policy is not OnDiskFull.REFUSE:
            return
        copies = len(self.registry.matching(msg.namespace, msg.resource)) + (msg.namespace in self._trunked)
        reason = self.disk.check(len(msg.raw), copies, msg.persist and self._persists, now)
        if reason is not None:
            raise self.admission.refusal(ErrorCode.STORAGE_FULL, f"the router's disk is full: {reason}")

    # ------------------------------------------------------------------ subscribe / unsubscribe

    def subscribe(self, consumer: Consumer, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None],
                  ephemeral: bool, consumer_subscriptions: int, now: float,
                  wall: float) -> tuple[RouterSubscription, bool]:
        """Verify a signed subscribe and attach ``consumer``. Returns (subscription, resumed)."""
        admission = self.admission
        req = admission.agent_request(Subscribe.parse, raw, source, "subscribe", wall)
        if req.router_id not in (b"", self.router_id):
            raise admission.refusal(ErrorCode.BAD_REQUEST,
                                    f"subscribe is bound to router {format_id(req.router_id)}, not this one")
        if not req.sub_id:
            raise admission.refusal(ErrorCode.BAD_REQUEST, "subscribe has an empty identifier")
        key = subscription_key(req.src, req.namespace, req.sub_id)
        existing = self.registry.get(key)
        if existing is None:
            self._gate_durable(ephemeral)
        proof = admission.require_proof(proof_for, req.proof_id)
        expiry = self._subscription_expiry(req, proof, wall)
        if existing is None:
            self._check_room(consumer_subscriptions)
            sub = self.lifecycle.create(key, req, req.resource, expiry, proof, ephemeral, raw, now)
        else:
            sub = existing
            self.lifecycle.resume(sub, req.resource, expiry, proof, ephemeral, raw, now)
        sub.attach(consumer)
        self.queues.touch(sub.queue_id, now)
        self.registry.mark_ready(sub)
        return sub, existing is not None

    def _gate_durable(self, ephemeral: bool) -> None:
        if self._refuse_durable is not None and not ephemeral:
            self.counters.refused_durable += 1
            raise self.admission.refusal(
                ErrorCode.STORAGE_UNAVAILABLE,
                f"new durable subscriptions are refused until disk space returns: {self._refuse_durable}; "
                "an ephemeral subscription (no --id) still works")

    def _check_room(self, consumer_subscriptions: int) -> None:
        limit = self.options.max_subscriptions_per_connection
        if consumer_subscriptions >= limit:
            raise self.admission.refusal(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"this connection has {consumer_subscriptions} subscriptions, the limit "
                f"(LimitsConfig.maxSubscriptionsPerConnection) is {limit}")

    def _subscription_expiry(self, req: Subscribe, proof: bytes, wall: float) -> float:
        """min(proof expiry, absolute and relative requested expiry); refused when already past."""
        expiry = self.admission.check_proof(proof, subject=req.src, namespace=req.namespace,
                                            permission="subscribe", resource=req.resource, wall=wall)
        if req.abs_expiry:
            expiry = min(expiry, float(req.abs_expiry))
        if req.expiry_s:
            expiry = min(expiry, wall + req.expiry_s)
        if expiry <= wall:
            raise self.admission.refusal(ErrorCode.SUBSCRIPTION_ENDED, "the requested expiry is already past")
        return expiry

    def unsubscribe(self, source: Entity, raw: bytes, now: float, wall: float) -> int:
        """A signed unsubscribe: ends every subscription of ``source`` with that identifier."""
        req = self.admission.agent_request(Unsubscribe.parse, raw, source, "unsubscribe", wall)
        subs = self.registry.owned(req.src, req.sub_id)
        if not subs:
            raise self.admission.refusal(ErrorCode.UNKNOWN_SUBSCRIPTION,
                                         f"{format_id(req.src)} has no subscription {req.sub_id!r} on this router")
        for sub in subs:
            self.lifecycle.end(sub, ErrorCode.SUBSCRIPTION_ENDED, "unsubscribed", now, unsubscribe=raw)
        return len(subs)

    def detach(self, consumer: Consumer, sub: RouterSubscription, now: float) -> None:
        """``consumer`` goes away (connection closed). Ephemeral subscriptions end with their last one."""
        sub.detach(consumer)
        if sub not in self.registry:
            return
        if sub.queue_id and self.queues.has_queue(sub.queue_id):
            self.queues.touch(sub.queue_id, now)
        if sub.ephemeral and not sub.consumers:
            self.lifecycle.end(sub, ErrorCode.SUBSCRIPTION_ENDED, "ephemeral subscription: its last consumer left",
                               now, notify=False)
        else:
            self.registry.mark_ready(sub)

    # ------------------------------------------------------------------ delivery and queries

    def acknowledge(self, consumer: Consumer, sub: RouterSubscription, seqs: Iterable[int], now: float) -> int:
        return self.delivery.acknowledge(consumer, sub, seqs, now)

    def service(self) -> int:
        """Hand queued messages to consumers with credit. Returns how many were delivered."""
        return self.delivery.service()

    def query(self, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None], after_uri: str | None,
              limit: int, wall: float, reply: QueryReply | None = None) -> QueryAnswer | None:
        """See ``QueryDesk.query``: an answer, or None when the designated router answers via ``reply``."""
        return self.queries.query(source, raw, proof_for, after_uri, limit, wall, reply)

    # ------------------------------------------------------------------ timers and revocation

    def next_deadline(self, now: float, wall: float) -> float | None:
        """Monotonic time of the next subscription expiry (the store has its own deadlines)."""
        earliest = self.registry.earliest_expiry()
        return None if earliest is None else now + (earliest - wall)

    def handle_timer(self, now: float, wall: float) -> None:
        for sub in self.registry.expired(wall):
            self.lifecycle.end(sub, ErrorCode.SUBSCRIPTION_ENDED,
                               f"expired at {sub.expiry:.0f} (proof or requested expiry)", now)
        for gone in self.queues.handle_timer(now):
            idle = self.registry.get(gone.queue_id)
            if idle is not None:
                self.lifecycle.end(idle, ErrorCode.SUBSCRIPTION_ENDED,
                                   f"no consumer for {gone.idle_s:.0f} s (queueExpiry)", now)

    def add_revocation(self, revocation: Revocation | bytes, now: float, wall: float) -> int:
        """Learn a revocation: evict cached proofs, end the subscriptions whose proof it breaks."""
        self.verifier.add_revocation(revocation)
        ended = 0
        for sub in self.registry.all():
            try:
                self.admission.grant_expiry(sub.proof, subject=sub.entity, namespace=sub.namespace,
                                            permission="subscribe", resource=sub.pattern, wall=wall)
            except VerificationError as exc:
                code = code_for_reason(exc.reason)
                if code in (ErrorCode.PROOF_REVOKED, ErrorCode.PROOF_EXPIRED):
                    self.lifecycle.end(sub, ErrorCode.SUBSCRIPTION_ENDED, f"proof no longer valid: {exc}", now)
                    ended += 1
        return ended

    # ------------------------------------------------------------------ views

    def subscriptions(self) -> list[RouterSubscription]:
        return self.registry.all()

    def subscription(self, key: str) -> RouterSubscription | None:
        return self.registry.get(key)

    def subscription_pattern(self, key: str) -> Pattern | None:
        sub = self.registry.get(key)
        return None if sub is None else sub.pattern

    def status(self, now: float) -> CoreStatus:
        """The core's figures, copied once (see ``status.py``)."""
        c = self.counters
        return CoreStatus(
            router_id=format_id(self.router_id), uptime_s=now - self.started, subscriptions=len(self.registry),
            designated_for=tuple(sorted(format_id(n) for n in self.tiering.designated)),
            counters=replace(c, refused=dict(c.refused)), store=self.queues.store_stats(),
            verifier_hits=self.verifier.stats.hits, verifier_misses=self.verifier.stats.misses,
            refusing_durable=self._refuse_durable, disk=self.disk.state().reply())
