"""The bench's load generator: pre-signed messages, encoded once into frames, written from one buffer.

A bench that signs, encodes and awaits each publish through the asyncio client spends more CPU per
message than the router does, and then measures itself. Here the publisher signs every message before
the measured window (:func:`presign`), encodes the ``PUBLISH`` frames once into one buffer
(:func:`encode_publish_frames`) and, in the window, only writes slices of that buffer and counts the
``OK`` replies by their first bytes (:class:`ReplyCounter`). The subscriber acknowledges everything one
read brought in one ``DACK`` frame. Blocking sockets, no event loop: one client core outruns the router.

The handshake, the ``PROOF`` and the ``SUBSCRIBE`` go through the client's sans-I/O
:class:`~wavemq_edge.client.protocol.ClientProtocol`, so the load speaks the real protocol.
"""

from __future__ import annotations

import bisect
import select
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ..client.events import (
    Accepted,
    ConnectionTerminated,
    Event,
    HandshakeCompleted,
    MessageDelivered,
    Refused,
    Subscribed,
    SubscriptionClosed,
)
from ..client.protocol import ClientProtocol
from ..wave import EntitySecret, Message, object_id, sign_message
from ..wire import NEED_DATA, FrameType, decode_body, encode_frame

__all__ = [
    "READ_BYTES",
    "Consumed",
    "LoadError",
    "ReplyCounter",
    "connect",
    "consume",
    "encode_publish_frames",
    "exchange",
    "handshake",
    "presign",
    "publish_paced",
    "publish_saturated",
    "send_proof",
]

#: Bytes asked for per read.
READ_BYTES: Final = 1 << 18
#: Seconds one connect, handshake or request may take.
IO_TIMEOUT_S: Final = 20.0
#: Seconds a paced publisher or a subscriber waits for input before it checks its clock and stop file.
POLL_S: Final = 0.1

_PREFIX: Final = struct.Struct(">I")
#: The first two bytes of an ``OK`` / ``REFUSED`` frame body: a CBOR array header, then the type.
_OK_HEAD: Final = bytes((0x83, int(FrameType.OK)))
_REFUSED_HEAD: Final = bytes((0x84, int(FrameType.REFUSED)))


class LoadError(Exception):
    """The router refused or dropped the load (the message says what and where)."""


def connect(address: str, timeout: float = IO_TIMEOUT_S) -> socket.socket:
    """A blocking TCP connection to ``host:port`` with ``timeout`` on every call."""
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _pump(sock: socket.socket, proto: ClientProtocol) -> Event:
    """Write what ``proto`` has to send, then read until it has an event; return that event."""
    while True:
        out = proto.bytes_to_send()
        if out:
            sock.sendall(out)
        event = proto.next_event()
        if event is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            if isinstance(event, ConnectionTerminated):
                raise LoadError(f"router closed the connection: {event.reason}")
            return event
        data = sock.recv(READ_BYTES)
        if not data:
            proto.connection_lost(time.monotonic())
        else:
            proto.receive_bytes(data, time.monotonic())


def handshake(sock: socket.socket, entity: EntitySecret) -> tuple[ClientProtocol, bytes]:
    """HELLO / AUTH / WELCOME; returns the open protocol and the router's id."""
    proto = ClientProtocol(entity, now=time.monotonic(), handshake_timeout_s=IO_TIMEOUT_S)
    event = _pump(sock, proto)
    if not isinstance(event, HandshakeCompleted):
        raise LoadError(f"handshake: unexpected {event!r}")
    return proto, event.router_id


def exchange(sock: socket.socket, proto: ClientProtocol, req: int,
             delivered: list[MessageDelivered] | None = None) -> Event:
    """The reply to request ``req``; deliveries that arrive first go to ``delivered`` (a subscription's
    backlog may precede its ``SUBSCRIBED``)."""
    while True:
        event = _pump(sock, proto)
        if isinstance(event, MessageDelivered) and delivered is not None:
            delivered.append(event)
        elif isinstance(event, SubscriptionClosed):
            raise LoadError(f"subscription {event.sub_id} ended: ({event.code}) {event.reason}")
        elif isinstance(event, Refused) and event.req == req:
            raise LoadError(f"request refused: ({event.code}) {event.reason}")
        elif isinstance(event, (Accepted, Subscribed)) and event.req == req:
            return event


def send_proof(sock: socket.socket, proto: ClientProtocol, proof: bytes) -> bytes:
    """Send ``PROOF`` and wait for its ``OK``; returns the proof id messages refer to."""
    req, _ = proto.send_request(FrameType.PROOF, proof)
    exchange(sock, proto, req)
    return object_id(proof)


def presign(entity: EntitySecret, *, namespace: bytes, proof_id: bytes, router_id: bytes, uris: Sequence[str],
            payload: bytes, stamps: Sequence[float]) -> list[bytes]:
    """One signed message per stamp (its timestamp), URIs taken in turn; ``seq`` keeps ids distinct."""
    objects = [("b", payload)]
    return [sign_message(entity, namespace=namespace, uri=uris[i % len(uris)], payload=objects, proof_id=proof_id,
                         now=stamp, origin_router=router_id, seq=i).raw
            for i, stamp in enumerate(stamps)]


def encode_publish_frames(messages: Sequence[bytes], first_req: int) -> tuple[bytes, list[int]]:
    """``PUBLISH`` frames for ``messages`` with request numbers from ``first_req``, in one buffer, and
    the offset of each frame in it (plus the end: frame i is ``buf[offsets[i]:offsets[i + 1]]``)."""
    frames = [encode_frame(FrameType.PUBLISH, first_req + i, raw) for i, raw in enumerate(messages)]
    offsets = [0]
    for f in frames:
        offsets.append(offsets[-1] + len(f))
    return b"".join(frames), offsets


