"""One agent connection as a sans-I/O state machine (h11-style): bytes in, bytes out.

Theory of operation
-------------------
States::

    AWAIT_AUTH --AUTH ok--> OPEN --(error | close)--> CLOSED

On creation the session queues ``HELLO`` with a fresh 32-byte challenge. The agent answers ``AUTH`` with
its public entity and a signature over the challenge (``wave.sign_handshake``): possession of the key is
proven, the key itself never travels. Until then every other frame is refused with ``NOT_AUTHENTICATED``
and the connection is closed; a handshake not finished within ``handshake_timeout_s`` closes it too.

In every state, a frame that has started must be complete within ``frame_stall_timeout_s`` of its
first byte, or the connection is closed with ``TIMEOUT`` (408): a peer trickling a frame a byte at a
time would otherwise hold its connection (and the frame buffer) for ever. ``authorised`` turns true at
the first request the router accepts (a grant was checked): a key costs nothing to make, so the glue
protects only connections that have done real work from eviction (``net/slots.py``).

In ``OPEN`` the session dispatches frames to ``RouterCore`` and queues replies, in order; the
signatures of a read's publishes are checked first, in one batch (``publish_batch.py``). A request failure
(``RouterError``) is a ``REFUSED`` frame and the connection stays open; a framing error or a frame
with wrong fields (the peer broke the protocol) queues one ``ERROR`` frame and closes. Either way only
this connection is affected: the core never sees a malformed frame. An unexpected exception while
handling a request (a bug, a store failing underneath) answers that request ``REFUSED 699 INTERNAL``,
is logged once per place it comes from (``internal_errors.py``) and counted; the connection stays open.

The session is also the ``Consumer`` of its subscriptions: deliveries leave the queue at most
``inflight_window`` at a time per subscription, and the credit comes back with ``DACK``.

Inputs: ``receive_bytes(data, now, wall)``, ``handle_timer(now)``, ``connection_lost(now)``. Outputs:
``bytes_to_send()`` and ``closing`` (the glue closes the transport once the bytes are written). A
``STATUS`` request is answered with what ``status_source`` returns (the server's whole snapshot; by
default the core's own figures) when the peer is the local ``operator`` (the glue decides: the Unix
socket, peer uid root or the router's own); any other agent gets ``status_summary`` of it: the
figures without paths, queue ids, namespaces or addresses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Final

from ..lru import LRU
from ..wave import Entity, WaveError, format_id, object_id, verify_handshake
from ..wire import (
    NEED_DATA,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    LocalWireError,
    RemoteWireError,
    encode_frame,
)
from ..wire.fields import expect_bool, expect_bytes, expect_fields, expect_int, expect_int_list, expect_str
from .core import RouterCore
from .errors import ErrorCode, RouterError
from .internal_errors import InternalErrorLog
from .ok_frames import publish_ok
from .publish_batch import Prepared, prepare_publishes
from .status import core_reply
from .status_summary import SUMMARY_KEYS, status_summary, wire_safe
from .subscription import RouterSubscription

__all__ = ["DEFAULT_FRAME_STALL_TIMEOUT_S", "PROTOCOL_VERSION", "SUMMARY_KEYS", "AgentSession", "SessionState",
           "status_summary"]

log = logging.getLogger("wavemq_edge.router.session")
#: Unexpected exceptions in request handlers, shared by every session: a traceback per site, then counts.
INTERNAL_ERRORS: Final = InternalErrorLog(log)

PROTOCOL_VERSION: Final = 1
CHALLENGE_BYTES: Final = 32
#: Proofs remembered per connection (LRU). A service uses one or a few; 64 leaves room for many
#: namespaces while bounding what one connection can make us hold (64 x a few KiB).
MAX_PROOFS_PER_CONNECTION: Final = 64
#: Largest proof accepted on the agent API, in bytes.
MAX_PROOF_BYTES: Final = 64 * 1024
#: Default of ``LimitsConfig.frameStallTimeout`` (the schema holds the configured one), seconds.
DEFAULT_FRAME_STALL_TIMEOUT_S: Final = 30.0


class SessionState(Enum):
    AWAIT_AUTH = "await-auth"
    OPEN = "open"
    CLOSED = "closed"


class _ProtocolError(Exception):
    def __init__(self, code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class AgentSession:
    """See the module docstring."""

    def __init__(self, core: RouterCore, *, now: float, max_frame_bytes: int, handshake_timeout_s: float,
                 frame_stall_timeout_s: float = DEFAULT_FRAME_STALL_TIMEOUT_S,
                 peer: str = "?", challenge: bytes | None = None,
                 on_output: Callable[[], None] | None = None,
                 status_source: Callable[[float], Mapping[str, object]] | None = None,
                 operator: bool = False) -> None:
        self.core = core
        #: called when output appears while none was waiting: deliveries are produced by *other*
        #: connections' input, so the glue must learn which sessions have bytes to write.
        self.on_output = on_output
        self.peer = peer
        self.state = SessionState.AWAIT_AUTH
        self.entity: Entity | None = None
        self.max_frame_bytes = max_frame_bytes
        self.close_reason: str | None = None
        #: "handshake" or "frame_stall" when a deadline closed the connection (the glue counts them)
        self.timed_out: str | None = None
        #: a request was accepted on this connection (see the module docstring)
        self.authorised = False
        #: the local operator: STATUS gets the whole snapshot
        self.operator = operator
        self.frame_stall_timeout_s = frame_stall_timeout_s
        self._decoder = FrameDecoder(max_frame_bytes)
        #: (stream offset, time) of the first byte of the frame not yet complete, see ``_partial_since``
        self._partial: tuple[int, float] | None = None
        self._last_input = now
        self._out: list[bytes] = []
        self._challenge = challenge if challenge is not None else os.urandom(CHALLENGE_BYTES)
        self._deadline: float | None = now + handshake_timeout_s
        self._proofs: LRU[bytes, bytes] = LRU(MAX_PROOFS_PER_CONNECTION)
        self._status_source = status_source or (lambda t: core_reply(core.status(t)))
        #: subscription key -> subscription attached on this connection
        self.subscriptions: dict[str, RouterSubscription] = {}
        self._by_sub_id: dict[str, RouterSubscription] = {}
        self._inflight: dict[str, int] = {}
        self.frames_in = 0
        self.frames_out = 0
        self._send(FrameType.HELLO, PROTOCOL_VERSION, core.router_id, self._challenge, max_frame_bytes,
                   core.options.inflight_window)

    # ------------------------------------------------------------------ I/O surface

    @property
    def closing(self) -> bool:
        return self.state is SessionState.CLOSED

    def bytes_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        """The handshake deadline, or the current frame's, whichever comes first; None if neither."""
        if self.state is SessionState.CLOSED:
            return None
        deadline = self._deadline
        since = self._partial_since()
        if since is not None:
            stall = since + self.frame_stall_timeout_s
            deadline = stall if deadline is None else min(deadline, stall)
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        if self._deadline is not None and now >= self._deadline and self.state is SessionState.AWAIT_AUTH:
            self.timed_out = "handshake"
            self._close(CloseCode.TIMEOUT, "handshake not completed in time", now)
            return
        since = self._partial_since()
        if since is not None and now >= since + self.frame_stall_timeout_s:
            self.timed_out = "frame_stall"
            self._close(CloseCode.TIMEOUT, f"frame not completed within LimitsConfig.frameStallTimeout="
                        f"{self.frame_stall_timeout_s:g} s ({self._decoder.buffered_bytes} bytes of it received)", now)

    def restart_frame_clock(self, now: float) -> None:
        """The glue held this peer's input back (back-pressure: it was not reading our output), so an
        incomplete frame's deadline counts from ``now``, when reading resumes."""
        self._partial_since()
        if self._partial is not None:
            self._partial = (self._partial[0], now)

    def receive_bytes(self, data: bytes, now: float, wall: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        self._note_input(now)
        frames, error = self._take_frames(data)
        prepared = self._prepare(frames, now)
        try:
            for i, frame in enumerate(frames):
                if self.closing:
                    break
                self.frames_in += 1
                try:
                    self._dispatch(frame, now, wall, prepared.get(i))
                except (RemoteWireError, _ProtocolError):
                    raise
                except Exception as exc:  # a bug or a failing store: this request only (INTERNAL_ERRORS)
                    self._internal_error(frame, exc, now)
            if error is not None:
                raise error
        except RemoteWireError as exc:
            self._close(exc.close_code, str(exc), now)
        except _ProtocolError as exc:
            self._close(exc.code, str(exc), now)

    def _take_frames(self, data: bytes) -> tuple[list[Frame], RemoteWireError | None]:
        """Every complete frame in the input so far, and the framing error that ended them, if one did
        (the frames before it are dispatched first, as they would have been one at a time)."""
        frames: list[Frame] = []
        try:
            self._decoder.receive_bytes(data)
            while True:
                frame = self._decoder.next_frame()
                if frame is NEED_DATA:
                    return frames, None
                assert isinstance(frame, Frame)
                frames.append(frame)
        except RemoteWireError as exc:
            return frames, exc

    def _prepare(self, frames: list[Frame], now: float) -> dict[int, Prepared]:
        """The publishes among ``frames`` parsed, their signatures checked in one batch
        (``publish_batch.py``); nothing before the handshake, and nothing if preparing fails (the frames
        are then handled one by one, as before)."""
        if self.entity is None or self.state is not SessionState.OPEN:
            return {}
        try:
            return prepare_publishes(frames, self.entity, self.core.verify_many)
        except Exception as exc:  # a bug, or the verifier's thread failing: dispatch from the raw bytes
            INTERNAL_ERRORS.report(exc, "PUBLISH batch", self.peer, now)
            return {}

    def _internal_error(self, frame: Frame, exc: Exception, now: float) -> None:
        """An unexpected exception while handling ``frame``: logged once per site, counted, and answered
        ``REFUSED 699`` when the frame is a numbered request; the connection stays open. Before ``AUTH``
        there is nothing to keep open: the handshake fails with ``INTERNAL_ERROR``."""
        INTERNAL_ERRORS.report(exc, frame.type.name, self.peer, now)
        self.core.counters.refuse(ErrorCode.INTERNAL)
        if self.state is SessionState.AWAIT_AUTH:
            self._close(CloseCode.INTERNAL_ERROR, f"internal error during the handshake ({type(exc).__name__})", now)
            return
        req = frame.fields[0] if frame.type in _NUMBERED and frame.fields else None
        if isinstance(req, int) and not isinstance(req, bool):
            self._refuse(req, ErrorCode.INTERNAL, f"internal error handling {frame.type.name} "
                         f"({type(exc).__name__}); the router logged it")

    def connection_lost(self, now: float) -> None:
        """The transport is gone: detach from every subscription (their in-flight messages are
        redelivered to other consumers or kept for the next one)."""
        if self.close_reason is None:
            self.close_reason = "connection lost"
        self.state = SessionState.CLOSED
        self._detach_all(now)

    # ------------------------------------------------------------------ internals

    def _partial_since(self) -> float | None:
        """When the first byte of the incomplete frame arrived, or None at a frame boundary.

        The decoder's ``offset`` (bytes taken by whole frames) is where the incomplete frame starts: a
        new offset with bytes buffered means a new frame began, in the latest input. Called before each
        input is taken and whenever the deadline is asked, so the latest input is the one it began in.
        """
        d = self._decoder
        if d.buffered_bytes == 0:
            self._partial = None
        elif self._partial is None or self._partial[0] != d.offset:
            self._partial = (d.offset, self._last_input)
        return self._partial[1] if self._partial is not None else None

    def _note_input(self, now: float) -> None:
        self._partial_since()
        self._last_input = now

    def _send(self, kind: FrameType, *fields: object) -> None:
        if not self._out and self.on_output is not None:
            self.on_output()
        try:
            self._out.append(encode_frame(kind, *fields, max_frame_bytes=self.max_frame_bytes))
        except LocalWireError as exc:
            # Only a reply we built can hit this (e.g. a status map over the bound): say so instead.
            log.error("event=frame_too_large peer=%s frame=%s error=%r", self.peer, kind.name, str(exc))
            self._out.append(encode_frame(FrameType.ERROR, int(CloseCode.INTERNAL_ERROR), str(exc)))
        self.frames_out += 1

    def _close(self, code: CloseCode, reason: str, now: float) -> None:
        if self.state is SessionState.CLOSED:
            return
        log.info("event=agent_closed peer=%s entity=%s code=%d reason=%r", self.peer,
                 format_id(self.entity.id) if self.entity else "-", int(code), reason)
        self._send(FrameType.ERROR, int(code), reason)
        self.close_reason = reason
        self.state = SessionState.CLOSED
        self._detach_all(now)

    def _detach_all(self, now: float) -> None:
        subs = list(self.subscriptions.values())
        self.subscriptions.clear()
        self._by_sub_id.clear()
        self._inflight.clear()
        for sub in subs:
            self.core.detach(self, sub, now)

    def _refuse(self, req: int, code: ErrorCode, reason: str) -> None:
        self._send(FrameType.REFUSED, req, int(code), reason)

    def _proof_for(self, proof_id: bytes) -> bytes | None:
        return self._proofs.get(proof_id)

    def _dispatch(self, frame: Frame, now: float, wall: float, prepared: Prepared | None = None) -> None:
        kind = frame.type
        if prepared is not None:  # a PUBLISH, prepared only once the connection is open
            self._on_publish(frame, now, wall, prepared)
            return
        if kind is FrameType.PING:
            (token,) = expect_fields(frame, 1)
            self._send(FrameType.PONG, expect_int(token, "PING token"))
            return
        if kind is FrameType.PONG:
            return
        if self.state is SessionState.AWAIT_AUTH:
            if kind is not FrameType.AUTH:
                raise _ProtocolError(CloseCode.PROTOCOL_VIOLATION,
                                     f"{kind.name} before AUTH (code {int(ErrorCode.NOT_AUTHENTICATED)})")
            self._auth(frame, wall)
            return
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise _ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"{kind.name} is not a frame an agent sends")
        handler(self, frame, now, wall)

    def _auth(self, frame: Frame, wall: float) -> None:
        raw, sig = expect_fields(frame, 2)
        raw_b = expect_bytes(raw, "AUTH entity")
        sig_b = expect_bytes(sig, "AUTH signature")
        try:
            entity = Entity.from_bytes(raw_b)
            verify_handshake(entity, self._challenge, sig_b)
        except WaveError as exc:
            raise _ProtocolError(CloseCode.PROTOCOL_VIOLATION, f"authentication failed: {exc}") from None
        if not entity.is_valid_at(wall, self.core.options.skew_s):
            raise _ProtocolError(CloseCode.PROTOCOL_VIOLATION,
                                 f"authentication failed: entity {format_id(entity.id)} is expired or not yet valid")
        if self.core.verifier.is_revoked(entity.revocation_commitment):
            raise _ProtocolError(CloseCode.PROTOCOL_VIOLATION,
                                 f"authentication failed: entity {format_id(entity.id)} is revoked")
        self.entity = entity
        self.state = SessionState.OPEN
        self._deadline = None
        self._send(FrameType.WELCOME, entity.id)
        log.debug("event=agent_authenticated peer=%s entity=%s", self.peer, format_id(entity.id))

    def _on_proof(self, frame: Frame, now: float, wall: float) -> None:
        req, proof = expect_fields(frame, 2)
        req = expect_int(req, "request number")
        proof = expect_bytes(proof, "PROOF bytes")
        if len(proof) > MAX_PROOF_BYTES:
            self._refuse(req, ErrorCode.BAD_REQUEST, f"proof of {len(proof)} bytes exceeds {MAX_PROOF_BYTES}")
            return
        proof_id = object_id(proof)
        self._proofs.put(proof_id, proof)
        self._send(FrameType.OK, req, proof_id)

    def _on_publish(self, frame: Frame, now: float, wall: float, prepared: Prepared | None = None) -> None:
        req, raw = expect_fields(frame, 2)
        req = expect_int(req, "request number")
        assert self.entity is not None
        try:
            result = self.core.publish(self.entity, expect_bytes(raw, "PUBLISH message"), self._proof_for, now,
                                       wall, prepared)
        except RouterError as exc:
            self._refuse(req, exc.code, str(exc))
            return
        self.authorised = True
        if not self._out and self.on_output is not None:
            self.on_output()
        self._out.append(publish_ok(req, "duplicate" if result.duplicate else "accepted"))
        self.frames_out += 1

    def _on_subscribe(self, frame: Frame, now: float, wall: float) -> None:
        req, raw, ephemeral = expect_fields(frame, 3)
        req = expect_int(req, "request number")
        ephemeral = expect_bool(ephemeral, "SUBSCRIBE ephemeral flag")
        assert self.entity is not None
        try:
            sub, resumed = self.core.subscribe(self, self.entity, expect_bytes(raw, "SUBSCRIBE object"),
                                               self._proof_for, ephemeral, len(self.subscriptions), now, wall)
        except RouterError as exc:
            self._refuse(req, exc.code, str(exc))
            return
        other = self._by_sub_id.get(sub.sub_id)
        if other is not None and other is not sub:
            # DELIVER frames name the identifier only, so it must be unique on a connection.
            self.core.detach(self, sub, now)
            self._refuse(req, ErrorCode.BAD_REQUEST,
                         f"identifier {sub.sub_id!r} is already used on this connection in another namespace")
            return
        self.authorised = True
        self.subscriptions[sub.key] = sub
        self._by_sub_id[sub.sub_id] = sub
        backlog = self.core.queues.stats(sub.queue_id).depth
        self._send(FrameType.SUBSCRIBED, req, sub.sub_id, int(sub.expiry), resumed, backlog)

    def _on_dack(self, frame: Frame, now: float, wall: float) -> None:
        sub_id, seqs = expect_fields(frame, 2)
        sub_id = expect_str(sub_id, "DACK subscription id")
        seqs = expect_int_list(seqs, "DACK sequences")
        sub = self._by_sub_id.get(sub_id)
        if sub is None:
            return  # ended meanwhile; the acks are moot
        n = self.core.acknowledge(self, sub, seqs, now)
        if n:
            self._inflight[sub.key] = max(0, self._inflight.get(sub.key, 0) - n)

    def _on_unsubscribe(self, frame: Frame, now: float, wall: float) -> None:
        req, raw = expect_fields(frame, 2)
        req = expect_int(req, "request number")
        assert self.entity is not None
        try:
            n = self.core.unsubscribe(self.entity, expect_bytes(raw, "UNSUBSCRIBE object"), now, wall)
        except RouterError as exc:
            self._refuse(req, exc.code, str(exc))
            return
        self.authorised = True
        self._send(FrameType.OK, req, n)

    def _on_query(self, frame: Frame, now: float, wall: float) -> None:
        req, raw, after, limit = expect_fields(frame, 4)
        req = expect_int(req, "request number")
        if after is not None:
            after = expect_str(after, "QUERY continuation")
        limit = expect_int(limit, "QUERY limit")
        assert self.entity is not None
        reply = _QueryReply(self, req)
        try:
            result = self.core.query(self.entity, expect_bytes(raw, "QUERY object"), self._proof_for, after, limit,
                                     wall, reply)
        except RouterError as exc:
            self._refuse(req, exc.code, str(exc))
            return
        self.authorised = True
        if result is not None:  # answered here; otherwise the designated router answers through ``reply``
            reply.query_results([m for _uri, m in result.messages], result.continuation, result.source)

    def _on_status(self, frame: Frame, now: float, wall: float) -> None:
        (req,) = expect_fields(frame, 1)
        full = self._status_source(now)
        status = wire_safe({**full, "detail": "full"} if self.operator else status_summary(full))
        self._send(FrameType.STATUS_REPLY, expect_int(req, "request number"), status)

    # ------------------------------------------------------------------ Consumer

    def credit(self, sub: RouterSubscription) -> int:
        if self.state is not SessionState.OPEN:
            return 0
        return self.core.options.inflight_window - self._inflight.get(sub.key, 0)

    def deliver(self, sub: RouterSubscription, seq: int, item: bytes) -> None:
        self._inflight[sub.key] = self._inflight.get(sub.key, 0) + 1
        self._send(FrameType.DELIVER, sub.sub_id, seq, item)

    def subscription_ended(self, sub: RouterSubscription, code: int, reason: str) -> None:
        self.subscriptions.pop(sub.key, None)
        if self._by_sub_id.get(sub.sub_id) is sub:
            del self._by_sub_id[sub.sub_id]
        self._inflight.pop(sub.key, None)
        if self.state is SessionState.OPEN:
            self._send(FrameType.SUB_END, sub.sub_id, code, reason)


