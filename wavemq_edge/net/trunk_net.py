"""asyncio glue for the trunk: the designated router's peer listener and the site's uplink dialers.

No protocol decisions here (they live in ``router.trunk``): the glue feeds bytes with the loop's and the
wall clock's time, writes what the sessions produce (through the shared ``WriteScheduler``), arms one
timer per connection at the session's ``next_deadline()`` (keepalive and dead-link checks), and, for each
uplink, reconnects with exponential backoff and jitter (``PeerConfig.reconnectMin`` .. ``reconnectMax``;
WAVEMQ waited a fixed 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final, cast

from ..router import RouterCore
from ..router.trunk import PeerSession, TrunkEnd, TrunkOptions, Uplink, UplinkSession, UplinkSet
from ..wave import EntitySecret, Verifier, format_id
from .writes import WriteScheduler

__all__ = ["PeerProtocol", "TrunkNet", "UplinkProtocol"]

log = logging.getLogger("wavemq_edge.net.trunk")

CONNECT_TIMEOUT_S: Final = 10.0
#: Messages a session processes per slice of received input (the DR admits ~10 k/s: a few ms), so live
#: batches and other connections are served between slices of a draining backlog.
WORK_SLICE: Final = 32


class _TrunkProtocol(asyncio.Protocol):
    """Shared by both ends: feed bytes in, write bytes out, one timer, close when the session says so."""

    def __init__(self, net: TrunkNet, session: TrunkEnd) -> None:
        self.net = net
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._work_scheduled = False
        session.on_output = lambda: net.writes.mark(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transmit()

    def data_received(self, data: bytes) -> None:
        self.count(0, len(data))
        self.session.receive_bytes(data, asyncio.get_running_loop().time(), time.time())
        self.net.writes.mark(self)
        self._schedule_work()

    def _schedule_work(self) -> None:
        if not self._work_scheduled and self.session.has_work():
            self._work_scheduled = True
            asyncio.get_running_loop().call_soon(self._work)

    def _work(self) -> None:
        self._work_scheduled = False
        if self.transport is None or self.transport.is_closing():
            return
        self.session.work(asyncio.get_running_loop().time(), time.time(), WORK_SLICE)
        self.net.writes.mark(self)
        self._schedule_work()

    def count(self, sent: int, received: int) -> None:
        """Trunk byte counters (site side reports them in status)."""

    def transmit(self) -> None:
        session, transport = self.session, self.transport
        if transport is None or transport.is_closing():
            return
        session.prepare_output(asyncio.get_running_loop().time())
        data = session.bytes_to_send()
        if data:
            self.count(len(data), 0)
            transport.write(data)
        if session.closing:
            transport.close()
        else:
            self._arm()
            self._schedule_work()

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.session.handle_timer(asyncio.get_running_loop().time())
        self.transmit()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed.done():
            self.closed.set_result(None)


class PeerProtocol(_TrunkProtocol):
    """The designated router's end of one site connection."""

    def __init__(self, net: TrunkNet) -> None:
        loop = asyncio.get_running_loop()
        self.peer_session = PeerSession(net.core, net.me, net.verifier, net.route_proofs, net.options, loop.time(),
                                        on_revocations=net.on_revocations, revocations=net.revocations)
        super().__init__(net, self.peer_session)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer_session.peer_address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        self.net.peers.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.net.peers.discard(self)
        self.peer_session.connection_lost(asyncio.get_running_loop().time())
        self.net.writes.write_pending()
        self._disarm()


class UplinkProtocol(_TrunkProtocol):
    def __init__(self, net: TrunkNet, uplink: Uplink) -> None:
        self.uplink = uplink
        self.uplink_session: UplinkSession = uplink.new_session(net.verifier, asyncio.get_running_loop().time())
        super().__init__(net, self.uplink_session)

    def count(self, sent: int, received: int) -> None:
        self.uplink.stats.bytes_sent += sent
        self.uplink.stats.bytes_received += received

    def connection_lost(self, exc: Exception | None) -> None:
        session = self.uplink_session
        if session.close_reason == "":
            session.close(f"connection lost: {exc}" if exc is not None
                          else "connection closed by the designated router")
        self.uplink.session_closed(asyncio.get_running_loop().time(), time.time())
        self.net.writes.write_pending()
        self._disarm()


class TrunkNet:
    """Owns the peer listener's protocols and the uplink tasks."""

    def __init__(self, core: RouterCore, writes: WriteScheduler, uplinks: UplinkSet, me: EntitySecret,
                 verifier: Verifier, options: TrunkOptions, *, route_proofs: dict[bytes, bytes],
                 reconnect_min_s: float, reconnect_max_s: float, revocations: Callable[[], list[bytes]],
                 on_revocations: Callable[[list[bytes]], None]) -> None:
        self.core = core
        self.writes = writes
        self.uplinks = uplinks
        self.me = me
        self.verifier = verifier
        self.options = options
        self.route_proofs = route_proofs
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.revocations = revocations
        self.on_revocations = on_revocations
        self.peers: set[PeerProtocol] = set()
        self._uplink_protocols: dict[int, UplinkProtocol] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def broadcast_revocations(self, raws: list[bytes]) -> None:
        """Send newly learned revocation objects over every open trunk."""
        if not raws:
            return
        for proto in [*self.peers, *self._uplink_protocols.values()]:
            session = proto.session
            if session.channel.is_open and not session.closing:
                session.send_revocations(raws)

    def peer_factory(self) -> PeerProtocol:
        return PeerProtocol(self)

    def start(self) -> None:
        for up in self.uplinks:
            self._tasks.append(asyncio.create_task(self._uplink_loop(up), name=f"wavemq-uplink-{up.address}"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
        for proto in [*self.peers, *self._uplink_protocols.values()]:
            if proto.transport is not None:
                proto.transport.close()

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
                if proto.uplink_session.up:
                    delay = self.reconnect_min_s  # it worked for a while: start backing off afresh
            if self._stopped():
                return
            up.stats.reconnects += 1
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.reconnect_max_s, delay * 2)

    def _stopped(self) -> bool:
        return self._stopping

    def sites_connected(self) -> int:
        return len(self.peers)

    def designated_for(self) -> list[str]:
        return sorted(format_id(ns) for ns in self.route_proofs)
