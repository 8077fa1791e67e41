"""``Client``: the asyncio pump around ``ClientProtocol``, with the reconnect logic.

The pump owns the socket and the futures; the protocol owns every rule of the conversation. Each
connection gets a fresh ``ClientProtocol``: ``_open`` dials and runs the handshake, ``_read_loop`` feeds
received bytes in, writes what the protocol queued and turns its events into resolved futures and
subscription items.

When a connection ends, ``ConnectionTerminated`` says how. The router breaking the protocol
(``protocol_error``) is final: every pending call and every subscription iterator gets the
``RouterProtocolError`` and the client closes. Any other loss is retried with ``reconnect=True``
(exponential backoff with jitter): subscriptions are resumed by identifier, the proofs this client
sent are sent again, then unacknowledged publishes are resent with their request numbers (the router
drops duplicates by message id) and other unanswered requests fail with ``ConnectionClosed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TypeVar

from ..uri import parse_pattern
from ..wave import (
    EntitySecret,
    WaveError,
    load_entity_secret,
    object_id,
    sign_message,
    sign_query,
    sign_subscribe,
    sign_unsubscribe,
)
from ..wire import NEED_DATA, ErrorCode, FrameType
from .defaults import DEFAULT_ROUTER
from .errors import ClientError, ConnectionClosed, RequestRefused, RouterProtocolError, SubscriptionEnded, refused
from .events import (
    Accepted,
    ConnectionTerminated,
    Event,
    HandshakeCompleted,
    MessageDelivered,
    QueryAnswered,
    Refused,
    Reply,
    StatusReported,
    Subscribed,
    SubscriptionClosed,
)
from .messages import PublishStamps, ReceivedMessage, Subscription, payload_objects, resolve_namespace
from .proofs import ProofFinder, load_proofs
from .protocol import ClientProtocol, ClientState

__all__ = ["BACKOFF_MAX_S", "BACKOFF_MIN_S", "CONNECT_TIMEOUT_S", "DEFAULT_ROUTER", "READ_BYTES", "Client"]

log = logging.getLogger("wavemq_edge.client")

#: Bytes asked of the socket per read: a few maximal-size deliveries of the router's default frame.
READ_BYTES: Final = 65536
BACKOFF_MIN_S: Final = 0.2
BACKOFF_MAX_S: Final = 10.0
#: For dialling, and again for the handshake (the protocol's deadline).
CONNECT_TIMEOUT_S: Final = 10.0

_R = TypeVar("_R", Accepted, Subscribed, QueryAnswered, StatusReported)


@dataclass
class _Pending:
    kind: FrameType
    frame: bytes
    future: asyncio.Future[Reply]
    resend: bool


class Client:
    """A connection to one router. Create with ``await Client.connect(...)``."""

    def __init__(self, router: str, entity: EntitySecret, *, proofs: Sequence[bytes] = (),
                 wave_db: str | os.PathLike[str] | None = None, reconnect: bool = True) -> None:
        self.router = router
        self.entity = entity
        self.reconnect = reconnect
        self.router_id = b""
        self.inflight_window = 0
        self._proofs = ProofFinder(entity.id, proofs, wave_db)
        self._proofs_sent: set[bytes] = set()
        #: every proof this client sent, re-sent after a reconnect before pending publishes
        self._proofs_known: dict[bytes, bytes] = {}
        self._proofs_sending: dict[bytes, asyncio.Future[Accepted]] = {}
        self._protocol: ClientProtocol | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[str, Subscription] = {}
        self._ack_scheduled = False
        self._read_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closed = False
        #: why the client closed itself, raised by every later call
        self._fatal: ClientError | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self._stamps = PublishStamps()
        self.last_query_source = ""

    # ------------------------------------------------------------------ connect / close

    @classmethod
    async def connect(cls, router: str = DEFAULT_ROUTER, *, entity: EntitySecret | str | os.PathLike[str],
                      passphrase: str | None = None, proofs: Sequence[str | os.PathLike[str] | bytes] = (),
                      wave_db: str | os.PathLike[str] | None = None, reconnect: bool = True) -> Client:
        secret = entity if isinstance(entity, EntitySecret) else load_entity_secret(entity, passphrase)
        client = cls(router, secret, proofs=load_proofs(proofs), wave_db=wave_db, reconnect=reconnect)
        await client._open()
        return client

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _address(self) -> tuple[str, int] | str:
        if self.router.startswith("unix:"):
            return self.router[5:]
        host, sep, port = self.router.rpartition(":")
        if not sep or not port.isdigit():
            raise ClientError(f"router address {self.router!r} is not host:port or unix:PATH")
        return host.strip("[]"), int(port)

    async def _open(self) -> None:
        addr = self._address()
        try:
            if isinstance(addr, str):
                coro = asyncio.open_unix_connection(addr)
            else:
                coro = asyncio.open_connection(addr[0], addr[1])
            reader, writer = await asyncio.wait_for(coro, CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ConnectionClosed(f"cannot connect to router {self.router}: {exc}") from None
        loop = asyncio.get_running_loop()
        first = self._protocol.last_request if self._protocol is not None else 0
        proto = ClientProtocol(self.entity, now=loop.time(), handshake_timeout_s=CONNECT_TIMEOUT_S,
                               first_request=first)
        try:
            done = await self._handshake(proto, reader, writer)
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise ConnectionClosed(f"handshake with router {self.router} failed: {exc!r}") from None
        if isinstance(done, ConnectionTerminated):
            writer.close()
            raise _error_of(done)
        if self._protocol is not None:  # acks given while disconnected still count on the new connection
            for sub_id, seqs in self._protocol.take_unsent_acks().items():
                for seq in seqs:
                    proto.ack(sub_id, seq)
        self.router_id, self.inflight_window = done.router_id, done.inflight_window
        self._protocol, self._writer = proto, writer
        self._proofs_sent = set()
        self._connected.set()
        self._read_task = asyncio.create_task(self._read_loop(proto, reader, writer))

    @staticmethod
    async def _handshake(proto: ClientProtocol, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> HandshakeCompleted | ConnectionTerminated:
        loop = asyncio.get_running_loop()
        while True:
            out = proto.bytes_to_send()
            if out:
                writer.write(out)
            event = proto.next_event()
            if isinstance(event, (HandshakeCompleted, ConnectionTerminated)):
                return event
            assert event is NEED_DATA, f"{event!r} before the handshake completed"
            deadline = proto.next_deadline()
            assert deadline is not None
            try:
                data = await asyncio.wait_for(reader.read(READ_BYTES), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                proto.handle_timer(max(deadline, loop.time()))
                continue
            if data:
                proto.receive_bytes(data, loop.time())
            else:
                proto.connection_lost(loop.time())

    async def close(self) -> None:
        if self._closed:
            return
        for sub in list(self._subs.values()):
            with contextlib.suppress(ClientError, OSError):
                await asyncio.wait_for(sub.close(), 5.0)
        self._flush_acks()
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._read_task
        if self._protocol is not None:
            self._protocol.close()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2.0)
        self._fail_all(ConnectionClosed("client closed"))

    def _fail_all(self, exc: ClientError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        self._pending.clear()

    # ------------------------------------------------------------------ the pump

    def _transmit(self) -> None:
        if self._protocol is None or self._writer is None:
            return
        data = self._protocol.bytes_to_send()
        # A transport that lost its connection is closing before the pump reads the loss: writing to it
        # achieves nothing (the pump fails or resends the requests) and asyncio logs "socket.send()
        # raised exception." from the fifth write on.
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _read_loop(self, proto: ClientProtocol, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            await self._pump(proto, reader, writer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: end the connection rather than leave callers waiting
            log.exception("event=client_pump_failed router=%s", self.router)
            writer.close()
            self._connection_lost(ConnectionClosed(f"client failed reading from the router: {exc!r}"))

    async def _pump(self, proto: ClientProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await reader.read(READ_BYTES)
            except OSError as exc:
                proto.connection_lost(loop.time(), f"connection to the router failed: {exc!r}")
            else:
                if data:
                    proto.receive_bytes(data, loop.time())
                else:
                    proto.connection_lost(loop.time())
            self._transmit()
            while True:
                event = proto.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, ConnectionTerminated):
                    writer.close()
                    self._connection_lost(_error_of(event))
                    return
                self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, MessageDelivered):
            sub = self._subs.get(event.sub_id)
            if sub is None:
                return
            try:
                sub._push(ReceivedMessage.from_raw(event.message, sub, event.seq))
            except WaveError as exc:
                log.warning("event=bad_delivery sub=%s error=%r", event.sub_id, str(exc))
                self._queue_ack(event.sub_id, event.seq)
        elif isinstance(event, SubscriptionClosed):
            sub = self._subs.pop(event.sub_id, None)
            if sub is not None:
                sub._push(SubscriptionEnded(event.code, event.reason))
        elif isinstance(event, (Accepted, Refused, Subscribed, QueryAnswered, StatusReported)):
            pending = self._pending.pop(event.req, None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(event)

    def _connection_lost(self, exc: ConnectionClosed) -> None:
        if self._writer is not None:
            self._writer.close()
        self._connected.clear()
        if self._closed:
            return
        if isinstance(exc, RouterProtocolError) or not self.reconnect:
            # every pending call and subscription gets the typed error: the caller decides what to say
            log.info("event=connection_closed router=%s error=%r", self.router, str(exc))
            self._closed = True
            self._fatal = exc
            self._fail_all(exc)
            for sub in self._subs.values():
                sub._push(exc if isinstance(exc, RouterProtocolError) else
                          SubscriptionEnded(int(ErrorCode.SUBSCRIPTION_ENDED), f"connection lost: {exc}"))
            return
        log.warning("event=connection_lost router=%s error=%r", self.router, str(exc))
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        import random  # only a client that lost its router needs it (a one-shot command never does)

        delay = BACKOFF_MIN_S
        while not self._closed:
            await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                await self._open()
            except ConnectionClosed as exc:
                log.info("event=reconnect_failed router=%s error=%r retry_in=%.1f", self.router, str(exc), delay)
                delay = min(BACKOFF_MAX_S, delay * 2)
                continue
            self.reconnects += 1
            log.info("event=reconnected router=%s", self.router)
            await self._resume()
            return

    async def _resume(self) -> None:
        """After a reconnect: re-subscribe, then resend every request that had no reply."""
        pending = sorted(self._pending.items())
        self._pending.clear()
        proto = self._protocol
        assert proto is not None

        def still_open() -> bool:
            return self._protocol is proto and proto.state is ClientState.OPEN

        if any(p.resend for _req, p in pending) and still_open():
            for proof_id, proof in self._proofs_known.items():
                proto.send_request(FrameType.PROOF, proof)  # the OK answers no pending call: ignored
                self._proofs_sent.add(proof_id)
            self._transmit()
        for sub in list(self._subs.values()):
            try:
                await self._subscribe(sub)
            except ClientError as exc:
                sub._push(SubscriptionEnded(getattr(exc, "code", int(ErrorCode.SUBSCRIPTION_ENDED)),
                                            f"could not resume: {exc}"))
        for req, p in pending:
            if p.resend:  # kept even if the connection dropped again: the next resume resends it
                self._pending[req] = p
                if still_open():
                    proto.resend_request(req, p.kind, p.frame)
            elif not p.future.done():
                p.future.set_exception(ConnectionClosed("connection lost before the reply"))
        self._transmit()

    # ------------------------------------------------------------------ requests

    async def _send_request(self, kind: FrameType, *fields: object, resend: bool = False,
                            sub_id: str | None = None) -> asyncio.Future[Reply]:
        if self._closed:
            raise self._fatal or ConnectionClosed("client is closed")
        if not self._connected.is_set():
            if not self.reconnect:
                raise ConnectionClosed("not connected")
            await self._connected.wait()
        proto = self._protocol
        assert proto is not None
        if sub_id is not None:
            raw, ephemeral = fields
            assert isinstance(raw, bytes) and isinstance(ephemeral, bool)
            req, data = proto.send_subscribe(sub_id, raw, ephemeral)
        else:
            req, data = proto.send_request(kind, *fields)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[req] = _Pending(kind, data, future, resend)
        self._transmit()
        return future

    async def _request(self, expect: type[_R], kind: FrameType, *fields: object, resend: bool = False,
                       sub_id: str | None = None) -> _R:
        reply = await (await self._send_request(kind, *fields, resend=resend, sub_id=sub_id))
        if isinstance(reply, Refused):
            raise refused(reply.code, reply.reason)
        # the protocol admits only the replies a request allows (``protocol._REPLY_KINDS``)
        assert isinstance(reply, expect), f"{kind.name} answered by {reply!r}"
        return reply

    async def _ensure_proof(self, proof: bytes) -> bytes:
        proof_id = object_id(proof)
        if proof_id in self._proofs_sent:
            return proof_id
        # one PROOF per connection even when many publishes start at once: the others wait for it
        pending = self._proofs_sending.get(proof_id)
        if pending is None:
            pending = asyncio.ensure_future(self._request(Accepted, FrameType.PROOF, proof))
            self._proofs_sending[proof_id] = pending
        try:
            await asyncio.shield(pending)
        finally:
            if pending.done():
                self._proofs_sending.pop(proof_id, None)
        self._proofs_sent.add(proof_id)
        self._proofs_known[proof_id] = proof
        return proof_id

    def _proof_for(self, namespace: bytes, permission: str, resource: str) -> bytes:
        return self._proofs.proof_for(namespace, permission, resource, time.time())

    async def publish(self, namespace: str | bytes | os.PathLike[str], uri: str,
                      payload: bytes | str | Sequence[tuple[str, bytes]], *, persist: bool = False) -> str:
        """Publish; returns "accepted" (or "duplicate" for a resend the router already had)."""
        ns = resolve_namespace(namespace)
        objects = payload_objects(payload)
        proof = self._proof_for(ns, "publish", uri)
        proof_id = await self._ensure_proof(proof)
        now, seq = self._stamps.next(time.time())
        msg = sign_message(self.entity, namespace=ns, uri=uri, payload=objects, proof_id=proof_id,
                           now=now, origin_router=self.router_id, persist=persist, seq=seq)
        reply = await self._request(Accepted, FrameType.PUBLISH, msg.raw, resend=True)
        return str(reply.detail)

    def subscribe(self, namespace: str | bytes | os.PathLike[str], pattern: str, identifier: str | None = None, *,
                  auto_ack: bool = True) -> Subscription:
        """A subscription; start it with ``async with`` or ``await sub.start()``. Without an identifier
        the subscription is ephemeral: the router removes it when it closes or the connection drops."""
        ns = resolve_namespace(namespace)
        parse_pattern(pattern)
        ephemeral = identifier is None
        ident = identifier if identifier is not None else "tmp-" + os.urandom(16).hex()
        return Subscription(self, ns, pattern, ident, ephemeral, auto_ack)

    async def _subscribe(self, sub: Subscription) -> None:
        proof = self._proof_for(sub.namespace, "subscribe", sub.pattern)
        proof_id = await self._ensure_proof(proof)
        req = sign_subscribe(self.entity, namespace=sub.namespace, uri=sub.pattern, sub_id=sub.identifier,
                             router_id=self.router_id, proof_id=proof_id, now=time.time())
        self._subs[sub.identifier] = sub
        try:
            reply = await self._request(Subscribed, FrameType.SUBSCRIBE, req.raw, sub.ephemeral,
                                        sub_id=sub.identifier)
        except ClientError:
            self._subs.pop(sub.identifier, None)
            raise
        sub.expiry = reply.expiry
        sub.resumed = reply.resumed
        sub.backlog = reply.backlog

    async def _end_subscription(self, sub: Subscription, remove: bool) -> None:
        self._flush_acks()
        self._forget(sub.identifier)
        if remove and self._connected.is_set():
            with contextlib.suppress(RequestRefused):
                await self.unsubscribe(sub.identifier)

    def _forget(self, identifier: str) -> None:
        self._subs.pop(identifier, None)
        if self._protocol is not None:
            self._protocol.forget_subscription(identifier)

    async def unsubscribe(self, identifier: str) -> int:
        """End the subscriptions of this entity with ``identifier`` at the router (signed)."""
        req = sign_unsubscribe(self.entity, sub_id=identifier, now=time.time())
        reply = await self._request(Accepted, FrameType.UNSUBSCRIBE, req.raw)
        self._forget(identifier)
        n = reply.detail
        return n if isinstance(n, int) else 0

    async def query(self, namespace: str | bytes | os.PathLike[str], pattern: str, *,
                    limit: int = 0) -> list[ReceivedMessage]:
        """Every persisted message matching ``pattern`` (all pages), in URI order."""
        ns = resolve_namespace(namespace)
        parse_pattern(pattern)
        proof = self._proof_for(ns, "query", pattern)
        proof_id = await self._ensure_proof(proof)
        out: list[ReceivedMessage] = []
        after: str | None = None
        while True:
            q = sign_query(self.entity, namespace=ns, uri=pattern, proof_id=proof_id, now=time.time())
            reply = await self._request(QueryAnswered, FrameType.QUERY, q.raw, after, limit)
            out.extend(ReceivedMessage.from_raw(raw) for raw in reply.results)
            #: where the last query was answered: "local" (this router's store) or "designated"
            self.last_query_source = reply.source
            if reply.continuation is None or (limit and len(out) >= limit):
                return out
            after = reply.continuation

    async def status(self) -> dict[str, object]:
        reply = await self._request(StatusReported, FrameType.STATUS)
        return {str(k): v for k, v in reply.status.items()}

    # ------------------------------------------------------------------ acks

    def _queue_ack(self, sub_id: str, seq: int) -> None:
        if self._protocol is None:
            return
        self._protocol.ack(sub_id, seq)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        self._ack_scheduled = False
        if self._protocol is None or not self._connected.is_set():
            return
        self._protocol.send_acks()
        self._transmit()


def _error_of(event: ConnectionTerminated) -> ConnectionClosed:
    if event.protocol_error:
        return RouterProtocolError(event.code, event.reason)
    return ConnectionClosed(event.reason)
