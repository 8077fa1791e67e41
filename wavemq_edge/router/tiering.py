"""Tiering entry points: what a site's trunk brings to its designated router, and what comes back down.

The trunk state machines (``router/trunk``) decode frames and call these; every hop re-checks, so
nothing is trusted for having crossed a trunk (``admission.py`` names the two differences from an
agent's path: the signer's entity comes from the proof, and a stored object may be as old as
``queueExpiry``).

Designated-router side: ``publish_from_site`` (designated namespace, duplicate by id in the persisted
dedup window, since resends after a reconnect are expected; signature; proof; the id is recorded after
the message is queued, so a crash in between repeats it rather than loses it), ``subscribe_from_site``
and ``unsubscribe_from_site`` (a subscription signed by its subscriber and bound to the site by its
``router_id``; idempotent, because it is re-sent after every reconnect), ``query_from_site``.

Site side: ``deliver_from_upstream`` puts a message the designated router delivered for a forwarded
subscription into the local subscription's queue, unless it was published here (its subscribers got it
already) or fails re-verification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..storage import QueueStore
from ..uri import matches
from ..wave import Message, Query, Subscribe, Unsubscribe, VerificationError, format_id, object_id
from .admission import Admission, Age
from .errors import ErrorCode, RouterError
from .fanout import Fanout, PublishResult
from .lifecycle import SubscriptionLifecycle, peer_subscription_key
from .proof_store import ProofStore
from .query import QueryAnswer, QueryDesk
from .registry import SubscriptionRegistry
from .status import RouterCounters
from .subscription import Consumer, RouterSubscription

__all__ = ["Tiering", "trunk_queue_id"]

_T = TypeVar("_T")


def trunk_queue_id(namespace: bytes) -> str:
    """The store queue holding what a site sends up to ``namespace``'s designated router."""
    return "trunk:" + format_id(namespace)