class _QueryReply:
    """Sends a query's answer on the session that asked, if it is still open when the answer comes."""

    __slots__ = ("req", "session")

    def __init__(self, session: AgentSession, req: int) -> None:
        self.session = session
        self.req = req

    def query_results(self, messages: list[bytes], continuation: str | None, source: str) -> None:
        if self.session.closing:
            return
        for message in messages:
            self.session._send(FrameType.RESULT, self.req, message)
        self.session._send(FrameType.QUERY_END, self.req, len(messages), continuation, source)

    def query_refused(self, code: int, reason: str) -> None:
        if not self.session.closing:
            self.session._refuse(self.req, ErrorCode(code) if code in ErrorCode._value2member_map_ else
                                 ErrorCode.INTERNAL, reason)


#: Frames whose first field is the request number a ``REFUSED`` answers.
_NUMBERED: Final = frozenset({FrameType.PROOF, FrameType.PUBLISH, FrameType.SUBSCRIBE, FrameType.UNSUBSCRIBE,
                              FrameType.QUERY, FrameType.STATUS})

_HANDLERS = {
    FrameType.PROOF: AgentSession._on_proof,
    FrameType.PUBLISH: AgentSession._on_publish,
    FrameType.SUBSCRIBE: AgentSession._on_subscribe,
    FrameType.DACK: AgentSession._on_dack,
    FrameType.UNSUBSCRIBE: AgentSession._on_unsubscribe,
    FrameType.QUERY: AgentSession._on_query,
    FrameType.STATUS: AgentSession._on_status,
}
