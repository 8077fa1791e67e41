"""The routing core: publish, subscribe, unsubscribe, query and delivery, with no I/O.

Theory of operation
-------------------
``RouterCore`` owns the subscription trie, the subscriptions and (through the ``QueueStore``) their
queues, the persisted-message store, the proof verifier and the replay guard. Agent sessions call it
with signed objects; it answers with results or raises ``RouterError`` (a numbered code and a reason).

Publish, in the order of reference ``wave-security.md`` §7.7 (the frame bound and strict frame decode
happened in ``wire``): strict decode of the signed message -> timestamp window -> source is the
connection's entity -> signature and derived id -> no wildcard -> dedup of ``(source, id)`` (after the
signature, so nobody can poison the window with ids they could not sign) -> the proof grants
``wavemq:publish`` on the URI (verification cache) -> persisted store when ``persist`` is set -> every
matching subscription queue, exactly once per subscription whatever the patterns -> delivery.

Subscriptions: the queue id derives from (entity, namespace, identifier), so two namespaces or two
entities never share a queue; subscribing again with the same identifier re-attaches (and re-registers
a changed pattern). A subscription ends at ``min(requested expiry, proof expiry)``, when its proof is
revoked, on a signed unsubscribe, or after ``queueExpiry`` with no consumer (the store's idle expiry).
Durable subscriptions are recorded in a dedicated store queue (``SUBSCRIPTION_RECORDS``), journaled and
flushed with everything else, so after a restart they keep queueing before their subscriber returns.

Delivery is pulled by ``service()``: operations mark subscriptions ready; ``service()`` hands queued
items to consumers with credit (see ``subscription.py``). The glue calls it after each batch of input.

Time: ``now`` is the caller's monotonic clock (queues); security checks use wall-clock seconds
``now + wall_offset`` (timestamps and validity windows are epoch times).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

import cbor2

from ..storage import QueueKind, QueueLimits, QueueStore, StorageError, TooManyQueuesError
from ..uri import Pattern, SubscriptionTrie, UriError, matches, parse_pattern
from ..wave import (
    PSET_WAVEMQ,
    Entity,
    Message,
    Proof,
    Query,
    ReplayGuard,
    Revocation,
    Subscribe,
    Unsubscribe,
    VerificationError,
    Verifier,
    WaveError,
    format_id,
    object_id,
)
from .errors import ErrorCode, RouterError, code_for_reason
from .proof_store import ProofStore
from .subscription import Consumer, Subscription

__all__ = [
    "SUBSCRIPTION_RECORDS",
    "PersistStore",
    "PersistedPage",
    "PublishResult",
    "QueryForwarder",
    "QueryReply",
    "QueryResult",
    "RouterCore",
    "RouterCounters",
    "RouterOptions",
]

log = logging.getLogger("wavemq_edge.router")

#: Store queue holding one record per durable subscription (add/remove log, compacted).
SUBSCRIPTION_RECORDS: Final = "router:subscriptions"
_RECORDS_LIMITS: Final = QueueLimits(max_length=1_000_000, max_bytes=256 * 1024 * 1024, expiry_s=0)
#: Compact the records queue when it holds this many times more records than live subscriptions.
_RECORDS_COMPACT_FACTOR: Final = 4
#: Items handed out per ``peek`` while servicing one subscription.
_PEEK_BATCH: Final = 64
#: Message ids remembered as published at this site (echo suppression for trunked namespaces): more
#: than a trunk's in-flight window plus the designated router's delivery window.
_LOCAL_ORIGIN_MAX: Final = 65536
#: Entities extracted from proofs, by (proof id, entity id).
_ENTITY_CACHE_MAX: Final = 4096


class PersistedPage(Protocol):
    @property
    def items(self) -> list[tuple[str, bytes]]: ...

    @property
    def continuation(self) -> str | None: ...


class PersistStore(Protocol):
    """The persisted-message store (``storage.PersistStore``): last message per exact URI. Namespaces
    are given in their printable form."""

    def put(self, namespace: str, uri: str, message: bytes) -> None: ...

    def query(self, namespace: str, pattern: str, after_uri: str | None = None, limit: int = ...) -> PersistedPage:
        ...


class QueryReply(Protocol):
    """Where a forwarded query's answer goes (the agent session that asked)."""

    def query_results(self, messages: list[bytes], continuation: str | None, source: str) -> None: ...

    def query_refused(self, code: int, reason: str) -> None: ...


class QueryForwarder(Protocol):
    def forward_query(self, raw: bytes, proof: bytes, after_uri: str | None, limit: int,
                      reply: QueryReply) -> None: ...


