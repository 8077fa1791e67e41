"""asyncio glue for the agent API: one ``AgentProtocol`` per TCP or Unix connection.

The glue makes no protocol decisions (those live in ``router.session``) and no admission decisions
(``net/slots.py``): it asks the slot table whether a new connection may stay (closing whatever it
evicts), tells it when the session authenticates and makes its first authorised request, feeds bytes
and the loop clock in, writes what the session produced, keeps one timer at the session's deadline
(handshake or stalled frame) and applies TCP back-pressure. Writes are batched: any session that gains
output while the router works (a publish on one connection produces deliveries on others) is written
once, in a ``call_soon`` after the current input is processed.

A Unix-socket peer whose uid (``SO_PEERCRED``) is root's or the router's own is the local operator:
its STATUS gets the whole snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable, Mapping
from typing import Final, Protocol, cast

from ..router import AgentSession, RouterCore, SessionState, core_reply
from ..router.session import DEFAULT_FRAME_STALL_TIMEOUT_S
from ..wire import CloseCode, FrameType, encode_frame
from .glue import rearm, transmit
from .slots import Phase, Refused, SlotLimits, SlotTable
from .writes import WriteScheduler

__all__ = ["AgentProtocol", "AgentServer", "RateLimitedWarning"]

log = logging.getLogger("wavemq_edge.net.agent")

#: Bytes read per ``data_received``: asyncio's default read size bounds the decoder's extra buffering.
#: Above this many bytes waiting in a transport's write buffer we stop reading from that connection.
WRITE_HIGH_WATER_BYTES: Final = 1024 * 1024
WRITE_LOW_WATER_BYTES: Final = 256 * 1024
_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


class RateLimitedWarning(Protocol):
    """``ops.logging.RateLimitedLog``'s warning (net cannot import ops): one line per key per window."""

    def warning(self, key: str, now: float, msg: str, *args: object) -> bool: ...


class _EveryWarning:
    def warning(self, key: str, now: float, msg: str, *args: object) -> bool:
        log.warning(msg, *args)
        return True


