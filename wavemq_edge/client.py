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
duplicates by message id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from .router.errors import ErrorCode
from .uri import parse_pattern
from .wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Message,
    NoProofError,
    Proof,
    Statement,
    VerificationError,
    WaveError,
    WaveStore,
    build_proof,
    default_database_path,
    format_id,
    load_entity,
    load_entity_secret,
    load_object,
    looks_like_id,
    object_id,
    parse_id,
    sign_handshake,
    sign_message,
    sign_query,
    sign_subscribe,
    sign_unsubscribe,
    verify_proof,
)
from .wire import NEED_DATA, Frame, FrameDecoder, FrameType, RemoteWireError, encode_frame

__all__ = [
    "DEFAULT_ROUTER",
    "Client",
    "ClientError",
    "ConnectionClosed",
    "ReceivedMessage",
    "RequestRefused",
    "Subscription",
    "SubscriptionEnded",
    "resolve_namespace",
]

log = logging.getLogger("wavemq_edge.client")

DEFAULT_ROUTER: Final = "127.0.0.1:4516"
READ_BYTES: Final = 65536
BACKOFF_MIN_S: Final = 0.2
BACKOFF_MAX_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 10.0


class ClientError(Exception):
    """Base of the client's errors."""


class ConnectionClosed(ClientError):
    """The router connection is gone (and ``reconnect`` is off, or the client was closed)."""


class RequestRefused(ClientError):
    """The router refused a request; ``code`` is a ``router.ErrorCode`` number."""

    def __init__(self, code: int, reason: str) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = "UNKNOWN"
        super().__init__(f"refused ({code} {name}): {reason}")
        self.code = code
        self.reason = reason


