"""Router errors and the numbered codes agents see in ``REFUSED`` and ``SUB_END`` frames.

Codes are stable numbers (clients match on them); README lists them. They are grouped by hundreds:
6xx the request object itself, 61x authorization, 62x subscriptions, 63x resources of the router.
WAVE's refusal reasons (``wave.Reason``) map onto them in ``code_for_reason``; the reason text always
travels with the code, so a user sees *why* (which grant is missing, which entity expired).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ..wave import Reason

__all__ = ["ErrorCode", "RouterError", "code_for_reason"]


class ErrorCode(IntEnum):
    OK = 0
    #: the signed object is malformed, non-canonical or too large.
    BAD_REQUEST = 600
    #: the object's timestamp is too old or too far in the future.
    BAD_TIMESTAMP = 601
    #: the object names a source other than the connection's authenticated entity.
    WRONG_SOURCE = 602
    #: the signature does not verify.
    BAD_SIGNATURE = 603
    #: a publish URI contains ``*`` or ``+``, or a pattern is invalid.
    BAD_URI = 604
    #: the same request (nonce) was already seen.
    REPLAYED = 605
    #: the proof id is not known on this connection: send the proof first (``PROOF`` frame).
    NO_PROOF = 610
    #: the proof is malformed or broken (bad signature in a chain, broken link, TTL, not from namespace).
    PROOF_INVALID = 611
    #: something in the proof has expired (or is not yet valid).
    PROOF_EXPIRED = 612
    #: something in the proof has been revoked.
    PROOF_REVOKED = 613
    #: the proof is valid but does not grant this permission on this resource.
    PERMISSION_DENIED = 614
    #: the proof was issued to another entity.
    WRONG_SUBJECT = 615
    #: the proof is for another namespace.
    WRONG_NAMESPACE = 616
    #: an entity of the proof is unknown here (transient: retry after ``wv import``).
    UNKNOWN_ENTITY = 617
    #: the revocation feed is stale and ``defaultToUnrevoked`` is false.
    REVOCATION_STALE = 618
    #: the subscription ended (expired, proof expired or revoked, unsubscribed).
    SUBSCRIPTION_ENDED = 620
    #: no such subscription for this entity.
    UNKNOWN_SUBSCRIPTION = 621
    #: ``LimitsConfig.maxSubscriptionsPerConnection`` or the store's queue limit was reached.
    TOO_MANY_SUBSCRIPTIONS = 622
    #: the request was made before the connection authenticated.
    NOT_AUTHENTICATED = 630
    #: the router is short of disk (budget) and refuses new durable state.
    STORAGE_UNAVAILABLE = 631
    #: this router keeps no persisted messages (no ``PersistDataStore``).
    NOT_SUPPORTED = 632
    #: an internal error; the router logged it.
    INTERNAL = 699


_BY_REASON: Final[dict[Reason, ErrorCode]] = {
    Reason.MALFORMED: ErrorCode.BAD_REQUEST,
    Reason.NON_CANONICAL: ErrorCode.BAD_REQUEST,
    Reason.OVERSIZE: ErrorCode.BAD_REQUEST,
    Reason.BAD_SIGNATURE: ErrorCode.BAD_SIGNATURE,
    Reason.ID_MISMATCH: ErrorCode.BAD_REQUEST,
    Reason.UNKNOWN_ENTITY: ErrorCode.UNKNOWN_ENTITY,
    Reason.EXPIRED: ErrorCode.PROOF_EXPIRED,
    Reason.NOT_YET_VALID: ErrorCode.PROOF_EXPIRED,
    Reason.REVOKED: ErrorCode.PROOF_REVOKED,
    Reason.TTL_EXCEEDED: ErrorCode.PROOF_INVALID,
    Reason.WRONG_NAMESPACE: ErrorCode.WRONG_NAMESPACE,
    Reason.NOT_FROM_NAMESPACE: ErrorCode.PROOF_INVALID,
    Reason.BROKEN_LINK: ErrorCode.PROOF_INVALID,
    Reason.BAD_PATH: ErrorCode.PROOF_INVALID,
    Reason.WRONG_SUBJECT: ErrorCode.WRONG_SUBJECT,
    Reason.INSUFFICIENT_PERMISSION: ErrorCode.PERMISSION_DENIED,
    Reason.WILDCARD_URI: ErrorCode.BAD_URI,
    Reason.REPLAYED: ErrorCode.REPLAYED,
    Reason.STALE_TIMESTAMP: ErrorCode.BAD_TIMESTAMP,
    Reason.FUTURE_TIMESTAMP: ErrorCode.BAD_TIMESTAMP,
    Reason.UNKNOWN_PROOF: ErrorCode.NO_PROOF,
    Reason.REVOCATION_FEED_STALE: ErrorCode.REVOCATION_STALE,
}


def code_for_reason(reason: Reason) -> ErrorCode:
    return _BY_REASON.get(reason, ErrorCode.INTERNAL)


class RouterError(Exception):
    """A request is refused; ``code`` goes into the ``REFUSED`` frame with the message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
