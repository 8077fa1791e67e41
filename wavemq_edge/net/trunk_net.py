"""asyncio glue for the trunk: the designated router's peer listener and the site's uplink dialers.

No protocol decisions here (they live in ``router.trunk``): the glue feeds bytes and the loop clock,
writes what the sessions produce, runs one keepalive tick for all trunk ends, and, for each uplink,
reconnects with exponential backoff and jitter (``PeerConfig.reconnectMin`` .. ``reconnectMax``;
WAVEMQ waited a fixed 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Final, cast

from ..router import RouterCore, Subscription
from ..router.trunk import PeerSession, TrunkOptions, Uplink, UplinkSession
from ..wave import EntitySecret, Message, Verifier
from .agent_server import AgentServer

__all__ = ["PeerProtocol", "TrunkNet", "UplinkProtocol"]

log = logging.getLogger("wavemq_edge.net.trunk")

#: How often keepalive and dead-link checks run for every trunk end.
TICK_S: Final = 0.5
CONNECT_TIMEOUT_S: Final = 10.0


class _TrunkProtocol(asyncio.Protocol):
    """Shared by both ends: feed bytes in, write bytes out, close when the session says so."""

    def __init__(self, net: TrunkNet) -> None:
        self.net = net
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def session(self) -> PeerSession | UplinkSession | None:
        raise NotImplementedError  # pragma: no cover

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transmit()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        self.count(0, len(data))
        session.receive_bytes(data, asyncio.get_running_loop().time())
        self.net.agents.mark_dirty(self)

    def count(self, sent: int, received: int) -> None:
        """Trunk byte counters (site side reports them in status)."""

    def transmit(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None or transport.is_closing():
            return
        if isinstance(session, UplinkSession):
            session.pump(asyncio.get_running_loop().time())
        else:
            session.flush_deliveries()
        data = session.bytes_to_send()
        if data:
            self.count(len(data), 0)
            transport.write(data)
        if session.closing:
            transport.close()

    def tick(self, now: float) -> None:
        session = self.session
        if session is not None:
            session.handle_timer(now)
            self.transmit()


class PeerProtocol(_TrunkProtocol):
    """The designated router's end of one site connection."""

    def __init__(self, net: TrunkNet) -> None:
        super().__init__(net)
        loop = asyncio.get_running_loop()
        self._session = PeerSession(net.core, net.me, net.verifier, net.route_proofs, net.options, loop.time(),
                                    on_revocations=net.on_revocations, revocations=net.revocations)
        self._session.on_output = lambda: net.agents.mark_dirty(self)

    @property
    def session(self) -> PeerSession | None:
        return self._session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._session.peer_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        self.net.peers.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.net.peers.discard(self)
        self._session.connection_lost(asyncio.get_running_loop().time())
        self.net.agents.flush_writes()
        if not self.closed.done():
            self.closed.set_result(None)


class UplinkProtocol(_TrunkProtocol):
    def __init__(self, net: TrunkNet, uplink: Uplink) -> None:
        super().__init__(net)
        self.uplink = uplink
        self._session = uplink.new_session(net.verifier, asyncio.get_running_loop().time())
        self._session.on_output = lambda: net.agents.mark_dirty(self)

    @property
    def session(self) -> UplinkSession | None:
        return self._session

    def count(self, sent: int, received: int) -> None:
        self.uplink.stats.bytes_sent += sent
        self.uplink.stats.bytes_received += received

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session.close_reason == "" and exc is not None:
            self._session.close(f"connection lost: {exc}")
        elif self._session.close_reason == "":
            self._session.close("connection closed by the designated router")
        self.uplink.session_closed(asyncio.get_running_loop().time())
        self.net.agents.flush_writes()
        if not self.closed.done():
            self.closed.set_result(None)