class SubscriptionEnded(ClientError):
    """The router ended the subscription (expired, proof expired or revoked, unsubscribed)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"subscription ended ({code}): {reason}")
        self.code = code
        self.reason = reason


def resolve_namespace(namespace: str | bytes | os.PathLike[str]) -> bytes:
    """A namespace given as its id bytes, a 48-character printable hash, or an entity file."""
    if isinstance(namespace, bytes):
        return namespace
    text = os.fspath(namespace)
    if looks_like_id(text) and not os.path.exists(text):
        return parse_id(text)
    try:
        return load_entity(text).id
    except (WaveError, OSError) as exc:
        raise ClientError(f"namespace {text!r}: not a namespace hash and not a readable entity file ({exc})") from None


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    namespace: bytes
    uri: str
    payload: tuple[tuple[str, bytes], ...]
    source: bytes
    timestamp_ms: int
    persist: bool
    raw: bytes
    subscription: Subscription | None = field(default=None, compare=False, repr=False)
    seq: int = -1

    @classmethod
    def from_raw(cls, raw: bytes, subscription: Subscription | None = None, seq: int = -1) -> ReceivedMessage:
        msg = Message.parse(raw)
        return cls(msg.namespace, msg.uri, msg.payload, msg.src, msg.timestamp_ms, msg.persist, raw, subscription, seq)

    @property
    def data(self) -> bytes:
        """The content of the first payload object (b"" if there is none)."""
        return self.payload[0][1] if self.payload else b""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    async def ack(self) -> None:
        if self.subscription is not None and self.seq >= 0:
            self.subscription.ack_seq(self.seq)


class Subscription:
    """An async iterator of ``ReceivedMessage``. Use as ``async with client.subscribe(...) as sub``."""

    def __init__(self, client: Client, namespace: bytes, pattern: str, identifier: str, ephemeral: bool,
                 auto_ack: bool) -> None:
        self.client = client
        self.namespace = namespace
        self.pattern = pattern
        self.identifier = identifier
        self.ephemeral = ephemeral
        self.auto_ack = auto_ack
        self.expiry: int = 0
        self.backlog: int = 0
        self.resumed: bool = False
        self._queue: asyncio.Queue[ReceivedMessage | SubscriptionEnded] = asyncio.Queue()
        self._last: ReceivedMessage | None = None
        self._active = False
        self._ended: SubscriptionEnded | None = None

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        if not self._active:
            await self.client._subscribe(self)
            self._active = True

    async def close(self, unsubscribe: bool | None = None) -> None:
        """Stop receiving. An ephemeral subscription (no identifier given) is removed; a durable one
        keeps queueing at the router unless ``unsubscribe=True``."""
        if self._last is not None and self.auto_ack:
            await self._last.ack()
            self._last = None
        if not self._active:
            return
        self._active = False
        remove = self.ephemeral if unsubscribe is None else unsubscribe
        await self.client._end_subscription(self, remove)

    def ack_seq(self, seq: int) -> None:
        self.client._queue_ack(self.identifier, seq)

    def _push(self, item: ReceivedMessage | SubscriptionEnded) -> None:
        self._queue.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[ReceivedMessage]:
        return self

    async def __anext__(self) -> ReceivedMessage:
        if self._last is not None and self.auto_ack:
            await self._last.ack()
            self._last = None
        if self._ended is not None:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, SubscriptionEnded):
            self._ended = item
            self._active = False
            raise item
        self._last = item
        return item


@dataclass
class _Pending:
    frame: bytes
    future: asyncio.Future[Frame]
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
        self._wave_db = Path(wave_db) if wave_db is not None else None
        self._given_proofs: list[tuple[bytes, Proof]] = []
        for raw in proofs:
            self._given_proofs.append((raw, Proof.from_bytes(raw)))
        self._proof_cache: dict[tuple[bytes, str, str], bytes] = {}
        self._proofs_sent: set[bytes] = set()
        #: every proof this client sent, re-sent after a reconnect before pending publishes
        self._proofs_known: dict[bytes, bytes] = {}
        self._proofs_sending: dict[bytes, asyncio.Future[Frame]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder(1 << 24)
        self._req = 0
        self._pending: dict[int, _Pending] = {}
        self._query_results: dict[int, list[bytes]] = {}
        self._subs: dict[str, Subscription] = {}
        self._acks: dict[str, list[int]] = {}
        self._ack_scheduled = False
        self._read_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closed = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self._last_publish_ms = 0
        self._publish_seq = 0
        self.last_query_source = ""

    # ------------------------------------------------------------------ connect / close

    @classmethod
    async def connect(cls, router: str = DEFAULT_ROUTER, *, entity: EntitySecret | str | os.PathLike[str],
                      passphrase: str | None = None, proofs: Sequence[str | os.PathLike[str] | bytes] = (),
                      wave_db: str | os.PathLike[str] | None = None, reconnect: bool = True) -> Client:
        secret = entity if isinstance(entity, EntitySecret) else load_entity_secret(entity, passphrase)
        proof_bytes: list[bytes] = []
        for p in proofs:
            if isinstance(p, bytes):
                proof_bytes.append(p)
            else:
                obj = load_object(p)
                if not isinstance(obj, Proof):
                    raise ClientError(f"{p}: expected a proof file (wv rtprove), found a {type(obj).__name__}")
                proof_bytes.append(obj.raw)
        client = cls(router, secret, proofs=proof_bytes, wave_db=wave_db, reconnect=reconnect)
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
        self._reader, self._writer = reader, writer
        self._decoder = FrameDecoder(1 << 24)
        self._proofs_sent = set()
        try:
            hello = await asyncio.wait_for(self._read_frame(), CONNECT_TIMEOUT_S)
            if hello.type is not FrameType.HELLO or len(hello.fields) < 5:
                raise ConnectionClosed(f"router {self.router} did not greet with HELLO ({hello.type.name})")
            router_id, challenge = hello.fields[1], hello.fields[2]
            if not isinstance(router_id, bytes) or not isinstance(challenge, bytes):
                raise ConnectionClosed("malformed HELLO")
            self.router_id = router_id
            window = hello.fields[4]
            self.inflight_window = window if isinstance(window, int) else 0
            writer.write(encode_frame(FrameType.AUTH, self.entity.entity.raw, sign_handshake(self.entity, challenge)))
            welcome = await asyncio.wait_for(self._read_frame(), CONNECT_TIMEOUT_S)
            if welcome.type is FrameType.ERROR:
                raise ConnectionClosed(f"router refused authentication: {welcome.fields[1]}")
            if welcome.type is not FrameType.WELCOME:
                raise ConnectionClosed(f"expected WELCOME, got {welcome.type.name}")
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RemoteWireError) as exc:
            writer.close()
            raise ConnectionClosed(f"handshake with router {self.router} failed: {exc!r}") from None
        except ConnectionClosed:
            writer.close()
            raise
        self._connected.set()
        self._read_task = asyncio.create_task(self._read_loop())

    async def _read_frame(self) -> Frame:
        assert self._reader is not None
        while True:
            frame = self._decoder.next_frame()
            if frame is not NEED_DATA:
                assert isinstance(frame, Frame)
                return frame
            data = await self._reader.read(READ_BYTES)
            if not data:
                raise ConnectionClosed("router closed the connection")
            self._decoder.receive_bytes(data)

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

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await self._read_frame()
                self._dispatch(frame)
        except asyncio.CancelledError:
            raise
        except (ConnectionClosed, OSError, RemoteWireError) as exc:
            self._connection_lost(exc)

    def _dispatch(self, frame: Frame) -> None:
        kind = frame.type
        f = frame.fields
        if kind is FrameType.DELIVER:
            sub_id, seq, raw = f
            sub = self._subs.get(str(sub_id))
            if sub is not None and isinstance(raw, bytes) and isinstance(seq, int):
                try:
                    sub._push(ReceivedMessage.from_raw(raw, sub, seq))
                except WaveError as exc:
                    log.warning("event=bad_delivery sub=%s error=%r", sub_id, str(exc))
                    self._queue_ack(str(sub_id), seq)
            return
        if kind is FrameType.SUB_END:
            sub_id, code, reason = f
            sub = self._subs.pop(str(sub_id), None)
            if sub is not None:
                sub._push(SubscriptionEnded(int(code), str(reason)))  # type: ignore[call-overload]
            return
        if kind is FrameType.RESULT:
            req, raw = f
            if isinstance(req, int) and isinstance(raw, bytes):
                self._query_results.setdefault(req, []).append(raw)
            return
        if kind is FrameType.PING:
            if self._writer is not None:
                self._writer.write(encode_frame(FrameType.PONG, *f))
            return
        if kind is FrameType.ERROR:
            self._connection_lost(ConnectionClosed(f"router closed the connection: ({f[0]}) {f[1]}"))
            return
        if kind in (FrameType.OK, FrameType.REFUSED, FrameType.SUBSCRIBED, FrameType.QUERY_END,
                    FrameType.STATUS_REPLY):
            req = f[0]
            pending = self._pending.pop(req, None) if isinstance(req, int) else None
            if pending is not None and not pending.future.done():
                pending.future.set_result(frame)

    def _connection_lost(self, exc: BaseException) -> None:
        if self._writer is not None:
            self._writer.close()
        self._connected.clear()
        if self._closed:
            return
        if not self.reconnect:
            self._closed = True
            self._fail_all(ConnectionClosed(str(exc)))
            for sub in self._subs.values():
                sub._push(SubscriptionEnded(int(ErrorCode.SUBSCRIPTION_ENDED), f"connection lost: {exc}"))
            return
        log.warning("event=connection_lost router=%s error=%r", self.router, str(exc))
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
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
        if any(p.resend for _req, p in pending) and self._writer is not None:
            for proof_id, proof in self._proofs_known.items():
                self._req += 1
                self._writer.write(encode_frame(FrameType.PROOF, self._req, proof, max_frame_bytes=1 << 24))
                self._proofs_sent.add(proof_id)
        for sub in list(self._subs.values()):
            try:
                await self._subscribe(sub)
            except ClientError as exc:
                sub._push(SubscriptionEnded(getattr(exc, "code", int(ErrorCode.SUBSCRIPTION_ENDED)),
                                            f"could not resume: {exc}"))
        for req, p in pending:
            if p.resend and self._writer is not None:
                self._pending[req] = p
                self._writer.write(p.frame)
            elif not p.future.done():
                p.future.set_exception(ConnectionClosed("connection lost before the reply"))

    # ------------------------------------------------------------------ requests

    async def _send_request(self, kind: FrameType, *fields: object,
                            resend: bool = False) -> tuple[int, asyncio.Future[Frame]]:
        if self._closed:
            raise ConnectionClosed("client is closed")
        if not self._connected.is_set():
            if not self.reconnect:
                raise ConnectionClosed("not connected")
            await self._connected.wait()
        self._req += 1
        req = self._req
        data = encode_frame(kind, req, *fields, max_frame_bytes=1 << 24)
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[req] = _Pending(data, future, resend)
        assert self._writer is not None
        self._writer.write(data)
        return req, future

    async def _request(self, kind: FrameType, *fields: object, resend: bool = False) -> Frame:
        _req, future = await self._send_request(kind, *fields, resend=resend)
        return self._check(await future)

    @staticmethod
    def _check(frame: Frame) -> Frame:
        if frame.type is FrameType.REFUSED:
            raise RequestRefused(int(frame.fields[1]), str(frame.fields[2]))  # type: ignore[call-overload]
        return frame

    def _proof_for(self, namespace: bytes, permission: str, resource: str) -> bytes:
        key = (namespace, permission, resource)
        cached = self._proof_cache.get(key)
        if cached is not None:
            return cached
        pattern = parse_pattern(resource)
        now = time.time()
        for raw, _proof in self._given_proofs:
            try:
                result = verify_proof(raw, now=now, revoked=frozenset())
                result.require(self.entity.id, namespace, PSET_WAVEMQ, permission, pattern)
            except VerificationError:
                continue
            self._proof_cache[key] = raw
            return raw
        db = self._wave_db or Path(os.environ.get("WAVE_HOME") or default_database_path())
        if not db.exists():
            raise ClientError(
                f"no proof for wavemq:{permission}@{format_id(namespace)}/{resource}: none of the given proof files "
                f"grants it and there is no WAVE database at {db} (run `wv rtgrant`, or pass --proof)"
            )
        try:
            with WaveStore(db) as store:
                stmt = Statement(PSET_WAVEMQ, frozenset((permission,)), pattern)
                raw = build_proof(store, self.entity.id, namespace, [stmt], now=now).to_bytes()
        except NoProofError as exc:
            raise ClientError(f"{exc} (WAVE database {db})") from None
        except WaveError as exc:
            raise ClientError(f"cannot build a proof from the WAVE database {db}: {exc}") from None
        if len(self._proof_cache) > 256:
            self._proof_cache.clear()
        self._proof_cache[key] = raw
        return raw

    async def _ensure_proof(self, proof: bytes) -> bytes:
        proof_id = object_id(proof)
        if proof_id in self._proofs_sent:
            return proof_id
        # one PROOF per connection even when many publishes start at once: the others wait for it
        pending = self._proofs_sending.get(proof_id)
        if pending is None:
            pending = asyncio.ensure_future(self._request(FrameType.PROOF, proof))
            self._proofs_sending[proof_id] = pending
        try:
            await asyncio.shield(pending)
        finally:
            if pending.done():
                self._proofs_sending.pop(proof_id, None)
        self._proofs_sent.add(proof_id)
        self._proofs_known[proof_id] = proof
        return proof_id

    async def publish(self, namespace: str | bytes | os.PathLike[str], uri: str,
                      payload: bytes | str | Sequence[tuple[str, bytes]], *, persist: bool = False) -> str:
        """Publish; returns "accepted" (or "duplicate" for a resend the router already had)."""
        ns = resolve_namespace(namespace)
        if isinstance(payload, str):
            objects: list[tuple[str, bytes]] = [("text/plain", payload.encode("utf-8"))]
        elif isinstance(payload, (bytes, bytearray)):
            objects = [("application/octet-stream", bytes(payload))]
        else:
            objects = list(payload)
        proof = self._proof_for(ns, "publish", uri)
        proof_id = await self._ensure_proof(proof)
        now, seq = self._next_stamp()
        msg = sign_message(self.entity, namespace=ns, uri=uri, payload=objects, proof_id=proof_id,
                           now=now, origin_router=self.router_id, persist=persist, seq=seq)
        reply = await self._request(FrameType.PUBLISH, msg.raw, resend=True)
        return str(reply.fields[1])

    def _next_stamp(self) -> tuple[float, int]:
        """(timestamp, seq) for the next publish. The message id derives from the signed content, so two
        identical payloads published to one URI within the same millisecond would be one message to the
        router's duplicate filter; ``seq`` counts publishes within a millisecond and tells them apart."""
        now = time.time()
        ms = int(now * 1000)
        if ms == self._last_publish_ms:
            self._publish_seq += 1
        else:
            self._last_publish_ms = ms
            self._publish_seq = 0
        return now, self._publish_seq

    def subscribe(self, namespace: str | bytes | os.PathLike[str], pattern: str, identifier: str | None = None, *,
                  auto_ack: bool = True) -> Subscription:
        """A subscription; start it with ``async with`` or ``await sub.start()``. Without an identifier
        the subscription is ephemeral: the router removes it when it closes or the connection drops."""
        ns = resolve_namespace(namespace)
        parse_pattern(pattern)
        ephemeral = identifier is None
        ident = identifier if identifier is not None else "tmp-" + uuid.uuid4().hex
        return Subscription(self, ns, pattern, ident, ephemeral, auto_ack)

    async def _subscribe(self, sub: Subscription) -> None:
        proof = self._proof_for(sub.namespace, "subscribe", sub.pattern)
        proof_id = await self._ensure_proof(proof)
        req = sign_subscribe(self.entity, namespace=sub.namespace, uri=sub.pattern, sub_id=sub.identifier,
                             router_id=self.router_id, proof_id=proof_id, now=time.time())
        self._subs[sub.identifier] = sub
        try:
            reply = await self._request(FrameType.SUBSCRIBE, req.raw, sub.ephemeral)
        except ClientError:
            self._subs.pop(sub.identifier, None)
            raise
        _req, _sid, expiry, resumed, backlog = reply.fields
        sub.expiry = int(expiry)  # type: ignore[call-overload]
        sub.resumed = bool(resumed)
        sub.backlog = int(backlog)  # type: ignore[call-overload]

    async def _end_subscription(self, sub: Subscription, remove: bool) -> None:
        self._flush_acks()
        self._subs.pop(sub.identifier, None)
        if remove and self._connected.is_set():
            with contextlib.suppress(RequestRefused):
                await self.unsubscribe(sub.identifier)

    async def unsubscribe(self, identifier: str) -> int:
        """End the subscriptions of this entity with ``identifier`` at the router (signed)."""
        req = sign_unsubscribe(self.entity, sub_id=identifier, now=time.time())
        reply = await self._request(FrameType.UNSUBSCRIBE, req.raw)
        self._subs.pop(identifier, None)
        n = reply.fields[1]
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
            req_no, future = await self._send_request(FrameType.QUERY, q.raw, after, limit)
            try:
                reply = self._check(await future)
            finally:
                results = self._query_results.pop(req_no, [])
            for raw in results:
                out.append(ReceivedMessage.from_raw(raw))
            _req, _count, continuation, source = reply.fields
            #: where the last query was answered: "local" (this router's store) or "designated"
            self.last_query_source = str(source)
            if continuation is None or (limit and len(out) >= limit):
                return out
            after = str(continuation)

    async def status(self) -> dict[str, object]:
        reply = await self._request(FrameType.STATUS)
        status = reply.fields[1]
        return dict(status) if isinstance(status, dict) else {}

    # ------------------------------------------------------------------ acks

    def _queue_ack(self, sub_id: str, seq: int) -> None:
        self._acks.setdefault(sub_id, []).append(seq)
        if not self._ack_scheduled:
            self._ack_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_acks)

    def _flush_acks(self) -> None:
        self._ack_scheduled = False
        if not self._acks or self._writer is None or not self._connected.is_set():
            return
        for sub_id, seqs in self._acks.items():
            self._writer.write(encode_frame(FrameType.DACK, sub_id, seqs, max_frame_bytes=1 << 24))
        self._acks.clear()
