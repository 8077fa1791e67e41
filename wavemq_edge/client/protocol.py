"""The agent end of one router connection as a sans-I/O state machine (h11-style): bytes in, bytes out.

It mirrors the router's ``AgentSession`` (``router/session.py``) from the other side.

Theory of operation
-------------------
States::

    AWAIT_HELLO --HELLO--> AWAIT_WELCOME --WELCOME--> OPEN --(ERROR | violation | end of stream)--> CLOSED

The router speaks first: ``HELLO`` carries its id, a 32-byte challenge and its delivery window. We answer
``AUTH`` (our public entity and a signature over the challenge, ``wave.sign_handshake``); ``WELCOME``
opens the connection (``HandshakeCompleted``). A handshake not done by ``handshake_timeout_s`` after
creation ends the connection (``handle_timer``).

In ``OPEN``, requests go out with a request number (``send_request``), and every reply must answer an
outstanding request with a frame type that request allows (``_REPLY_KINDS``): ``RESULT`` frames are
collected and handed over with the ``QUERY_END``. Deliveries are counted per subscription until
acknowledged (``ack`` queues, ``send_acks`` writes the ``DACK`` frames), so ``credit`` shows how much of
the router's window is left.

The router breaking the protocol (a frame that does not decode, a field of the wrong type, a frame it
never sends to an agent or not in this state, a reply nobody asked for) ends the connection with
``ConnectionTerminated(protocol_error=True)`` carrying the ``CloseCode`` and the reason: one exit, and
the caller fails every pending call with it. No ``ERROR`` frame is sent back: the router's session has
no use for one (it would log "ERROR is not a frame an agent sends"), so we just close.

A ``DELIVER`` or ``SUB_END`` for a subscription we no longer know is ignored, not a violation: we may
have dropped it locally while the router was still sending.

Inputs: ``receive_bytes(data, now)``, ``connection_lost(now)``, ``handle_timer(now)`` and the ``send_*``
calls. Outputs: ``bytes_to_send()`` and ``next_event()`` (an event, or ``NEED_DATA``). No clock is read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Final

from ..wave import EntitySecret, sign_handshake
from ..wire import (
    AGENT_MAX_FRAME_BYTES,
    NEED_DATA,
    CloseCode,
    Frame,
    FrameDecoder,
    FrameType,
    NeedData,
    RemoteWireError,
    encode_frame,
    expect_bool,
    expect_bytes,
    expect_fields,
    expect_int,
    expect_map,
    expect_optional_str,
    expect_str,
)
from .errors import LocalProtocolError
from .events import (
    Accepted,
    ConnectionTerminated,
    Event,
    HandshakeCompleted,
    MessageDelivered,
    QueryAnswered,
    Refused,
    StatusReported,
    Subscribed,
    SubscriptionClosed,
)

__all__ = ["HANDSHAKE_TIMEOUT_S", "ClientProtocol", "ClientState"]

#: How long the router may take to greet and welcome us, in seconds (a loaded Pi answers in
#: milliseconds; ten seconds covers a congested uplink without leaving a dead dial hanging).
HANDSHAKE_TIMEOUT_S: Final = 10.0

#: Which reply frames answer which request. Anything else is a protocol violation.
_REPLY_KINDS: Final[dict[FrameType, frozenset[FrameType]]] = {
    FrameType.PROOF: frozenset((FrameType.OK, FrameType.REFUSED)),
    FrameType.PUBLISH: frozenset((FrameType.OK, FrameType.REFUSED)),
    FrameType.UNSUBSCRIBE: frozenset((FrameType.OK, FrameType.REFUSED)),
    FrameType.SUBSCRIBE: frozenset((FrameType.SUBSCRIBED, FrameType.REFUSED)),
    FrameType.QUERY: frozenset((FrameType.RESULT, FrameType.QUERY_END, FrameType.REFUSED)),
    FrameType.STATUS: frozenset((FrameType.STATUS_REPLY, FrameType.REFUSED)),
}


class ClientState(Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_WELCOME = "await-welcome"
    OPEN = "open"
    CLOSED = "closed"


def _violation(message: str) -> RemoteWireError:
    return RemoteWireError(message, CloseCode.PROTOCOL_VIOLATION)


class ClientProtocol:
    """See the module docstring. One object per connection; ``first_request`` continues the request
    numbering of the previous connection, so requests resent after a reconnect keep their numbers."""

    def __init__(self, entity: EntitySecret, *, now: float, handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
                 max_frame_bytes: int = AGENT_MAX_FRAME_BYTES, first_request: int = 0) -> None:
        self.entity = entity
        self.state = ClientState.AWAIT_HELLO
        self.max_frame_bytes = max_frame_bytes
        self.router_id = b""
        self.inflight_window = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._decoder = FrameDecoder(max_frame_bytes)
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._deadline: float | None = now + handshake_timeout_s
        self._req = first_request
        #: outstanding request number -> its frame type
        self._requests: dict[int, FrameType] = {}
        self._results: dict[int, list[bytes]] = {}
        #: request number of a SUBSCRIBE -> the identifier it subscribes
        self._subscribing: dict[int, str] = {}
        #: subscription identifier -> sequence numbers delivered and not yet acknowledged
        self._unacked: dict[str, set[int]] = {}
        self._acks: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ I/O surface

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    @property
    def last_request(self) -> int:
        return self._req

    def bytes_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_event(self) -> Event | NeedData:
        return self._events.popleft() if self._events else NEED_DATA

    def next_deadline(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline and self.state is not ClientState.OPEN:
            self._terminate(CloseCode.TIMEOUT, "router did not complete the handshake in time", False)

    def receive_bytes(self, data: bytes, now: float) -> None:
        if self.closed:
            return
        try:
            self._decoder.receive_bytes(data)
            while not self.closed:
                frame = self._decoder.next_frame()
                if frame is NEED_DATA:
                    break
                assert isinstance(frame, Frame)
                self._dispatch(frame)
        except RemoteWireError as exc:  # framing errors, FieldError and our own violations alike
            self._terminate(exc.close_code, str(exc), True)

    def connection_lost(self, now: float, reason: str = "router closed the connection") -> None:
        """The stream ended (or the transport failed) before a close was agreed."""
        self._terminate(CloseCode.NORMAL, reason, False)

    def close(self, reason: str = "client closed") -> None:
        """We end the connection; the caller closes the transport after writing ``bytes_to_send()``."""
        self._terminate(CloseCode.NORMAL, reason, False)

    # ------------------------------------------------------------------ sending

    def send_request(self, kind: FrameType, *fields: object) -> tuple[int, bytes]:
        """Queue ``[kind, req, *fields]``; returns the request number and the encoded frame (kept by the
        caller to resend after a reconnect)."""
        if kind is FrameType.SUBSCRIBE:
            raise LocalProtocolError("use send_subscribe for SUBSCRIBE")
        return self._request(kind, fields)

    def send_subscribe(self, sub_id: str, subscribe: bytes, ephemeral: bool) -> tuple[int, bytes]:
        """Queue a ``SUBSCRIBE`` for identifier ``sub_id``. Deliveries for it are accepted from now on:
        the router may send the backlog before its ``SUBSCRIBED`` reply."""
        req, data = self._request(FrameType.SUBSCRIBE, (subscribe, ephemeral))
        self._subscribing[req] = sub_id
        self._unacked.setdefault(sub_id, set())
        return req, data

    def resend_request(self, req: int, kind: FrameType, frame: bytes) -> None:
        """Queue a frame ``send_request`` built on an earlier connection, with its request number."""
        self._require_open(kind)
        self._req = max(self._req, req)
        self._requests[req] = kind
        self._out.append(frame)

    def forget_subscription(self, sub_id: str) -> None:
        """We stopped listening to ``sub_id``; later deliveries for it are dropped unacknowledged."""
        self._unacked.pop(sub_id, None)

    def credit(self, sub_id: str) -> int:
        """Deliveries the router may still send for ``sub_id`` before it waits for our acks."""
        return self.inflight_window - len(self._unacked.get(sub_id, ()))

    def ack(self, sub_id: str, seq: int) -> None:
        """Queue the acknowledgement of one delivery; ``send_acks`` writes them in one frame per
        subscription. Acks queued after the connection ended wait for ``take_unsent_acks``."""
        self._acks.setdefault(sub_id, []).append(seq)
        unacked = self._unacked.get(sub_id)
        if unacked is not None:
            unacked.discard(seq)

    def send_acks(self) -> None:
        if self.state is not ClientState.OPEN or not self._acks:
            return
        for sub_id, seqs in self._acks.items():
            self._out.append(encode_frame(FrameType.DACK, sub_id, seqs, max_frame_bytes=self.max_frame_bytes))
        self._acks.clear()

    def take_unsent_acks(self) -> dict[str, list[int]]:
        """Acks not yet written, for the next connection (the router redelivers by the same sequence
        numbers, so an ack still counts there)."""
        acks, self._acks = self._acks, {}
        return acks

    # ------------------------------------------------------------------ internals

    def _request(self, kind: FrameType, fields: tuple[object, ...]) -> tuple[int, bytes]:
        self._require_open(kind)
        req = self._req + 1
        data = encode_frame(kind, req, *fields, max_frame_bytes=self.max_frame_bytes)
        self._req = req
        self._requests[req] = kind
        self._out.append(data)
        return req, data

    def _require_open(self, kind: FrameType) -> None:
        if self.state is not ClientState.OPEN:
            raise LocalProtocolError(f"cannot send {kind.name} in state {self.state.value}")
        if kind not in _REPLY_KINDS:
            raise LocalProtocolError(f"{kind.name} is not a request")

    def _terminate(self, code: int, reason: str, protocol_error: bool) -> None:
        if self.state is ClientState.CLOSED:
            return
        self.state = ClientState.CLOSED
        self.close_code = int(code)
        self.close_reason = reason
        self._deadline = None
        self._events.append(ConnectionTerminated(int(code), reason, protocol_error))

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.type
        if kind is FrameType.ERROR:
            self._on_error(frame)
            return
        if kind is FrameType.PING:
            (token,) = expect_fields(frame, 1)
            self._out.append(encode_frame(FrameType.PONG, expect_int(token, "PING token")))
            return
        if kind is FrameType.PONG:
            return  # we send no PING; a stray PONG is harmless, as in the router's session
        handler = _HANDLERS[self.state].get(kind)
        if handler is None:
            raise _violation(f"{kind.name} frame is not allowed from the router in state {self.state.value}")
        handler(self, frame)

    def _on_error(self, frame: Frame) -> None:
        code, reason = expect_fields(frame, 2)
        code_n = expect_int(code, "ERROR code")
        text = expect_str(reason, "ERROR reason")
        if self.state is ClientState.AWAIT_WELCOME:
            text = f"router refused authentication: {text}"
        else:
            text = f"router closed the connection: ({code_n}) {text}"
        self._terminate(code_n, text, False)

    def _on_hello(self, frame: Frame) -> None:
        _version, router_id, challenge, _max_frame, window = expect_fields(frame, 5, at_least=True)[:5]
        self.router_id = expect_bytes(router_id, "HELLO router id")
        challenge_b = expect_bytes(challenge, "HELLO challenge")
        self.inflight_window = expect_int(window, "HELLO inflight window")
        self._out.append(encode_frame(FrameType.AUTH, self.entity.entity.raw, sign_handshake(self.entity, challenge_b),
                                      max_frame_bytes=self.max_frame_bytes))
        self.state = ClientState.AWAIT_WELCOME

    def _on_welcome(self, frame: Frame) -> None:
        (entity_id,) = expect_fields(frame, 1)
        self.state = ClientState.OPEN
        self._deadline = None
        self._events.append(HandshakeCompleted(self.router_id, expect_bytes(entity_id, "WELCOME entity id"),
                                               self.inflight_window))

    def _answer(self, kind: FrameType, req: object, final: bool = True) -> int:
        """The request number of a reply, checked: outstanding, and answerable by ``kind``."""
        req_n = expect_int(req, f"{kind.name} request number")
        asked = self._requests.get(req_n)
        if asked is None:
            raise _violation(f"{kind.name} answers request {req_n}, which is not outstanding")
        if kind not in _REPLY_KINDS[asked]:
            raise _violation(f"{kind.name} does not answer a {asked.name} request (request {req_n})")
        if final:
            del self._requests[req_n]
        return req_n

    def _on_ok(self, frame: Frame) -> None:
        req, detail = expect_fields(frame, 2)
        self._events.append(Accepted(self._answer(frame.type, req), detail))

    def _on_refused(self, frame: Frame) -> None:
        req, code, reason = expect_fields(frame, 3)
        req_n = self._answer(frame.type, req)
        code_n = expect_int(code, "REFUSED code")
        text = expect_str(reason, "REFUSED reason")
        self._results.pop(req_n, None)
        sub_id = self._subscribing.pop(req_n, None)
        if sub_id is not None:
            self._unacked.pop(sub_id, None)
        self._events.append(Refused(req_n, code_n, text))

    def _on_subscribed(self, frame: Frame) -> None:
        req, sub_id, expiry, resumed, backlog = expect_fields(frame, 5)
        req_n = self._answer(frame.type, req)
        sid = expect_str(sub_id, "SUBSCRIBED subscription id")
        self._subscribing.pop(req_n, None)
        self._unacked.setdefault(sid, set())
        self._events.append(Subscribed(req_n, sid, expect_int(expiry, "SUBSCRIBED expiry"),
                                       expect_bool(resumed, "SUBSCRIBED resumed"),
                                       expect_int(backlog, "SUBSCRIBED backlog")))

    def _on_result(self, frame: Frame) -> None:
        req, message = expect_fields(frame, 2)
        req_n = self._answer(frame.type, req, final=False)
        self._results.setdefault(req_n, []).append(expect_bytes(message, "RESULT message"))

    def _on_query_end(self, frame: Frame) -> None:
        req, count, continuation, source = expect_fields(frame, 4)
        req_n = self._answer(frame.type, req)
        results = tuple(self._results.pop(req_n, ()))
        self._events.append(QueryAnswered(req_n, results, expect_int(count, "QUERY_END count"),
                                          expect_optional_str(continuation, "QUERY_END continuation"),
                                          expect_str(source, "QUERY_END source")))

    def _on_status_reply(self, frame: Frame) -> None:
        req, status = expect_fields(frame, 2)
        self._events.append(StatusReported(self._answer(frame.type, req), expect_map(status, "STATUS_REPLY status")))

    def _on_deliver(self, frame: Frame) -> None:
        sub_id, seq, message = expect_fields(frame, 3)
        sid = expect_str(sub_id, "DELIVER subscription id")
        seq_n = expect_int(seq, "DELIVER seq")
        raw = expect_bytes(message, "DELIVER message")
        unacked = self._unacked.get(sid)
        if unacked is None:
            return  # dropped locally; the router keeps it for the next consumer
        unacked.add(seq_n)
        self._events.append(MessageDelivered(sid, seq_n, raw))

    def _on_sub_end(self, frame: Frame) -> None:
        sub_id, code, reason = expect_fields(frame, 3)
        sid = expect_str(sub_id, "SUB_END subscription id")
        code_n = expect_int(code, "SUB_END code")
        text = expect_str(reason, "SUB_END reason")
        if self._unacked.pop(sid, None) is not None:
            self._events.append(SubscriptionClosed(sid, code_n, text))


_Handler = Callable[[ClientProtocol, Frame], None]

#: What the router may send in each state; ERROR, PING and PONG are handled in every state.
_HANDLERS: Final[dict[ClientState, dict[FrameType, _Handler]]] = {
    ClientState.AWAIT_HELLO: {FrameType.HELLO: ClientProtocol._on_hello},
    ClientState.AWAIT_WELCOME: {FrameType.WELCOME: ClientProtocol._on_welcome},
    ClientState.OPEN: {
        FrameType.OK: ClientProtocol._on_ok,
        FrameType.REFUSED: ClientProtocol._on_refused,
        FrameType.SUBSCRIBED: ClientProtocol._on_subscribed,
        FrameType.RESULT: ClientProtocol._on_result,
        FrameType.QUERY_END: ClientProtocol._on_query_end,
        FrameType.STATUS_REPLY: ClientProtocol._on_status_reply,
        FrameType.DELIVER: ClientProtocol._on_deliver,
        FrameType.SUB_END: ClientProtocol._on_sub_end,
    },
    ClientState.CLOSED: {},
}
