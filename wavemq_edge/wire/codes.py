"""The numbered codes both ends of the agent API and the trunk agree on.

Two registries, kept apart because they answer different questions:

* ``CloseCode`` says why a *connection* ended; it travels in the ``ERROR`` frame sent before closing.
  4xx: the peer broke the framing or the protocol; 5xx: this end's own trouble (going away, a bug).
* ``ErrorCode`` says why one *request* was refused (``REFUSED``) or a subscription ended (``SUB_END``)
  while the connection stays open. Grouped by hundreds: 60x the request object itself,
  61x authorization, 62x subscriptions, 63x resources of the router.

Numbers are stable (clients, scripts and the README match on them): add new ones, never renumber.
The router maps WAVE's refusal reasons onto ``ErrorCode`` in ``router/errors.py``; the wire knows no WAVE.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode", "ErrorCode"]


class CloseCode(IntEnum):
    """Why a connection (or request) failed. Numbers are stable: clients match on them."""

    NORMAL = 0
    #: the length prefix announced a frame over ``max_frame_bytes``.
    FRAME_TOO_LARGE = 400
    #: the frame body is not exactly one well-formed CBOR item of the allowed types.
    MALFORMED_FRAME = 401
    #: the CBOR item is not an array starting with a known frame type.
    UNKNOWN_FRAME_TYPE = 402
    #: a frame of a known type with fields of the wrong number or type.
    BAD_FIELDS = 403
    #: a frame that is not allowed in the connection's current state.
    PROTOCOL_VIOLATION = 404
    #: the peer stopped sending mid-frame or mid-handshake for too long.
    TIMEOUT = 408
    #: a configured bound was reached (connections, subscriptions, ...).
    LIMIT_EXCEEDED = 429
    #: the router is shutting down.
    GOING_AWAY = 503
    #: an unexpected internal error; the router logged it.
    INTERNAL_ERROR = 500


class ErrorCode(IntEnum):
    """Why a request failed (``REFUSED``) or a subscription ended (``SUB_END``); the connection stays
    open. Numbers are stable: clients match on them."""

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
    #: the message cannot be stored within ``BudgetConfig.diskReserve`` (``QueueConfig.onDiskFull =
    #: "refuse"``): it was not accepted; publish again when space returns.
    STORAGE_FULL = 633
    #: an internal error; the router logged it.
    INTERNAL = 699
