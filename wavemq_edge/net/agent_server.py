"""asyncio glue for the agent API: one ``AgentProtocol`` per TCP or Unix connection.

The glue makes no protocol decisions (those live in ``router.session``): it feeds bytes and the loop
clock in, writes what the session produced, arms the handshake timer and applies TCP back-pressure.
Writes are batched: any session that gains output while the router works (a publish on one connection
produces deliveries on others) is written once, in a ``call_soon`` after the current input is processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final, cast

from ..router import AgentSession, RouterCore, core_reply
from ..wire import CloseCode, FrameType, encode_frame
from .writes import WriteScheduler

__all__ = ["AgentProtocol", "AgentServer"]

log = logging.getLogger("wavemq_edge.net.agent")

#: Bytes read per ``data_received``: asyncio's default read size bounds the decoder's extra buffering.
#: Above this many bytes waiting in a transport's write buffer we stop reading from that connection.
WRITE_HIGH_WATER_BYTES: Final = 1024 * 1024
WRITE_LOW_WATER_BYTES: Final = 256 * 1024


class AgentServer:
    """Shared state of every agent connection: the core, limits, and the set of sessions to write."""

    def __init__(self, core: RouterCore, writes: WriteScheduler, *, max_connections: int, max_frame_bytes: int,
                 handshake_timeout_s: float,
                 status_source: Callable[[float], Mapping[str, object]] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.core = core
        #: epoch seconds for the security checks (injected: tests run on a fixed epoch)
        self.wall_clock = wall_clock
        self.writes = writes
        #: what a STATUS request is answered with: the server's snapshot, or the core's own figures
        self.status_source = status_source or self._core_status
        self.max_connections = max_connections
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout_s = handshake_timeout_s
        self.connections: set[AgentProtocol] = set()
        self.refused_connections = 0
        self.accepted_connections = 0
        #: intake back-pressure: connections that publish are not read while True (``hold_publishers``)
        self.publishers_held = False

    def _core_status(self, now: float) -> Mapping[str, object]:
        return {**core_reply(self.core.status(now)), "connections": len(self.connections)}

    def protocol_factory(self) -> AgentProtocol:
        return AgentProtocol(self)

    def hold_publishers(self, held: bool) -> None:
        """Stop (True) or resume reading every connection that has published: the server holds publishers
        back while memory is short (``server/intake.py``); they are slowed by TCP, nothing is refused."""
        self.publishers_held = held
        for proto in self.connections:
            if proto.publisher:
                proto.hold_reading(held)

    def close_all(self, reason: str) -> None:
        for proto in list(self.connections):
            proto.close_with(CloseCode.GOING_AWAY, reason)


class AgentProtocol(asyncio.Protocol):
    def __init__(self, server: AgentServer) -> None:
        self.server = server
        self.session: AgentSession | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False
        self._held = False
        #: this connection has published (intake back-pressure holds only publishers)
        self.publisher = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        if len(server.connections) >= server.max_connections:
            server.refused_connections += 1
            log.warning("event=connection_refused peer=%s reason=max_connections limit=%d", peer_text,
                        server.max_connections)
            transport.write(encode_frame(FrameType.ERROR, int(CloseCode.LIMIT_EXCEEDED),
                                         f"too many connections (LimitsConfig.maxConnections="
                                         f"{server.max_connections})"))
            transport.close()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        server.connections.add(self)
        server.accepted_connections += 1
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES)
        self.session = AgentSession(server.core, now=now, max_frame_bytes=server.max_frame_bytes,
                                    handshake_timeout_s=server.handshake_timeout_s, peer=peer_text,
                                    on_output=self._on_output, status_source=server.status_source)
        deadline = self.session.next_deadline()
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)
        self.transmit()

    def _on_output(self) -> None:
        self.server.writes.mark(self)

    def _on_timer(self) -> None:
        self._timer = None
        if self.session is not None:
            self.session.handle_timer(asyncio.get_running_loop().time())
            self.transmit()

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        counters = self.server.core.counters
        published = counters.published
        session.receive_bytes(data, asyncio.get_running_loop().time(), self.server.wall_clock())
        if not self.publisher and counters.published != published:
            self.publisher = True
            self.hold_reading(self.server.publishers_held)
        if session.next_deadline() is None and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.writes.mark(self)

    def transmit(self) -> None:
        session, transport = self.session, self.transport
        if session is None or transport is None or transport.is_closing():
            return
        data = session.bytes_to_send()
        if data:
            transport.write(data)
        if session.closing:
            transport.close()

    def close_with(self, code: CloseCode, reason: str) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.transmit()
            transport.write(encode_frame(FrameType.ERROR, int(code), reason))
            transport.close()

    def pause_writing(self) -> None:
        # The agent is not reading: stop reading its requests until it catches up, so replies cannot
        # pile up in our buffers (deliveries are already bounded by credit).
        self._set_reading(paused=True, held=self._held)

    def resume_writing(self) -> None:
        self._set_reading(paused=False, held=self._held)

    def hold_reading(self, held: bool) -> None:
        """Intake back-pressure (``AgentServer.hold_publishers``)."""
        self._set_reading(paused=self._paused, held=held)

    def _set_reading(self, paused: bool, held: bool) -> None:
        transport = self.transport
        before = self._paused or self._held
        self._paused, self._held = paused, held
        if transport is None or transport.is_closing() or before == (paused or held):
            return
        if paused or held:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.connections.discard(self)
        session = self.session
        if session is not None:
            session.connection_lost(asyncio.get_running_loop().time())
            self.session = None
            self.server.writes.write_pending()