class AgentServer:
    """Shared state of every agent connection: the core, limits, slots, and the sessions to write."""

    def __init__(self, core: RouterCore, writes: WriteScheduler, *, slots: SlotLimits, max_frame_bytes: int,
                 handshake_timeout_s: float, frame_stall_timeout_s: float = DEFAULT_FRAME_STALL_TIMEOUT_S,
                 status_source: Callable[[float], Mapping[str, object]] | None = None,
                 wall_clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
                 refusal_log: RateLimitedWarning | None = None) -> None:
        self.core = core
        #: epoch seconds for the security checks (injected: tests run on a fixed epoch)
        self.wall_clock = wall_clock
        self.writes = writes
        #: what a STATUS request is answered with: the server's snapshot, or the core's own figures
        self.status_source = status_source or self._core_status
        self.slots: SlotTable[AgentProtocol] = SlotTable(slots, random=rng)
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout_s = handshake_timeout_s
        self.frame_stall_timeout_s = frame_stall_timeout_s
        self.refusal_log: RateLimitedWarning = refusal_log or _EveryWarning()
        #: uids whose Unix-socket connections are the local operator
        self.operator_uids = frozenset({0, os.getuid()})
        self.connections: set[AgentProtocol] = set()
        self.accepted_connections = 0
        #: connections a deadline closed: "handshake", "frame_stall"
        self.timed_out: dict[str, int] = {"handshake": 0, "frame_stall": 0}
        #: intake back-pressure: connections that publish are not read while True (``hold_publishers``)
        self.publishers_held = False

    def admission(self) -> dict[str, dict[str, int]]:
        """Refusals and evictions by reason, and connections closed by a deadline (status, metrics)."""
        return {"refused": dict(self.slots.refused), "evicted": dict(self.slots.evicted),
                "timed_out": dict(self.timed_out)}

    def _core_status(self, now: float) -> Mapping[str, object]:
        return {**core_reply(self.core.status(now)), "connections": len(self.connections),
                "admission": self.admission()}

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
        self.peer = "?"
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._paused = False
        #: what the slot table was last told: HANDSHAKE, IDLE (authenticated) or ACTIVE (authorised)
        self._phase = Phase.HANDSHAKE
        self._held = False
        #: this connection has published (intake back-pressure holds only publishers)
        self.publisher = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it: no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else None
        self.peer = peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unix"
        loop = asyncio.get_running_loop()
        now = loop.time()
        decision = server.slots.admit(self, address)
        if isinstance(decision, Refused):
            server.refusal_log.warning(f"refused:{decision.reason.value}", now,
                                       "event=connection_refused peer=%s reason=%s detail=%r", peer_text,
                                       decision.reason.value, decision.message)
            transport.write(encode_frame(FrameType.ERROR, int(CloseCode.LIMIT_EXCEEDED), decision.message))
            transport.close()
            return
        for victim in decision.evict:
            victim.evict(now)
        server.connections.add(self)
        server.accepted_connections += 1
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES)
        operator = address is None and _peer_uid(transport) in server.operator_uids
        self.session = AgentSession(server.core, now=now, max_frame_bytes=server.max_frame_bytes,
                                    handshake_timeout_s=server.handshake_timeout_s,
                                    frame_stall_timeout_s=server.frame_stall_timeout_s, peer=peer_text,
                                    on_output=self._on_output, status_source=server.status_source,
                                    operator=operator)
        self._arm_timer()
        self.transmit()

    def evict(self, now: float) -> None:
        """The slot table gave this connection's slot to a newcomer: it never made an authorised request."""
        self.server.refusal_log.warning("evicted", now, "event=connection_evicted peer=%s reason=%s", self.peer,
                                        "connection slots short, no authorised request made")
        self.close_with(CloseCode.LIMIT_EXCEEDED, "evicted: connection slots are short and this connection "
                        "has made no authorised request")
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size():
            transport.abort()  # a peer that does not read does not get to hold its socket while we flush

    def _arm_timer(self) -> None:
        session = self.session
        deadline = session.next_deadline() if session is not None else None
        self._timer, self._timer_at = rearm(self._timer, self._timer_at, deadline, self._on_timer)

    def _note_progress(self, session: AgentSession) -> None:
        """Tell the slot table what the session became: authenticated, then authorised."""
        if self._phase is Phase.ACTIVE:
            return
        if session.authorised:
            self._phase = Phase.ACTIVE
            self.server.slots.authorised(self)
        elif self._phase is Phase.HANDSHAKE and session.state is SessionState.OPEN:
            self._phase = Phase.IDLE
            self.server.slots.authenticated(self)

    def _on_output(self) -> None:
        self.server.writes.mark(self)

    def _on_timer(self) -> None:
        self._timer = None
        session = self.session
        if session is None:
            return
        if (self._paused or self._held) and session.state is SessionState.OPEN:
            return  # our back-pressure holds its input: resuming restarts the frame's clock and the timer
        before = session.timed_out
        session.handle_timer(asyncio.get_running_loop().time())
        if session.timed_out is not None and before is None:
            self.server.timed_out[session.timed_out] += 1
        self.transmit()
        self._arm_timer()

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
        self._note_progress(session)
        self._arm_timer()
        self.server.writes.mark(self)

    def transmit(self) -> None:
        transmit(self.session, self.transport)

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
            if self.session is not None:  # the held input's frame clock starts again now
                self.session.restart_frame_clock(asyncio.get_running_loop().time())
                self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.connections.discard(self)
        self.server.slots.release(self)
        session = self.session
        if session is not None:
            session.connection_lost(asyncio.get_running_loop().time())
            self.session = None
            self.server.writes.write_pending()


def _peer_uid(transport: asyncio.Transport) -> int | None:
    """The uid of a Unix-socket peer (``SO_PEERCRED``, Linux), or None when it cannot be told."""
    sock = transport.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size))
    except (OSError, AttributeError, struct.error):
        return None
    return int(uid)
