"""What a client hands to its user: received messages, subscriptions as async iterators, namespaces."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from ..wave import Message, WaveError, load_entity, looks_like_id, parse_id
from .errors import ClientError

if TYPE_CHECKING:
    from .connection import Client

__all__ = ["PublishStamps", "ReceivedMessage", "Subscription", "payload_objects", "resolve_namespace"]


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


def payload_objects(payload: bytes | str | Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """What ``publish`` takes, as (content type, bytes) objects: text, bytes, or the objects themselves."""
    if isinstance(payload, str):
        return [("text/plain", payload.encode("utf-8"))]
    if isinstance(payload, (bytes, bytearray)):
        return [("application/octet-stream", bytes(payload))]
    return list(payload)


class PublishStamps:
    """(timestamp, seq) for each publish. The message id derives from the signed content, so two
    identical payloads published to one URI within the same millisecond would be one message to the
    router's duplicate filter; ``seq`` counts publishes within a millisecond and tells them apart."""

    def __init__(self) -> None:
        self._last_ms = 0
        self._seq = 0

    def next(self, now: float) -> tuple[float, int]:
        ms = int(now * 1000)
        if ms == self._last_ms:
            self._seq += 1
        else:
            self._last_ms = ms
            self._seq = 0
        return now, self._seq


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
    """An async iterator of ``ReceivedMessage``. Use as ``async with client.subscribe(...) as sub``.

    The iteration ends by raising the error that ended it: ``SubscriptionEnded`` when the router (or a
    lost connection without reconnect) ended it, ``RouterProtocolError`` when the router broke the
    protocol; after that, ``StopAsyncIteration``."""

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
        self._queue: asyncio.Queue[ReceivedMessage | ClientError] = asyncio.Queue()
        self._last: ReceivedMessage | None = None
        self._active = False
        self._ended: ClientError | None = None

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

    def _push(self, item: ReceivedMessage | ClientError) -> None:
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
        if isinstance(item, ClientError):
            self._ended = item
            self._active = False
            raise item
        self._last = item
        return item