class Tiering:
    def __init__(self, *, router_id: bytes, designated: frozenset[bytes], admission: Admission,
                 registry: SubscriptionRegistry, lifecycle: SubscriptionLifecycle, fanout: Fanout,
                 queues: QueueStore, proofs: ProofStore, queries: QueryDesk, counters: RouterCounters) -> None:
        self.router_id = router_id
        #: namespaces this router is the designated router for (``DesignatedNamespaceFiles``)
        self.designated = designated
        self._admission = admission
        self._registry = registry
        self._lifecycle = lifecycle
        self._fanout = fanout
        self._queues = queues
        self._proofs = proofs
        self._queries = queries
        self._counters = counters

    def _require_designated(self, namespace: bytes) -> None:
        if namespace not in self.designated:
            raise self._admission.refusal(ErrorCode.WRONG_NAMESPACE,
                                          f"this router is not designated for namespace {format_id(namespace)}")

    def _parsed(self, parse: Callable[[bytes], _T], raw: bytes) -> _T:
        try:
            return parse(raw)
        except VerificationError as exc:
            raise self._admission.refused(exc) from None

    # ------------------------------------------------------------------ designated-router side

    def publish_from_site(self, site_id: bytes, msg: Message, carried: bytes | None, now: float,
                          wall: float) -> PublishResult:
        """A message a site forwarded (already strictly parsed), with the proof the batch carried or
        None (sent earlier on this connection, or known from before)."""
        self._require_designated(msg.namespace)
        dedup = self._queues.dedup
        if msg.msg_id in dedup.window:
            self._counters.duplicates += 1
            return PublishResult(duplicate=True, subscribers=0)
        proof = carried if carried is not None else self._proofs.get(msg.proof_id)
        if proof is None:
            raise self._admission.refusal(ErrorCode.NO_PROOF, f"proof {format_id(msg.proof_id)} unknown here")
        self._admission.forwarded(msg, proof, msg.proof_id, wall, Age.STORED)
        self._admission.check_proof(proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                                    resource=msg.resource, wall=wall)
        self._proofs.remember(msg.proof_id, proof, now)
        result = self._fanout.accept(msg, now, from_site=site_id)
        # Only now, with the message in its queues' journal: a DR killed between the two records has the
        # message and not its id, and stores the site's resend again (at least once). The other way round
        # the resend was dropped as a duplicate of a message it never stored (lost after its T_ACK).
        dedup.seen_or_add(msg.msg_id, now)
        return result

    def subscribe_from_site(self, consumer: Consumer, site_id: bytes, raw: bytes, proof: bytes, now: float,
                            wall: float) -> RouterSubscription:
        """A subscription a site forwarded. Re-sent after every reconnect, so it is idempotent: same
        key, same queue, resumed."""
        req = self._parsed(Subscribe.parse, raw)
        self._require_designated(req.namespace)
        if req.router_id != site_id:
            raise self._admission.refusal(
                ErrorCode.BAD_REQUEST, f"subscribe is bound to router {format_id(req.router_id)}, not to the site "
                f"{format_id(site_id)} that forwarded it")
        self._admission.forwarded(req, proof, object_id(proof), wall, Age.STORED)
        pattern = req.resource
        expiry = self._admission.check_proof(proof, subject=req.src, namespace=req.namespace,
                                             permission="subscribe", resource=pattern, wall=wall)
        if req.abs_expiry:
            expiry = min(expiry, float(req.abs_expiry))
        if expiry <= wall:
            raise self._admission.refusal(ErrorCode.SUBSCRIPTION_ENDED, "the subscription's expiry is already past")
        key = peer_subscription_key(site_id, req.src, req.namespace, req.sub_id)
        sub = self._registry.get(key)
        if sub is None:
            sub = self._lifecycle.create(key, req, pattern, expiry, proof, False, raw, now, bound_site=site_id)
        else:
            self._lifecycle.resume(sub, pattern, expiry, proof, False, raw, now)
        sub.attach(consumer)
        self._queues.touch(sub.queue_id, now)
        self._registry.mark_ready(sub)
        return sub

    def unsubscribe_from_site(self, site_id: bytes, key: str, raw: bytes | None, now: float, wall: float) -> bool:
        """End a subscription the site forwarded. With the subscriber's signed unsubscribe it is checked;
        without one (an ephemeral subscription whose agent left) the site's own authority suffices,
        because the subscription is bound to it."""
        sub = self._registry.get(key)
        if sub is None or sub.bound_site != site_id:
            return False
        if raw is not None:
            req = self._parsed(Unsubscribe.parse, raw)
            self._admission.forwarded(req, sub.proof, object_id(sub.proof), wall, Age.STORED)
            if req.src != sub.entity or req.sub_id != sub.sub_id:
                raise self._admission.refusal(ErrorCode.UNKNOWN_SUBSCRIPTION,
                                              "the unsubscribe names another subscription")
        self._lifecycle.end(sub, ErrorCode.SUBSCRIPTION_ENDED, "unsubscribed at the site", now, notify=False)
        return True

    def query_from_site(self, raw: bytes, proof: bytes, after: str | None, limit: int, wall: float) -> QueryAnswer:
        """A query a site forwarded for one of its agents: answered live, so held to the agent's age."""
        q = self._parsed(Query.parse, raw)
        self._require_designated(q.namespace)
        self._admission.forwarded(q, proof, object_id(proof), wall, Age.LIVE)
        return self._queries.local(q, proof, after, limit, wall)

    # ------------------------------------------------------------------ site side

    def deliver_from_upstream(self, key: str, msg: Message, proof: bytes, now: float, wall: float) -> bool:
        """A message the designated router delivered for the local subscription ``key``. Returns False
        if it was dropped (not for us any more, published here, or failing re-verification)."""
        sub = self._registry.get(key)
        if sub is None:
            return False
        if msg.origin_router == self.router_id or self._fanout.published_here(msg.msg_id):
            return False  # published at this site: its subscribers got it locally
        try:
            self._admission.forwarded(msg, proof, msg.proof_id, wall, Age.STORED)
            self._admission.check_proof(proof, subject=msg.src, namespace=msg.namespace, permission="publish",
                                        resource=msg.resource, wall=wall)
            if not matches(sub.pattern, msg.resource) or msg.namespace != sub.namespace:
                raise self._admission.refusal(ErrorCode.PERMISSION_DENIED,
                                              "delivered message is outside the subscription")
        except RouterError:
            return False  # counted by admission
        self._queues.append(sub.queue_id, msg.raw, now)
        self._registry.mark_ready(sub)
        self._counters.enqueued += 1
        return True