class TrunkNet:
    """Owns the peer listener, the uplink tasks and the keepalive tick."""

    def __init__(self, core: RouterCore, agents: AgentServer, me: EntitySecret, verifier: Verifier,
                 options: TrunkOptions, *, route_proofs: dict[bytes, bytes], reconnect_min_s: float,
                 reconnect_max_s: float, revocations: Callable[[], list[bytes]],
                 on_revocations: Callable[[list[bytes]], None]) -> None:
        self.core = core
        self.agents = agents
        self.me = me
        self.verifier = verifier
        self.options = options
        self.route_proofs = route_proofs
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.revocations = revocations
        self.on_revocations = on_revocations
        self.peers: set[PeerProtocol] = set()
        self.uplinks: list[Uplink] = []
        self._uplink_protocols: dict[int, UplinkProtocol] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def add_uplink(self, uplink: Uplink) -> None:
        self.uplinks.append(uplink)
        self.core.on_subscription = self._subscription_changed
        self.core.query_forwarder = self._forwarder

    def _subscription_changed(self, sub: Subscription, change: str, unsubscribe: bytes | None) -> None:
        for up in self.uplinks:
            if up.namespace == sub.namespace:
                up.subscription_changed(sub, change, unsubscribe)
                proto = self._uplink_protocols.get(id(up))
                if proto is not None:
                    self.agents.mark_dirty(proto)

    def _forwarder(self, namespace: bytes) -> UplinkSession | None:
        for up in self.uplinks:
            if up.namespace == namespace:
                return up.forwarder()
        return None

    def trunk_appended(self, namespace: bytes, seq: int, msg: Message) -> None:
        for up in self.uplinks:
            if up.namespace == namespace:
                proto = self._uplink_protocols.get(id(up))
                if proto is not None:
                    if proto.session is not None:
                        proto.session.offer_live(seq, msg)
                    self.agents.mark_dirty(proto)

    def broadcast_revocations(self, raws: list[bytes]) -> None:
        """Send newly learned revocation objects over every open trunk."""
        if not raws:
            return
        for proto in [*self.peers, *self._uplink_protocols.values()]:
            session = proto.session
            if session is not None and session.channel.is_open and not session.closing:
                session.send_revocations(raws)
                self.agents.mark_dirty(proto)

    def peer_factory(self) -> PeerProtocol:
        return PeerProtocol(self)

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="wavemq-trunk-tick"))
        for up in self.uplinks:
            self._tasks.append(asyncio.create_task(self._uplink_loop(up), name=f"wavemq-uplink-{up.address}"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
        for proto in list(self.peers) + list(self._uplink_protocols.values()):
            if proto.transport is not None:
                proto.transport.close()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            for proto in list(self.peers) + list(self._uplink_protocols.values()):
                proto.tick(now)

    async def _uplink_loop(self, up: Uplink) -> None:
        loop = asyncio.get_running_loop()
        delay = self.reconnect_min_s
        host, _, port = up.address.rpartition(":")
        host = host.strip("[]")
        while not self._stopped():
            proto: UplinkProtocol | None = None
            try:
                _transport, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: UplinkProtocol(self, up), host, int(port)), CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as exc:
                up.stats.last_error = f"connect: {exc!r}"
                log.info("event=uplink_connect_failed address=%s error=%r retry_in=%.1f", up.address, str(exc), delay)
            if proto is not None:
                self._uplink_protocols[id(up)] = proto
                await proto.closed
                self._uplink_protocols.pop(id(up), None)
                if proto.session is not None and proto.session.up:
                    delay = self.reconnect_min_s  # it worked for a while: start backing off afresh
            if self._stopped():
                return
            up.stats.reconnects += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.reconnect_max_s, delay * 2)

    def _stopped(self) -> bool:
        return self._stopping

    def status(self) -> dict[str, object]:
        return {
            "uplinks": [up.status() for up in self.uplinks],
            "sites_connected": len(self.peers),
            "designated_for": sorted(self.route_proofs_printable()),
        }

    def route_proofs_printable(self) -> list[str]:
        from ..wave import format_id

        return [format_id(ns) for ns in self.route_proofs]
