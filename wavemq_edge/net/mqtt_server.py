"""asyncio glue for the MQTT front door: one ``MqttProtocol`` per device connection.

Thin, like ``agent_server.py``: protocol decisions live in ``mqtt/session.py``, admission in
``net/slots.py`` (the same slot table as agents, with its own pool: a connection is in the handshake
until CONNECT is accepted, evictable until its first accepted publish or subscribe, then protected).
The glue feeds bytes and the loop clock in, writes through the shared ``WriteScheduler`` (so a device
publish and the deliveries it causes are written in one pass with the agents'), keeps one timer at the
session's deadline (CONNECT, keepalive, stalled packet) and applies TCP back-pressure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, cast

from ..mqtt import Reason
from ..mqtt.hub import MqttHub
from ..mqtt.session import MqttSession, MqttState
from .agent_server import RateLimitedWarning
from .glue import rearm, transmit
from .slots import Phase, Refused, SlotLimits, SlotTable
from .writes import WriteScheduler

__all__ = ["MqttProtocol", "MqttServer"]

log = logging.getLogger("wavemq_edge.net.mqtt")

WRITE_HIGH_WATER_BYTES: Final = 1024 * 1024
WRITE_LOW_WATER_BYTES: Final = 256 * 1024


class _EveryWarning:
    def warning(self, key: str, now: float, msg: str, *args: object) -> bool:
        log.warning(msg, *args)
        return True


class MqttServer:
    def __init__(self, hub: MqttHub, writes: WriteScheduler, *, slots: SlotLimits,
                 wall_clock: Callable[[], float] = time.time, rng: Callable[[], float] = random.random,
                 refusal_log: RateLimitedWarning | None = None) -> None:
        self.hub = hub
        self.writes = writes
        self.wall_clock = wall_clock
        self.slots: SlotTable[MqttProtocol] = SlotTable(slots, random=rng)
        self.refusal_log: RateLimitedWarning = refusal_log or _EveryWarning()
        self.connections: set[MqttProtocol] = set()
        #: argon2id password checks, one at a time off the event loop: each takes ~64 MiB and tens to
        #: hundreds of milliseconds, so in the loop a stream of wrong passwords would stall every device
        #: and agent; one thread bounds the memory too (the handshake slot pool bounds the queue)
        self.hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wavemq-mqtt-passwd")
        self.accepted_connections = 0
        #: what the listener is bound to (``mqtt://host:port``), set by the server shell
        self.addresses: list[str] = []
        self.timed_out: dict[str, int] = {"connect": 0, "keepalive": 0, "packet_stall": 0}

    def protocol_factory(self) -> MqttProtocol:
        return MqttProtocol(self)

    def status(self) -> dict[str, object]:
        return {"connections": len(self.connections), "sessions": len(self.hub.sessions),
                "refused_connect": dict(self.hub.refused), "takeovers": self.hub.takeovers,
                "slots_refused": dict(self.slots.refused), "slots_evicted": dict(self.slots.evicted),
                "timed_out": dict(self.timed_out)}

    def close_all(self, reason: str) -> None:
        loop = asyncio.get_running_loop()
        for proto in list(self.connections):
            proto.close_with(Reason.SERVER_SHUTTING_DOWN, reason, loop.time())
        self.hasher.shutdown(wait=False, cancel_futures=True)


class MqttProtocol(asyncio.Protocol):
    def __init__(self, server: MqttServer) -> None:
        self.server = server
        self.session: MqttSession | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._paused = False
        self._phase = Phase.HANDSHAKE
        self._hashing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else None
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"
        now = asyncio.get_running_loop().time()
        decision = server.slots.admit(self, address)
        if isinstance(decision, Refused):
            server.refusal_log.warning(f"mqtt_refused:{decision.reason.value}", now,
                                       "event=mqtt_connection_refused peer=%s reason=%s detail=%r", self.peer,
                                       decision.reason.value, decision.message)
            transport.close()  # MQTT has nothing to say before CONNECT
            return
        for victim in decision.evict:
            victim.close_with(Reason.SERVER_BUSY, "evicted: connection slots are short", now)
        server.connections.add(self)
        server.accepted_connections += 1
        transport.set_write_buffer_limits(WRITE_HIGH_WATER_BYTES, WRITE_LOW_WATER_BYTES)
        self.session = MqttSession(server.hub, now=now, peer=self.peer, on_output=self._on_output)
        self._arm_timer()

    def _on_output(self) -> None:
        self.server.writes.mark(self)

    def _arm_timer(self) -> None:
        session = self.session
        deadline = session.next_deadline() if session is not None else None
        self._timer, self._timer_at = rearm(self._timer, self._timer_at, deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        session = self.session
        if session is None or (self._paused and session.state is MqttState.OPEN):
            return
        before = session.timed_out
        session.handle_timer(asyncio.get_running_loop().time(), self.server.wall_clock())
        if session.timed_out is not None and before is None:
            self.server.timed_out[session.timed_out] += 1
        self.server.writes.mark(self)
        self._arm_timer()

    def _note_progress(self, session: MqttSession) -> None:
        if self._phase is Phase.ACTIVE:
            return
        if session.authorised:
            self._phase = Phase.ACTIVE
            self.server.slots.authorised(self)
        elif self._phase is Phase.HANDSHAKE and session.state is MqttState.OPEN:
            self._phase = Phase.IDLE
            self.server.slots.authenticated(self)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            return
        session.receive_bytes(data, asyncio.get_running_loop().time(), self.server.wall_clock())
        self._check_password(session)
        self._note_progress(session)
        self._arm_timer()
        self.server.writes.mark(self)

    def _check_password(self, session: MqttSession) -> None:
        check = session.auth_pending
        if check is None or self._hashing:
            return
        self._hashing = True
        future = asyncio.get_running_loop().run_in_executor(self.server.hasher, check.run)
        future.add_done_callback(self._password_checked)

    def _password_checked(self, future: asyncio.Future[bool]) -> None:
        self._hashing = False
        session = self.session
        if session is None or future.cancelled():
            return
        ok = future.exception() is None and future.result()
        session.auth_done(ok, asyncio.get_running_loop().time(), self.server.wall_clock())
        self._note_progress(session)
        self._arm_timer()
        self.server.writes.mark(self)

    def transmit(self) -> None:
        transmit(self.session, self.transport)

    def close_with(self, reason: Reason, message: str, now: float) -> None:
        session = self.session
        if session is not None:
            session.close_with(reason, message, now, self.server.wall_clock())
        self.transmit()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def pause_writing(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()
            self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.connections.discard(self)
        self.server.slots.release(self)
        session = self.session
        if session is not None:
            session.connection_lost(asyncio.get_running_loop().time(), self.server.wall_clock())
            self.session = None
            self.server.writes.write_pending()
