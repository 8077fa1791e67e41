"""Admission: every check that decides whether the router accepts a signed object, in one place.

Theory of operation
-------------------
Each path into the router (an agent's publish, subscribe, unsubscribe and query; a message, a
subscription or a query a site forwarded over its trunk; a message the designated router delivered down)
runs the same sequence, only from a different start:

    strict decode -> who signed it (the connection's entity, or the entity carried in its proof)
    -> signature and timestamp window -> not seen before (agents) -> the proof grants the permission

Two things legitimately differ between paths, and are named here instead of being copied with quiet
variations:

* **How old a signature may be** (``Age``). An agent signs right before sending, so its objects must be
  fresh (``RouterOptions.request_max_age_s``, five minutes). What crosses a trunk may have waited in a
  backlog or is re-sent after every reconnect (a forwarded subscription), so it may be as old as a queue
  keeps anything (``queueExpiry``). A forwarded *query* is answered live, so it is held to the agent rule.
* **Where the signer's entity comes from.** An agent proved possession of its key in the handshake; an
  object that crossed a trunk carries its signer's entity inside its (self-contained) proof.

Every refusal is a ``RouterError`` made by :meth:`Admission.refusal`, which counts it under its code:
the one place refusals are counted, whichever path raised them.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Final, Protocol, TypeVar

from ..lru import LRU
from ..uri import Pattern
from ..wave import (
    PSET_WAVEMQ,
    Entity,
    Message,
    Proof,
    Reason,
    ReplayGuard,
    VerificationError,
    Verifier,
    WaveError,
    format_id,
)
from .errors import ErrorCode, RouterError, code_for_reason
from .options import RouterOptions
from .publish_batch import Prepared
from .status import RouterCounters

__all__ = ["Admission", "Age", "SignedObject"]

#: Entities extracted from proofs, by (proof id, entity id): one per publisher of a busy site.
ENTITY_CACHE_MAX: Final = 4096


class Age(Enum):
    """How old a signature an admission path accepts (see the module docstring)."""

    LIVE = "live"
    STORED = "stored"


class SignedObject(Protocol):
    """What messages, subscribes, unsubscribes and queries share (``wave.messages``)."""

    @property
    def src(self) -> bytes: ...

    @property
    def timestamp_ms(self) -> int: ...

    def verify(self, source: Entity, *, now: float, skew_s: float = ..., max_age_s: float = ...) -> None: ...


class _Request(SignedObject, Protocol):
    @property
    def nonce(self) -> bytes: ...


_Req = TypeVar("_Req", bound=_Request)


class Admission:
    def __init__(self, verifier: Verifier, options: RouterOptions, counters: RouterCounters) -> None:
        self.verifier = verifier
        self.options = options
        self.counters = counters
        self.replay = ReplayGuard(max_age_s=options.request_max_age_s + options.skew_s,
                                  max_entries=options.replay_window_max)
        self._entities: LRU[tuple[bytes, bytes], Entity] = LRU(ENTITY_CACHE_MAX)

    # ------------------------------------------------------------------ refusals

    def refusal(self, code: ErrorCode, reason: str) -> RouterError:
        """A refusal to raise, counted under its code."""
        self.counters.refuse(code)
        return RouterError(code, reason)

    def refused(self, exc: VerificationError) -> RouterError:
        return self.refusal(code_for_reason(exc.reason), str(exc))

    def max_age_s(self, age: Age) -> float:
        return self.options.request_max_age_s if age is Age.LIVE else self.options.subscription_limits.expiry_s

    # ------------------------------------------------------------------ checks

    def grant_expiry(self, proof: bytes, *, subject: bytes, namespace: bytes, permission: str,
                     resource: Pattern, wall: float) -> float:
        """The expiry of ``proof``'s grant of ``wavemq:<permission>`` on ``resource``; raises a
        ``VerificationError`` (not counted: re-checks of live subscriptions use it too)."""
        result = self.verifier.check(proof, subject=subject, namespace=namespace, pset=PSET_WAVEMQ,
                                     permission=permission, resource=resource, now=wall)
        return float(result.expiry)

    def check_proof(self, proof: bytes, *, subject: bytes, namespace: bytes, permission: str,
                    resource: Pattern, wall: float) -> float:
        """Refuse unless ``proof`` grants the permission; return the grant's expiry."""
        try:
            return self.grant_expiry(proof, subject=subject, namespace=namespace, permission=permission,
                                     resource=resource, wall=wall)
        except VerificationError as exc:
            raise self.refused(exc) from None

    def check_proof_id(self, proof_id: bytes, proof: bytes, *, subject: bytes, namespace: bytes, permission: str,
                       resource: Pattern, wall: float) -> float:
        """``check_proof`` for a proof whose id this router computed itself (the connection's proof
        table): the verifier's cache is asked by id, and the proof is hashed only when it is not cached."""
        try:
            result = self.verifier.check_id(proof_id, subject=subject, namespace=namespace, pset=PSET_WAVEMQ,
                                            permission=permission, resource=resource, now=wall)
        except VerificationError as exc:
            if exc.reason is not Reason.UNKNOWN_PROOF:
                raise self.refused(exc) from None
            return self.check_proof(proof, subject=subject, namespace=namespace, permission=permission,
                                    resource=resource, wall=wall)
        return float(result.expiry)

    def require_proof(self, proof_for: Callable[[bytes], bytes | None], proof_id: bytes) -> bytes:
        proof = proof_for(proof_id)
        if proof is None:
            raise self.refusal(ErrorCode.NO_PROOF,
                               f"proof {format_id(proof_id)} was not sent on this connection; send it first")
        return proof

    def check_source(self, src: bytes, source: Entity, what: str) -> None:
        if src != source.id:
            raise self.refusal(ErrorCode.WRONG_SOURCE,
                               f"{what} is signed as {format_id(src)} but this connection authenticated as "
                               f"{format_id(source.id)}")

    def agent_message(self, raw: bytes, source: Entity, wall: float, prepared: Prepared | None = None) -> Message:
        """Strict decode, signed by the connection's entity, signature and a fresh timestamp. ``prepared``:
        the message already parsed and its signature checked in a batch (``publish_batch.py``)."""
        try:
            if prepared is None:
                msg, signature_ok = Message.parse(raw), None
            else:
                if prepared.error is not None:
                    raise prepared.error
                assert prepared.message is not None
                msg, signature_ok = prepared.message, prepared.signature_ok
            self.check_source(msg.src, source, "message")
            msg.verify(source, now=wall, skew_s=self.options.skew_s, max_age_s=self.options.request_max_age_s,
                       signature_ok=signature_ok)
        except VerificationError as exc:
            raise self.refused(exc) from None
        return msg

    def first_time(self, src: bytes, ident: bytes, timestamp_ms: int, wall: float) -> bool:
        """Record ``(src, ident)``; False when it was accepted before (an agent retrying a publish)."""
        try:
            self.replay.accept(src, ident, timestamp_ms, wall)
        except VerificationError:
            return False
        return True

    def agent_request(self, parse: Callable[[bytes], _Req], raw: bytes, source: Entity, what: str,
                      wall: float) -> _Req:
        """Strict decode, source is the connection's entity, signature, fresh timestamp, and a nonce not
        seen before: the checks every signed agent request shares."""
        try:
            req = parse(raw)
            self.check_source(req.src, source, what)
            req.verify(source, now=wall, skew_s=self.options.skew_s, max_age_s=self.options.request_max_age_s)
            self.replay.accept(req.src, req.nonce, req.timestamp_ms, wall)
        except VerificationError as exc:
            raise self.refused(exc) from None
        return req

    def forwarded(self, obj: SignedObject, proof: bytes, proof_id: bytes, wall: float, age: Age) -> None:
        """An object that crossed a trunk: its signer's entity from its proof, then signature and age."""
        entity = self.entity_from_proof(proof, proof_id, obj.src)
        try:
            obj.verify(entity, now=wall, skew_s=self.options.skew_s, max_age_s=self.max_age_s(age))
        except VerificationError as exc:
            raise self.refused(exc) from None

    def entity_from_proof(self, proof: bytes, proof_id: bytes, entity_id: bytes) -> Entity:
        """The entity ``entity_id`` as carried in a self-contained proof."""
        key = (proof_id, entity_id)
        cached = self._entities.get(key)
        if cached is not None:
            return cached
        try:
            for raw in Proof.from_bytes(proof).entities:
                entity = Entity.from_bytes(raw)
                if entity.id == entity_id:
                    self._entities.put(key, entity)
                    return entity
        except WaveError as exc:
            raise self.refusal(ErrorCode.PROOF_INVALID, f"proof {format_id(proof_id)}: {exc}") from None
        raise self.refusal(ErrorCode.UNKNOWN_ENTITY,
                           f"entity {format_id(entity_id)} is not in proof {format_id(proof_id)}")