class ReplyCounter:
    """Counts the ``OK`` and ``REFUSED`` frames in a byte stream split anywhere, without decoding an
    ``OK``: its length prefix and first two bytes are enough. Any other frame is decoded and refused
    (a publisher's connection carries nothing else)."""

    def __init__(self) -> None:
        self._buf = b""
        self.ok = 0
        self.refused = 0
        self.first_refusal = ""
        #: a paced publisher's worst lateness (seconds after a frame's due time that it was written)
        self.late_s = 0.0

    @property
    def replies(self) -> int:
        return self.ok + self.refused

    def feed(self, data: bytes) -> int:
        """Count the complete frames in ``data`` (after what was buffered); returns how many."""
        buf = self._buf + data if self._buf else data
        pos, end, n = 0, len(buf), 0
        while end - pos >= 4:
            (length,) = _PREFIX.unpack_from(buf, pos)
            stop = pos + 4 + length
            if stop > end:
                break
            head = buf[pos + 4:pos + 6]
            if head == _OK_HEAD:
                self.ok += 1
            elif head == _REFUSED_HEAD:
                self.refused += 1
                if not self.first_refusal:
                    self.first_refusal = repr(decode_body(buf[pos + 4:stop]).fields)
            else:
                raise LoadError(f"unexpected frame on a publishing connection: {decode_body(buf[pos + 4:stop])!r}")
            n += 1
            pos = stop
        self._buf = buf[pos:]
        return n


def publish_saturated(sock: socket.socket, buf: bytes, offsets: Sequence[int], window: int,
                      deadline: float) -> ReplyCounter:
    """Write the frames of ``buf`` keeping at most ``window`` unanswered, refilling when half is answered
    (so each write carries many frames); return once every frame has its reply."""
    view = memoryview(buf)
    n = len(offsets) - 1
    counter = ReplyCounter()
    sent = 0
    while counter.replies < n:
        if sent < n and sent - counter.replies <= window // 2:
            end = min(n, counter.replies + window)
            sock.sendall(view[offsets[sent]:offsets[end]])
            sent = end
        _read_replies(sock, counter, deadline)
    return counter


def publish_paced(sock: socket.socket, buf: bytes, offsets: Sequence[int], due: Sequence[float], window: int,
                  deadline: float) -> ReplyCounter:
    """Write frame i at wall-clock time ``due[i]`` (frames that fell due together in one write), at most
    ``window`` unanswered; return once every frame has its reply."""
    view = memoryview(buf)
    n = len(offsets) - 1
    counter = ReplyCounter()
    sent = 0
    while counter.replies < n:
        now = time.time()
        if sent < n:
            k = min(bisect.bisect_right(due, now, lo=sent), counter.replies + window)
            if k > sent:
                counter.late_s = max(counter.late_s, now - due[sent])
                sock.sendall(view[offsets[sent]:offsets[k]])
                sent = k
        wait = due[sent] - time.time() if sent < n and sent - counter.replies < window else POLL_S
        readable, _, _ = select.select([sock], [], [], max(0.0, min(wait, POLL_S)))
        if readable:
            _read_replies(sock, counter, deadline)
        elif time.monotonic() > deadline:
            raise LoadError(f"publishing did not finish in time: {counter.replies} of {n} answered")
    return counter


def _read_replies(sock: socket.socket, counter: ReplyCounter, deadline: float) -> None:
    if time.monotonic() > deadline:
        raise LoadError(f"publishing did not finish in time ({counter.replies} answered)")
    data = sock.recv(READ_BYTES)
    if not data:
        raise LoadError(f"router closed the publishing connection after {counter.replies} replies")
    counter.feed(data)


class Consumed:
    """What a subscriber received: the count, wall-clock times of the first and last receipt, and the
    latencies (receipt minus the message's signed timestamp) when asked for."""

    def __init__(self, want_latency: bool) -> None:
        self.received = 0
        self.first = 0.0
        self.last = 0.0
        self.want_latency = want_latency
        self.latencies: list[float] = []

    def take(self, proto: ClientProtocol, event: MessageDelivered, now: float) -> None:
        proto.ack(event.sub_id, event.seq)
        if not self.received:
            self.first = now
        self.last = now
        self.received += 1
        if self.want_latency:
            self.latencies.append(now - Message.parse(event.message).timestamp_ms / 1000.0)


def consume(sock: socket.socket, proto: ClientProtocol, expected: int, stop: Path, deadline: float,
            result: Consumed) -> Consumed:
    """Receive deliveries until ``expected`` arrived, or the ``stop`` file exists while the stream is
    quiet (the orchestrator saw the router's queues empty: the rest was dropped), or ``deadline``;
    everything one read brought is acknowledged in one ``DACK``."""
    sock.settimeout(POLL_S)
    now = time.time()
    while True:
        # events first: the protocol may hold deliveries that came with the SUBSCRIBED reply
        while True:
            event = proto.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, MessageDelivered):
                result.take(proto, event, now)
            elif isinstance(event, (ConnectionTerminated, SubscriptionClosed)):
                raise LoadError(f"subscription ended after {result.received} messages: {event!r}")
        _send_acks(sock, proto)
        if result.received >= expected:
            return result
        try:
            data = sock.recv(READ_BYTES)
        except TimeoutError:
            if stop.exists() or time.monotonic() > deadline:
                return result
            continue
        now = time.time()
        if not data:
            raise LoadError(f"router closed the subscriber's connection after {result.received} messages")
        proto.receive_bytes(data, time.monotonic())


def _send_acks(sock: socket.socket, proto: ClientProtocol) -> None:
    proto.send_acks()
    out = proto.bytes_to_send()
    if out:
        sock.sendall(out)