@dataclass(frozen=True, slots=True)
class RouterOptions:
    #: bounds of each subscription queue (``subscriptionQueueMax*``, ``queueExpiry``).
    subscription_limits: QueueLimits
    max_subscriptions_per_connection: int = 256
    #: unacknowledged deliveries per consumer per subscription.
    inflight_window: int = 64
    #: tolerated clock skew for timestamps and validity windows, seconds.
    skew_s: float = 300.0
    #: oldest accepted timestamp of an agent's publish/subscribe/query/unsubscribe, seconds. Agents sign
    #: right before sending, so five minutes covers retries after a reconnect.
    request_max_age_s: float = 300.0
    #: most persisted messages one query returns before it hands back a continuation.
    query_max_results: int = 1000


@dataclass(slots=True)
class RouterCounters:
    published: int = 0
    duplicates: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    delivered: int = 0
    redelivered: int = 0
    acked: int = 0
    persisted: int = 0
    subscriptions_ended: int = 0
    queries: int = 0

    def refuse(self, code: ErrorCode) -> None:
        self.refused[code.name] = self.refused.get(code.name, 0) + 1


@dataclass(frozen=True, slots=True)
class PublishResult:
    duplicate: bool
    subscribers: int


@dataclass(frozen=True, slots=True)
class QueryResult:
    messages: list[tuple[str, bytes]]
    continuation: str | None
    source: str


def subscription_key(entity: bytes, namespace: bytes, sub_id: str) -> str:
    """Queue id of a subscription: a hash of (entity, namespace, identifier), so neither two namespaces
    nor two entities choosing the same identifier ever share a queue (WAVEMQ hashed entity||id only)."""
    h = hashlib.blake2b(digest_size=16, person=b"wl-subscription")
    for part in (entity, namespace, sub_id.encode("utf-8")):
        h.update(len(part).to_bytes(2, "big"))
        h.update(part)
    return "sub:" + h.hexdigest()


class _Request(Protocol):
    """What subscribe, unsubscribe and query objects share (``wave.messages``)."""

    @property
    def src(self) -> bytes: ...

    @property
    def nonce(self) -> bytes: ...

    @property
    def timestamp_ms(self) -> int: ...

    def verify(self, source: Entity, *, now: float, skew_s: float = ..., max_age_s: float = ...) -> None: ...


_Req = TypeVar("_Req", bound=_Request)


def peer_subscription_key(site_id: bytes, entity: bytes, namespace: bytes, sub_id: str) -> str:
    """Queue id at a designated router of a subscription forwarded by ``site_id``."""
    return "peer:" + subscription_key(site_id + entity, namespace, sub_id)[4:]


def _refuse(exc: VerificationError) -> RouterError:
    return RouterError(code_for_reason(exc.reason), str(exc))


