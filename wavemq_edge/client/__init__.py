"""The asyncio client library for services that talk to a wavemq_edge router.

Example::

    import asyncio
    from wavemq_edge.client import Client

    async def main() -> None:
        async with await Client.connect("127.0.0.1:4516", entity="service.ent") as client:
            ns = "namespace.ent"                      # a namespace entity file, or its 48-char hash
            async with client.subscribe(ns, "sensors/*", identifier="logger") as sub:
                await client.publish(ns, "sensors/t1", b"21.5", persist=True)
                async for msg in sub:                 # acknowledged when the loop asks for the next one
                    print(msg.uri, msg.text)
                    break
            for msg in await client.query(ns, "sensors/*"):
                print("persisted:", msg.uri, msg.text)

    asyncio.run(main())

Proofs: each operation needs a proof that the namespace granted this entity the permission
(``wavemq:publish`` / ``subscribe`` / ``query``) on the URI. Give proof files (``proofs=[...]``), or let
the client build them from the WAVE database (``wave_db``, default ``$WAVE_HOME`` or the per-user
default that ``wv`` uses) where ``wv rtgrant`` recorded the grants.

Delivery is at-least-once: a message is acknowledged after your loop body ran for it (or explicitly with
``auto_ack=False`` and ``await msg.ack()``); one not acknowledged when the connection drops is delivered
again. With ``reconnect=True`` (default) a lost connection is re-established with exponential backoff,
subscriptions are resumed by identifier and unacknowledged publishes are resent (the router drops the
duplicates by message id). A router that breaks the protocol ends the client with
``RouterProtocolError``, raised by every pending call and subscription iterator.

Layout: ``protocol.py`` is the sans-I/O ``ClientProtocol`` (handshake, frame validation, request
correlation, delivery bookkeeping; its ``events.py``); ``connection.py`` is ``Client``, the asyncio pump
with the reconnect logic; ``messages.py`` what the user receives; ``proofs.py`` where proofs come from.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .connection import BACKOFF_MAX_S, BACKOFF_MIN_S, CONNECT_TIMEOUT_S, READ_BYTES, Client
    from .defaults import DEFAULT_ROUTER
    from .errors import (
        ClientError,
        ConnectionClosed,
        LocalProtocolError,
        RequestRefused,
        RouterProtocolError,
        StorageFull,
        SubscriptionEnded,
    )
    from .messages import ReceivedMessage, Subscription, resolve_namespace
    from .protocol import ClientProtocol, ClientState
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".connection": ("BACKOFF_MAX_S", "BACKOFF_MIN_S", "CONNECT_TIMEOUT_S", "READ_BYTES", "Client"),
        ".defaults": ("DEFAULT_ROUTER",),
        ".errors": (
            "ClientError", "ConnectionClosed", "LocalProtocolError", "RequestRefused", "RouterProtocolError",
            "StorageFull", "SubscriptionEnded",
        ),
        ".messages": ("ReceivedMessage", "Subscription", "resolve_namespace"),
        ".protocol": ("ClientProtocol", "ClientState"),
    })

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_MIN_S",
    "CONNECT_TIMEOUT_S",
    "DEFAULT_ROUTER",
    "READ_BYTES",
    "Client",
    "ClientError",
    "ClientProtocol",
    "ClientState",
    "ConnectionClosed",
    "LocalProtocolError",
    "ReceivedMessage",
    "RequestRefused",
    "RouterProtocolError",
    "StorageFull",
    "Subscription",
    "SubscriptionEnded",
    "resolve_namespace",
]
