"""The client's errors: one base (``ClientError``), blame in the names.

``RouterProtocolError`` is the router breaking the agent protocol (a malformed or unexpected frame): the
connection ends, every pending call and every subscription iterator raises it, and the client does not
reconnect (a router that speaks a broken protocol would break it again, and resent publishes with it).
It is a ``ConnectionClosed``, so code that handled a lost connection handles it too.
"""

from __future__ import annotations

from ..wire import CloseCode, ErrorCode

__all__ = [
    "ClientError",
    "ConnectionClosed",
    "LocalProtocolError",
    "RequestRefused",
    "RouterProtocolError",
    "StorageFull",
    "SubscriptionEnded",
    "refused",
]


class ClientError(Exception):
    """Base of the client's errors."""


class ConnectionClosed(ClientError):
    """The router connection is gone (and ``reconnect`` is off, or the client was closed)."""


class RouterProtocolError(ConnectionClosed):
    """The router sent a frame the agent protocol does not allow here (blame on the router).

    ``close_code`` is the ``wire.CloseCode`` that describes it (``BAD_FIELDS``, ``MALFORMED_FRAME``,
    ``PROTOCOL_VIOLATION``...), ``reason`` the close reason naming the frame and field."""

    def __init__(self, close_code: int, reason: str) -> None:
        try:
            name = CloseCode(close_code).name
        except ValueError:
            name = "UNKNOWN"
        super().__init__(f"router broke the protocol ({close_code} {name}): {reason}")
        self.close_code = close_code
        self.reason = reason


class LocalProtocolError(ClientError):
    """This client misused its protocol object (for example sent a request before the handshake)."""


class RequestRefused(ClientError):
    """The router refused a request; ``code`` is a ``wire.ErrorCode`` number."""

    def __init__(self, code: int, reason: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = "UNKNOWN"
        super().__init__(f"refused ({code} {name}): {reason}")
        self.code = code
        self.reason = reason


class StorageFull(RequestRefused):
    """The router's disk is full (``STORAGE_FULL``, 633): the message was *not* accepted, nothing of it
    was stored or delivered. Publish it again once the router has space (``wavemq-edge status`` shows
    the disk state); ``wavemq-edge pub`` exits 75 (``TEMPFAIL``) for it."""


def refused(code: int, reason: str) -> RequestRefused:
    """The ``RequestRefused`` (or its more specific subclass) for a ``REFUSED`` reply."""
    if code == ErrorCode.STORAGE_FULL:
        return StorageFull(code, reason)
    return RequestRefused(code, reason)


class SubscriptionEnded(ClientError):
    """The router ended the subscription (expired, proof expired or revoked, unsubscribed)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"subscription ended ({code}): {reason}")
        self.code = code
        self.reason = reason
