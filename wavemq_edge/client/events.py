"""What the client protocol reports, one frozen slotted dataclass per thing that happened.

The pump pulls them with ``ClientProtocol.next_event()``. Replies carry ``req``, the request number
``send_request`` returned; deliveries carry the subscription identifier and the router's sequence
number, which goes back in a ``DACK``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Accepted",
    "ConnectionTerminated",
    "Event",
    "HandshakeCompleted",
    "MessageDelivered",
    "QueryAnswered",
    "Refused",
    "Reply",
    "StatusReported",
    "Subscribed",
    "SubscriptionClosed",
]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The router accepted our AUTH (``WELCOME``); requests may be sent."""

    #: the router's entity id, from ``HELLO`` (signed subscriptions name it).
    router_id: bytes
    #: our entity id as the router saw it.
    entity_id: bytes
    #: deliveries the router sends per subscription before it waits for a ``DACK``.
    inflight_window: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """``OK``: a ``PROOF`` (detail: the proof id), ``PUBLISH`` (``"accepted"``/``"duplicate"``) or
    ``UNSUBSCRIBE`` (how many subscriptions ended) succeeded."""

    req: int
    detail: object


@dataclass(frozen=True, slots=True)
class Refused:
    """``REFUSED``: the request failed; ``code`` is a ``wire.ErrorCode`` number. The connection stays."""

    req: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Subscribed:
    """``SUBSCRIBED``: deliveries for ``sub_id`` follow."""

    req: int
    sub_id: str
    #: when the subscription expires, in epoch seconds.
    expiry: int
    #: a durable subscription of that identifier already existed and was attached to.
    resumed: bool
    #: messages already queued for it.
    backlog: int


@dataclass(frozen=True, slots=True)
class QueryAnswered:
    """``QUERY_END`` with the ``RESULT`` messages that came before it, in order."""

    req: int
    results: tuple[bytes, ...]
    count: int
    #: the URI to continue after, or None when this was the last page.
    continuation: str | None
    #: who answered: ``"local"`` (this router's store) or ``"designated"``.
    source: str


@dataclass(frozen=True, slots=True)
class StatusReported:
    """``STATUS_REPLY``: the router's status map."""

    req: int
    status: dict[object, object]


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """``DELIVER``: one signed message for a subscription of ours; acknowledge ``seq`` when done."""

    sub_id: str
    seq: int
    message: bytes


@dataclass(frozen=True, slots=True)
class SubscriptionClosed:
    """``SUB_END``: the router ended the subscription; ``code`` is a ``wire.ErrorCode`` number."""

    sub_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is over; the last event. ``protocol_error``: the router broke the protocol
    (``code`` is then the ``wire.CloseCode`` of the violation); otherwise it closed the connection
    (an ``ERROR`` frame, end of stream, or a handshake that timed out)."""

    code: int
    reason: str
    protocol_error: bool


Reply = Accepted | Refused | Subscribed | QueryAnswered | StatusReported
Event = HandshakeCompleted | Reply | MessageDelivered | SubscriptionClosed | ConnectionTerminated
