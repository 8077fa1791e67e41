"""The trunk between a site router and a designated router (DR), as sans-I/O state machines.

Theory of operation
-------------------
Site side (``uplink.py``): one ``Uplink`` per ``[[RoutingConfig.Router]]`` (namespace, address) lives as
long as the router; each connection attempt is an ``UplinkSession``. Every message published at the site
in that namespace is appended to the namespace's *trunk queue* (bounded by ``trunkingQueueMax*``, oldest
dropped and counted) and delivered locally at once. A session sends the queue in compact batches
(``compact.py``) by two ordered lanes, each with at most ``window`` (``PeerConfig.maxInflight``) messages
unacknowledged: the *backlog* (what was queued when the connection opened) and the *live* lane (what is
published since). Each publisher uses one lane for the whole connection (``lanes.plan``): one with
nothing queued, or at most ``PROMOTE_MAX`` (sent first, by the live lane), uses the live lane; one with
more is *held*: its new messages follow its backlog in the backlog lane. A lane sends a small batch only
when it has nothing in flight (Nagle), so a fast publisher's messages stay batched. The DR acknowledges a
batch *after* accepting its messages into its own store; the trunk queue drops a prefix once all of it is
acknowledged (``lanes.py`` keeps the acknowledged ranges above it, across reconnects). On a new
connection the session starts again from the queue's head: unacknowledged messages are resent and the DR
drops the ones it already has by message id. Order per publisher therefore holds without exception,
across reconnects and restarts (README "Tiered quick start"). WAVEMQ used 12 parallel senders and
lost a message on every failed send (``wavemq-behaviour.md`` §5.1, §12 row 24). ``UplinkSet`` is the
core's tiering hooks.

Local subscriptions in the namespace are forwarded (``T_SUB``, the subscriber's own signed object, bound
to this site by its ``router_id``); the DR keeps a queue per forwarded subscription while the site is
away and delivers with acknowledgements (``T_DELIVER``/``T_DACK``); the site re-verifies each message and
puts it into that subscription's local queue, except messages that were published at this site.
Queries in the namespace are answered by the DR while the uplink is up. Revocations known to either
side are exchanged on every connection.

DR side (``peer.py``): a ``PeerSession`` per accepted site connection. It decodes batches as they arrive
and admits them in slices (``intake.py``: live lane first; an earlier site's single live message after
its own publisher's received backlog). It is the ``Consumer`` of the subscriptions the site forwarded, so the same
credit-based delivery as agents applies.

Both ends (``end.py``): the secure channel, the compact codecs, keepalive and dead-link detection. Both
send ``PING`` every ``keepalive_s`` and declare the link dead after ``dead_after_s`` without receiving
anything (a silently black-holed TCP connection is noticed), then close; the site's glue reconnects with
exponential backoff and jitter. Inputs: ``receive_bytes(data, now, wall)``, ``handle_timer(now)`` at
``next_deadline()``; outputs: ``prepare_output(now)`` then ``bytes_to_send()``, and ``closing``.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .end import TrunkEnd, TrunkOptions
    from .peer import PeerSession
    from .uplink import Uplink, UplinkSession, UplinkSet, UplinkStats, UplinkStatus
else:
    from ...lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".end": ("TrunkEnd", "TrunkOptions"),
        ".peer": ("PeerSession",),
        ".uplink": ("Uplink", "UplinkSession", "UplinkSet", "UplinkStats", "UplinkStatus"),
    })

__all__ = ["PeerSession", "TrunkEnd", "TrunkOptions", "Uplink", "UplinkSession", "UplinkSet", "UplinkStats",
           "UplinkStatus"]
