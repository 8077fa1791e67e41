"""How the routing core talks to the tiering machinery above it: one hooks object, given at construction.

The core knows when a message was appended to a namespace's trunk queue, when a subscription in a
trunked namespace starts or ends, and when a query could be answered by the designated router; the
uplinks (``router/trunk``) act on it. The core never holds the uplinks themselves, and nothing sets
attributes on the core from outside: the server builds the uplink set first and hands it to the core as
its ``TieringHooks``. A router without uplinks gets ``NO_TIERING``.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Protocol

from ..wave import Message
from .subscription import RouterSubscription

__all__ = ["NO_TIERING", "QueryForwarder", "QueryReply", "SubscriptionChange", "TieringHooks"]


class SubscriptionChange(Enum):
    ADDED = "add"
    REMOVED = "remove"


class QueryReply(Protocol):
    """Where a forwarded query's answer goes (the agent session that asked)."""

    def query_results(self, messages: list[bytes], continuation: str | None, source: str) -> None: ...

    def query_refused(self, code: int, reason: str) -> None: ...


class QueryForwarder(Protocol):
    def forward_query(self, raw: bytes, proof: bytes, after_uri: str | None, limit: int,
                      reply: QueryReply) -> None: ...


class TieringHooks(Protocol):
    def trunk_appended(self, namespace: bytes, seq: int, msg: Message) -> None:
        """``msg`` (accepted here) was appended to ``namespace``'s trunk queue at ``seq``."""
        ...

    def subscription_changed(self, sub: RouterSubscription, change: SubscriptionChange,
                             unsubscribe: bytes | None) -> None:
        """A local subscription in a trunked namespace started or ended (with the subscriber's signed
        unsubscribe when there is one)."""
        ...

    def query_forwarder(self, namespace: bytes) -> QueryForwarder | None:
        """Who answers queries in ``namespace`` now: the designated router's uplink while it is up."""
        ...


class _NoTiering:
    def trunk_appended(self, namespace: bytes, seq: int, msg: Message) -> None:
        return None

    def subscription_changed(self, sub: RouterSubscription, change: SubscriptionChange,
                             unsubscribe: bytes | None) -> None:
        return None

    def query_forwarder(self, namespace: bytes) -> QueryForwarder | None:
        return None


NO_TIERING: Final[TieringHooks] = _NoTiering()