class RouterCore:
    def __init__(
        self,
        *,
        router_id: bytes,
        queues: QueueStore,
        verifier: Verifier,
        options: RouterOptions,
        now: float,
        wall_offset: float,
        persist: PersistStore | None = None,
    ) -> None:
        self.router_id = router_id
        self.queues = queues
        self.verifier = verifier
        self.options = options
        self.persist = persist
        self.wall_offset = wall_offset
        self.counters = RouterCounters()
        self._trie: SubscriptionTrie[Subscription] = SubscriptionTrie()
        self._subs: dict[str, Subscription] = {}
        self._by_owner: dict[tuple[bytes, str], set[str]] = {}
        self._ready: set[Subscription] = set()
        self._replay = ReplayGuard(max_age_s=options.request_max_age_s + options.skew_s)
        self._records_live = 0
        #: agent sessions currently open (maintained by ``AgentSession``), for status.
        self.agent_connections = 0
        #: set by the process glue: more status fields (budget, uplinks, flushes), merged into STATUS.
        self.status_extra: Callable[[float], dict[str, object]] | None = None
        self.started = now
        # -- tiering (router/trunk.py drives these) --
        #: namespaces this router is the designated router for (from DesignatedNamespaceFiles).
        self.designated: set[bytes] = set()
        #: site side: namespace id -> its trunk queue (messages published here go up through it).
        self.trunk_queues: dict[bytes, str] = {}
        #: called with (namespace, sequence, message) when a message was appended to its trunk queue.
        self.on_trunk_append: Callable[[bytes, int, Message], None] | None = None
        #: called when a subscription in a trunked namespace starts ("add") or ends ("remove"), with the
        #: subscriber's signed unsubscribe when there is one.
        self.on_subscription: Callable[[Subscription, str, bytes | None], None] | None = None
        #: namespace id -> object forwarding queries to the designated router, or None when it is down.
        self.query_forwarder: Callable[[bytes], QueryForwarder | None] | None = None
        self.proofs = ProofStore(queues, now)
        #: ids of messages accepted from local agents in trunked namespaces: their copies coming back down
        #: from the designated router are not delivered twice.
        self._local_origin: OrderedDict[bytes, None] = OrderedDict()
        self._entity_cache: OrderedDict[tuple[bytes, bytes], Entity] = OrderedDict()
        queues.create_queue(SUBSCRIPTION_RECORDS, QueueKind.TRUNK, _RECORDS_LIMITS, now)
        self._restore_subscriptions(now)

    # ------------------------------------------------------------------ helpers

    def wall(self, now: float) -> float:
        return now + self.wall_offset

    def _check_proof(self, proof: bytes, *, subject: bytes, namespace: bytes, permission: str,
                     resource: Pattern, now: float) -> float:
        """Raise ``RouterError`` unless ``proof`` grants the permission; return the proof's expiry."""
        try:
            result = self.verifier.check(proof, subject=subject, namespace=namespace, pset=PSET_WAVEMQ,
                                         permission=permission, resource=resource, now=self.wall(now))
        except VerificationError as exc:
            raise _refuse(exc) from None
        return float(result.expiry)

    def _agent_request(self, parse: Callable[[bytes], _Req], raw: bytes, source: Entity, what: str,
                       now: float) -> _Req:
        """Strict decode, source is the connection's entity, timestamp window, signature, and not seen
        before (by nonce): the checks every signed agent request shares."""
        wall = self.wall(now)
        try:
            req = parse(raw)
            self._check_source(req.src, source, what)
            req.verify(source, now=wall, skew_s=self.options.skew_s, max_age_s=self.options.request_max_age_s)
            self._replay.accept(req.src, req.nonce, req.timestamp_ms, wall)
        except VerificationError as exc:
            self.counters.refuse(code_for_reason(exc.reason))
            raise _refuse(exc) from None
        return req

    @staticmethod
    def _check_source(src: bytes, source: Entity, what: str) -> None:
        if src != source.id:
            raise RouterError(ErrorCode.WRONG_SOURCE,
                              f"{what} is signed as {format_id(src)} but this connection authenticated as "
                              f"{format_id(source.id)}")

    @staticmethod
    def _topic(namespace: bytes, parts: Pattern) -> Pattern:
        # The namespace is the first trie segment, so a subscription never sees another namespace.
        return (format_id(namespace), *parts)

    # ------------------------------------------------------------------ publish

    def publish(self, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None],
                now: float) -> PublishResult:
        """Accept a signed message from ``source`` (the authenticated connection entity).

        ``proof_for(proof_id)`` returns the proof bytes the connection sent earlier, or None.
        """
        wall = self.wall(now)
        try:
            msg = Message.parse(raw)
            self._check_source(msg.src, source, "message")
            msg.verify(source, now=wall, skew_s=self.options.skew_s, max_age_s=self.options.request_max_age_s)
        except RouterError as exc:
            self.counters.refuse(exc.code)
            raise
        except VerificationError as exc:
            self.counters.refuse(code_for_reason(exc.reason))
            raise _refuse(exc) from None
        if msg.origin_router not in (b"", self.router_id):
            self.counters.refuse(ErrorCode.BAD_REQUEST)
            raise RouterError(ErrorCode.BAD_REQUEST,
                              f"message names origin router {format_id(msg.origin_router)}; an agent publishes "
                              f"with this router ({format_id(self.router_id)}) or none as origin")
        try:
            self._replay.accept(msg.src, msg.msg_id, msg.timestamp_ms, wall)
        except VerificationError:
            # An agent retrying a publish it already got accepted (e.g. after a reconnect): idempotent.
            self.counters.duplicates += 1
            return PublishResult(duplicate=True, subscribers=0)
        proof = proof_for(msg.proof_id)
        if proof is None:
            self.counters.refuse(ErrorCode.NO_PROOF)
            raise RouterError(ErrorCode.NO_PROOF,
                              f"proof {format_id(msg.proof_id)} was not sent on this connection; send it first")
        try:
            self._check_proof(proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                              resource=msg.resource, now=now)
        except RouterError as exc:
            self.counters.refuse(exc.code)
            raise
        self.proofs.remember(msg.proof_id, proof, now)
        return self._accept(msg, now, from_site=None)

    def _accept(self, msg: Message, now: float, from_site: bytes | None) -> PublishResult:
        """Store and fan out a verified message. ``from_site``: the site it came from over a trunk."""
        if msg.persist and self.persist is not None:
            self.persist.put(format_id(msg.namespace), msg.uri, msg.raw)
            self.counters.persisted += 1
        subs = self._trie.match(self._topic(msg.namespace, msg.resource))
        enqueued = 0
        for sub in subs:
            if sub.bound_site and sub.bound_site == msg.origin_router:
                continue  # that site delivered it to its own subscribers already
            self.queues.append(sub.queue_id, msg.raw, now)
            self._ready.add(sub)
            enqueued += 1
        trunk = self.trunk_queues.get(msg.namespace)
        if trunk is not None and from_site is None:
            seq = self.queues.append(trunk, msg.raw, now)
            self._local_origin[msg.msg_id] = None
            if len(self._local_origin) > _LOCAL_ORIGIN_MAX:
                self._local_origin.popitem(last=False)
            if self.on_trunk_append is not None:
                self.on_trunk_append(msg.namespace, seq, msg)
        self.counters.published += 1
        self.counters.enqueued += enqueued
        return PublishResult(duplicate=False, subscribers=enqueued)

    # ------------------------------------------------------------------ tiering: designated router side

    def entity_from_proof(self, proof: bytes, proof_id: bytes, entity_id: bytes) -> Entity:
        """The entity ``entity_id`` as carried in a (self-contained) proof; raises UNKNOWN_ENTITY."""
        key = (proof_id, entity_id)
        cached = self._entity_cache.get(key)
        if cached is not None:
            return cached
        try:
            for raw in Proof.from_bytes(proof).entities:
                entity = Entity.from_bytes(raw)
                if entity.id == entity_id:
                    self._entity_cache[key] = entity
                    if len(self._entity_cache) > _ENTITY_CACHE_MAX:
                        self._entity_cache.popitem(last=False)
                    return entity
        except WaveError as exc:
            raise RouterError(ErrorCode.PROOF_INVALID, f"proof {format_id(proof_id)}: {exc}") from None
        raise RouterError(ErrorCode.UNKNOWN_ENTITY,
                          f"entity {format_id(entity_id)} is not in proof {format_id(proof_id)}")

    def publish_from_site(self, site_id: bytes, msg: Message, proof: bytes, now: float) -> PublishResult:
        """A message a site forwarded over its trunk (already strictly parsed). Every hop re-checks:
        designated namespace, timestamp within ``queueExpiry`` (a backlog may be old), duplicate by id
        (the persisted dedup window: resends after a reconnect are expected), signature, proof."""
        if msg.namespace not in self.designated:
            raise RouterError(ErrorCode.WRONG_NAMESPACE,
                              f"this router is not designated for namespace {format_id(msg.namespace)}")
        dedup = self.queues.dedup
        if msg.msg_id in dedup.window:
            self.counters.duplicates += 1
            return PublishResult(duplicate=True, subscribers=0)
        entity = self.entity_from_proof(proof, msg.proof_id, msg.src)
        wall = self.wall(now)
        try:
            msg.verify(entity, now=wall, skew_s=self.options.skew_s,
                       max_age_s=self.options.subscription_limits.expiry_s)
        except VerificationError as exc:
            raise _refuse(exc) from None
        self._check_proof(proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                          resource=msg.resource, now=now)
        dedup.seen_or_add(msg.msg_id, now)
        self.proofs.remember(msg.proof_id, proof, now)
        return self._accept(msg, now, from_site=site_id)

    def subscribe_from_site(self, consumer: Consumer, site_id: bytes, raw: bytes, proof: bytes,
                            now: float) -> Subscription:
        """A subscription a site forwarded (signed by its subscriber, bound to that site by router_id).
        Re-sent after every reconnect, so it is idempotent: same key, same queue, resumed."""
        try:
            req = Subscribe.parse(raw)
        except VerificationError as exc:
            raise _refuse(exc) from None
        if req.namespace not in self.designated:
            raise RouterError(ErrorCode.WRONG_NAMESPACE,
                              f"this router is not designated for namespace {format_id(req.namespace)}")
        if req.router_id != site_id:
            raise RouterError(ErrorCode.BAD_REQUEST,
                              f"subscribe is bound to router {format_id(req.router_id)}, not to the site "
                              f"{format_id(site_id)} that forwarded it")
        entity = self.entity_from_proof(proof, object_id(proof), req.src)
        wall = self.wall(now)
        try:
            req.verify(entity, now=wall, skew_s=self.options.skew_s,
                       max_age_s=self.options.subscription_limits.expiry_s)
        except VerificationError as exc:
            raise _refuse(exc) from None
        pattern = req.resource
        expiry = self._check_proof(proof, subject=req.src, namespace=req.namespace, permission="subscribe",
                                   resource=pattern, now=now)
        if req.abs_expiry:
            expiry = min(expiry, float(req.abs_expiry))
        if expiry <= wall:
            raise RouterError(ErrorCode.SUBSCRIPTION_ENDED, "the subscription's expiry is already past")
        key = peer_subscription_key(site_id, req.src, req.namespace, req.sub_id)
        sub = self._subs.get(key)
        if sub is None:
            sub = self._create(key, req, pattern, expiry, proof, False, raw, now, bound_site=site_id)
        else:
            self._update(sub, req, pattern, expiry, proof, False, raw, now)
        sub.attach(consumer)
        self.queues.touch(sub.queue_id, now)
        self._ready.add(sub)
        return sub

    def unsubscribe_from_site(self, site_id: bytes, key: str, raw: bytes | None, now: float) -> bool:
        """End a subscription the site forwarded. With the subscriber's signed unsubscribe it is checked;
        without one (an ephemeral subscription whose agent left) the site's own authority suffices,
        because the subscription is bound to it."""
        sub = self._subs.get(key)
        if sub is None or sub.bound_site != site_id:
            return False
        if raw is not None:
            try:
                req = Unsubscribe.parse(raw)
                entity = self.entity_from_proof(sub.proof, object_id(sub.proof), req.src)
                req.verify(entity, now=self.wall(now), skew_s=self.options.skew_s,
                           max_age_s=self.options.subscription_limits.expiry_s)
            except VerificationError as exc:
                raise _refuse(exc) from None
            if req.src != sub.entity or req.sub_id != sub.sub_id:
                raise RouterError(ErrorCode.UNKNOWN_SUBSCRIPTION, "the unsubscribe names another subscription")
        self._end(sub, ErrorCode.SUBSCRIPTION_ENDED, "unsubscribed at the site", now, notify=False)
        return True

    # ------------------------------------------------------------------ tiering: site side

    def deliver_from_upstream(self, key: str, msg: Message, proof: bytes, now: float) -> bool:
        """A message the designated router delivered for the local subscription ``key``. Returns False
        if it was dropped (not for us any more, published here, or failing re-verification)."""
        sub = self._subs.get(key)
        if sub is None:
            return False
        if msg.origin_router == self.router_id or msg.msg_id in self._local_origin:
            return False  # published at this site: its subscribers got it locally
        try:
            entity = self.entity_from_proof(proof, msg.proof_id, msg.src)
            msg.verify(entity, now=self.wall(now), skew_s=self.options.skew_s,
                       max_age_s=self.options.subscription_limits.expiry_s)
            self._check_proof(proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                              resource=msg.resource, now=now)
        except VerificationError as exc:
            self.counters.refuse(code_for_reason(exc.reason))
            return False
        except RouterError as exc:
            self.counters.refuse(exc.code)
            return False
        if not matches(sub.pattern, msg.resource) or msg.namespace != sub.namespace:
            self.counters.refuse(ErrorCode.PERMISSION_DENIED)
            return False
        self.queues.append(sub.queue_id, msg.raw, now)
        self._ready.add(sub)
        self.counters.enqueued += 1
        return True

    # ------------------------------------------------------------------ subscribe

    def subscribe(self, consumer: Consumer, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None],
                  ephemeral: bool, consumer_subscriptions: int, now: float) -> tuple[Subscription, bool]:
        """Verify a signed subscribe and attach ``consumer``. Returns (subscription, resumed)."""
        wall = self.wall(now)
        req = self._agent_request(Subscribe.parse, raw, source, "subscribe", now)
        if req.router_id not in (b"", self.router_id):
            raise RouterError(ErrorCode.BAD_REQUEST,
                              f"subscribe is bound to router {format_id(req.router_id)}, not this one")
        if not req.sub_id:
            raise RouterError(ErrorCode.BAD_REQUEST, "subscribe has an empty identifier")
        proof = proof_for(req.proof_id)
        if proof is None:
            raise RouterError(ErrorCode.NO_PROOF,
                              f"proof {format_id(req.proof_id)} was not sent on this connection; send it first")
        pattern = req.resource
        proof_expiry = self._check_proof(proof, subject=req.src, namespace=req.namespace, permission="subscribe",
                                         resource=pattern, now=now)
        expiry = proof_expiry
        if req.abs_expiry:
            expiry = min(expiry, float(req.abs_expiry))
        if req.expiry_s:
            expiry = min(expiry, wall + req.expiry_s)
        if expiry <= wall:
            raise RouterError(ErrorCode.SUBSCRIPTION_ENDED, "the requested expiry is already past")
        key = subscription_key(req.src, req.namespace, req.sub_id)
        sub = self._subs.get(key)
        resumed = sub is not None
        if sub is None and consumer_subscriptions >= self.options.max_subscriptions_per_connection:
            raise RouterError(ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                              f"this connection has {consumer_subscriptions} subscriptions, the limit "
                              f"(LimitsConfig.maxSubscriptionsPerConnection) is "
                              f"{self.options.max_subscriptions_per_connection}")
        if sub is None:
            sub = self._create(key, req, pattern, expiry, proof, ephemeral, raw, now)
        else:
            self._update(sub, req, pattern, expiry, proof, ephemeral, raw, now)
        sub.attach(consumer)
        self.queues.touch(sub.queue_id, now)
        self._ready.add(sub)
        return sub, resumed

    def _create(self, key: str, req: Subscribe, pattern: Pattern, expiry: float, proof: bytes,
                ephemeral: bool, raw: bytes, now: float, bound_site: bytes = b"") -> Subscription:
        try:
            stats = self.queues.create_queue(key, QueueKind.SUBSCRIPTION, self.options.subscription_limits, now)
        except TooManyQueuesError as exc:
            raise RouterError(ErrorCode.TOO_MANY_SUBSCRIPTIONS, str(exc)) from None
        except StorageError as exc:
            raise RouterError(ErrorCode.STORAGE_UNAVAILABLE, str(exc)) from None
        # A queue that outlived its subscription (idle, not yet expired) is delivered from its head.
        sub = Subscription(key=key, sub_id=req.sub_id, entity=req.src, namespace=req.namespace, pattern=pattern,
                           expiry=expiry, proof=proof, ephemeral=ephemeral, cursor=stats.head - 1, record=raw,
                           bound_site=bound_site)
        self._register(sub)
        if not ephemeral:
            self._record_add(sub, now)
        self._notify_subscription(sub, "add", None)
        log.info("event=subscribe sub=%s entity=%s ns=%s pattern=%s ephemeral=%s", req.sub_id,
                 format_id(req.src), format_id(req.namespace), req.uri, ephemeral)
        return sub

    def _update(self, sub: Subscription, req: Subscribe, pattern: Pattern, expiry: float, proof: bytes,
                ephemeral: bool, raw: bytes, now: float) -> None:
        if pattern != sub.pattern:
            # WAVEMQ kept the old tree entry on resume with a new pattern (§12 row 15): re-register.
            self._trie.remove(self._topic(sub.namespace, sub.pattern), sub)
            sub.pattern = pattern
            self._trie.insert(self._topic(sub.namespace, pattern), sub)
        sub.expiry = expiry
        sub.proof = proof
        sub.record = raw
        if sub.ephemeral and not ephemeral:
            sub.ephemeral = False
        if not sub.ephemeral:
            self._record_add(sub, now)
        self._notify_subscription(sub, "add", None)

    def _notify_subscription(self, sub: Subscription, change: str, unsubscribe: bytes | None) -> None:
        if self.on_subscription is not None and not sub.bound_site and sub.namespace in self.trunk_queues:
            self.on_subscription(sub, change, unsubscribe)

    def _register(self, sub: Subscription) -> None:
        self._subs[sub.key] = sub
        self._by_owner.setdefault((sub.entity, sub.sub_id), set()).add(sub.key)
        self._trie.insert(self._topic(sub.namespace, sub.pattern), sub)

    def detach(self, consumer: Consumer, sub: Subscription, now: float) -> None:
        """``consumer`` goes away (connection closed). Ephemeral subscriptions end with their last one."""
        sub.detach(consumer)
        if sub.key not in self._subs:
            return
        if sub.queue_id and self.queues.has_queue(sub.queue_id):
            self.queues.touch(sub.queue_id, now)
        if sub.ephemeral and not sub.consumers:
            self._end(sub, ErrorCode.SUBSCRIPTION_ENDED, "ephemeral subscription: its last consumer left", now,
                      notify=False)
        else:
            self._ready.add(sub)

    def unsubscribe(self, source: Entity, raw: bytes, now: float) -> int:
        """A signed unsubscribe: ends every subscription of ``source`` with that identifier."""
        req = self._agent_request(Unsubscribe.parse, raw, source, "unsubscribe", now)
        keys = self._by_owner.get((req.src, req.sub_id))
        if not keys:
            raise RouterError(ErrorCode.UNKNOWN_SUBSCRIPTION,
                              f"{format_id(req.src)} has no subscription {req.sub_id!r} on this router")
        subs = [self._subs[k] for k in list(keys)]
        for sub in subs:
            self._end(sub, ErrorCode.SUBSCRIPTION_ENDED, "unsubscribed", now, unsubscribe=raw)
        return len(subs)

    def _end(self, sub: Subscription, code: ErrorCode, reason: str, now: float, notify: bool = True,
             unsubscribe: bytes | None = None) -> None:
        if self._subs.pop(sub.key, None) is None:
            return
        self._notify_subscription(sub, "remove", unsubscribe)
        owner = (sub.entity, sub.sub_id)
        keys = self._by_owner.get(owner)
        if keys is not None:
            keys.discard(sub.key)
            if not keys:
                del self._by_owner[owner]
        self._trie.remove(self._topic(sub.namespace, sub.pattern), sub)
        self._ready.discard(sub)
        if self.queues.has_queue(sub.queue_id):
            self.queues.remove_queue(sub.queue_id)
        if not sub.ephemeral:
            self._record_remove(sub, now)
        consumers = list(sub.consumers)
        sub.consumers.clear()
        sub.inflight.clear()
        if notify:
            for c in consumers:
                c.subscription_ended(sub, int(code), reason)
        self.counters.subscriptions_ended += 1
        log.info("event=subscription_ended sub=%s entity=%s reason=%r", sub.sub_id, format_id(sub.entity), reason)

    # ------------------------------------------------------------------ delivery

    def acknowledge(self, consumer: Consumer, sub: Subscription, seqs: Iterable[int], now: float) -> int:
        n = 0
        for seq in seqs:
            if sub.acknowledge(consumer, seq):
                n += 1
        if n and sub.key in self._subs:
            self.queues.ack(sub.queue_id, sub.ack_floor(), now)
            self.counters.acked += n
            self._ready.add(sub)
        return n

    def mark_ready(self, sub: Subscription) -> None:
        if sub.key in self._subs:
            self._ready.add(sub)

    def service(self) -> int:
        """Hand queued messages to consumers with credit. Returns how many were delivered."""
        total = 0
        while self._ready:
            sub = self._ready.pop()
            if sub.key in self._subs and sub.consumers:
                total += self._pump(sub)
        return total

    def _pump(self, sub: Subscription) -> int:
        sent = 0
        queue_id = sub.queue_id
        while sub.redeliver:
            consumer = sub.next_consumer()
            if consumer is None:
                return sent
            seq = sub.redeliver.pop(0)
            items = self.queues.peek(queue_id, seq - 1, 1)
            if items and items[0][0] == seq:
                sub.inflight[seq] = consumer
                consumer.deliver(sub, seq, items[0][1])
                self.counters.redelivered += 1
                sent += 1
            # else: the store dropped it meanwhile (overflow/expiry, counted there)
        while True:
            consumer = sub.next_consumer()
            if consumer is None:
                return sent
            items = self.queues.peek(queue_id, sub.cursor, _PEEK_BATCH)
            if not items:
                return sent
            for seq, item in items:
                if consumer is None or consumer.credit(sub) <= 0:
                    consumer = sub.next_consumer()
                    if consumer is None:
                        return sent
                sub.cursor = seq
                sub.inflight[seq] = consumer
                consumer.deliver(sub, seq, item)
                self.counters.delivered += 1
                sent += 1

    # ------------------------------------------------------------------ query

    def query(self, source: Entity, raw: bytes, proof_for: Callable[[bytes], bytes | None], after_uri: str | None,
              limit: int, now: float, reply: QueryReply | None = None) -> QueryResult | None:
        """Answer from the local persisted store, or (``None``) hand the query to the designated router's
        uplink when the namespace has one that is up; its answer then arrives through ``reply``."""
        req = self._agent_request(Query.parse, raw, source, "query", now)
        proof = proof_for(req.proof_id)
        if proof is None:
            raise RouterError(ErrorCode.NO_PROOF,
                              f"proof {format_id(req.proof_id)} was not sent on this connection; send it first")
        forwarder = self.query_forwarder(req.namespace) if self.query_forwarder is not None else None
        if forwarder is not None and reply is not None:
            self._check_query_proof(req, proof, now)
            limit = self._query_limit(limit)
            forwarder.forward_query(raw, proof, after_uri, limit, reply)
            self.counters.queries += 1
            return None
        return self.local_query(req, proof, after_uri, limit, now)

    def _query_limit(self, limit: int) -> int:
        cap = self.options.query_max_results
        return max(1, min(limit, cap)) if limit > 0 else cap

    def _check_query_proof(self, req: Query, proof: bytes, now: float) -> None:
        try:
            pattern = parse_pattern(req.uri)
        except UriError as exc:
            raise RouterError(ErrorCode.BAD_URI, str(exc)) from None
        self._check_proof(proof, subject=req.src, namespace=req.namespace, permission="query", resource=pattern,
                          now=now)

    def local_query(self, req: Query, proof: bytes, after_uri: str | None, limit: int, now: float) -> QueryResult:
        """Answer a verified query (signature and freshness checked by the caller) from this router's
        persisted store, after checking its proof grants ``wavemq:query`` on the pattern."""
        if self.persist is None:
            raise RouterError(ErrorCode.NOT_SUPPORTED, "this router keeps no persisted messages")
        self._check_query_proof(req, proof, now)
        try:
            page = self.persist.query(format_id(req.namespace), req.uri, after_uri, self._query_limit(limit))
        except (UriError, ValueError) as exc:
            raise RouterError(ErrorCode.BAD_URI, f"query continuation or pattern refused: {exc}") from None
        self.counters.queries += 1
        return QueryResult(list(page.items), page.continuation, "local")

    # ------------------------------------------------------------------ timers and revocation

    def next_deadline(self) -> float | None:
        """Monotonic time of the next subscription expiry (the store has its own deadlines)."""
        if not self._subs:
            return None
        earliest = min(s.expiry for s in self._subs.values())
        return earliest - self.wall_offset

    def handle_timer(self, now: float) -> None:
        wall = self.wall(now)
        for sub in [s for s in self._subs.values() if s.expiry <= wall]:
            self._end(sub, ErrorCode.SUBSCRIPTION_ENDED, f"expired at {sub.expiry:.0f} (proof or requested expiry)",
                      now)
        for gone in self.queues.handle_timer(now):
            idle = self._subs.get(gone.queue_id)
            if idle is not None:
                self._end(idle, ErrorCode.SUBSCRIPTION_ENDED, f"no consumer for {gone.idle_s:.0f} s (queueExpiry)",
                          now)

    def add_revocation(self, revocation: Revocation | bytes, now: float) -> int:
        """Learn a revocation: evict cached proofs, end the subscriptions whose proof it breaks."""
        self.verifier.add_revocation(revocation)
        ended = 0
        for sub in list(self._subs.values()):
            try:
                self._check_proof(sub.proof, subject=sub.entity, namespace=sub.namespace, permission="subscribe",
                                  resource=sub.pattern, now=now)
            except RouterError as exc:
                if exc.code in (ErrorCode.PROOF_REVOKED, ErrorCode.PROOF_EXPIRED):
                    self._end(sub, ErrorCode.SUBSCRIPTION_ENDED, f"proof no longer valid: {exc}", now)
                    ended += 1
        return ended

    # ------------------------------------------------------------------ durable subscription records

    def _record_add(self, sub: Subscription, now: float) -> None:
        body = cbor2.dumps(["add", sub.key, sub.record, sub.proof, sub.bound_site])
        self.queues.append(SUBSCRIPTION_RECORDS, body, now)
        self._records_live += 1
        self._maybe_compact(now)

    def _record_remove(self, sub: Subscription, now: float) -> None:
        self.queues.append(SUBSCRIPTION_RECORDS, cbor2.dumps(["remove", sub.key]), now)
        self._maybe_compact(now)

    def _maybe_compact(self, now: float) -> None:
        stats = self.queues.stats(SUBSCRIPTION_RECORDS)
        live = sum(1 for s in self._subs.values() if not s.ephemeral)
        if stats.depth > _RECORDS_COMPACT_FACTOR * max(live, 16):
            upto = stats.tail - 1
            for s in self._subs.values():
                if not s.ephemeral:
                    self.queues.append(SUBSCRIPTION_RECORDS,
                                       cbor2.dumps(["add", s.key, s.record, s.proof, s.bound_site]), now)
            self.queues.ack(SUBSCRIPTION_RECORDS, upto)

    def _restore_subscriptions(self, now: float) -> None:
        """Re-register durable subscriptions recorded before a restart (their proofs are re-checked)."""
        records: dict[str, tuple[bytes, bytes, bytes]] = {}
        after = -1
        while True:
            batch = self.queues.peek(SUBSCRIPTION_RECORDS, after, 1024)
            if not batch:
                break
            for seq, body in batch:
                after = seq
                try:
                    rec = cbor2.loads(body)
                    if rec[0] == "add":
                        records[rec[1]] = (rec[2], rec[3], rec[4] if len(rec) > 4 else b"")
                    elif rec[0] == "remove":
                        records.pop(rec[1], None)
                except (cbor2.CBORDecodeError, IndexError, TypeError, KeyError) as exc:
                    log.error("event=bad_subscription_record seq=%d error=%r", seq, str(exc))
        wall = self.wall(now)
        for key, (raw, proof, bound_site) in records.items():
            try:
                req = Subscribe.parse(raw)
                pattern = req.resource
                result = self.verifier.check(proof, subject=req.src, namespace=req.namespace, pset=PSET_WAVEMQ,
                                             permission="subscribe", resource=pattern, now=wall)
            except (WaveError, UriError) as exc:
                log.warning("event=subscription_dropped_on_restore key=%s reason=%r", key, str(exc))
                if self.queues.has_queue(key):
                    self.queues.remove_queue(key)
                continue
            expiry = float(result.expiry)
            if req.abs_expiry:
                expiry = min(expiry, float(req.abs_expiry))
            if expiry <= wall or not self.queues.has_queue(key):
                continue
            stats = self.queues.stats(key)
            sub = Subscription(key=key, sub_id=req.sub_id, entity=req.src, namespace=req.namespace, pattern=pattern,
                               expiry=expiry, proof=proof, ephemeral=False, cursor=stats.head - 1, record=raw,
                               bound_site=bound_site)
            self._register(sub)
        # Queues of ephemeral subscriptions (never recorded) died with their consumers.
        for queue_id in self.queues.queue_ids():
            if queue_id.startswith(("sub:", "peer:")) and queue_id not in self._subs:
                self.queues.remove_queue(queue_id)
        self._records_live = len(self._subs)
        if self._subs:
            log.info("event=subscriptions_restored count=%d", len(self._subs))

    # ------------------------------------------------------------------ status

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs.values())

    def subscription(self, key: str) -> Subscription | None:
        return self._subs.get(key)
