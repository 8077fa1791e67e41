"""The peer load for ``bench --compare``: MQTT 3.1.1 QoS 1, in raw bytes, the same shape as ours.

The publisher encodes its ``PUBLISH`` packets (QoS 1, one packet id each) once into one buffer and
writes slices of it, at most ``--concurrency`` unacknowledged, counting ``PUBACK``\\ s by their fixed
header; the subscriber (QoS 1) answers everything one read brought with the ``PUBACK``\\ s in one write.
The same load generator as :mod:`.load` minus the signatures: MQTT has none, which is the point of the
comparison. Only what the bench sends and expects is encoded and parsed here.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Final

from .load import READ_BYTES, LoadError, connect

__all__ = [
    "PUBACK",
    "PUBLISH",
    "MqttCounter",
    "encode_connect",
    "encode_publish_qos1",
    "encode_remaining_length",
    "encode_subscribe",
    "role_pub",
    "role_sub",
]

CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH: Final = 0x30
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82
SUBACK: Final = 0x90
DISCONNECT: Final = b"\xe0\x00"
#: Poll interval of a subscriber that checks its stop file and clock while the stream is quiet.
POLL_S: Final = 0.1
_ID: Final = struct.Struct(">H")


def encode_remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer (1 to 4 bytes, 7 bits each, low first)."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_remaining_length(len(body)) + body


def _string(text: str) -> bytes:
    raw = text.encode()
    return _ID.pack(len(raw)) + raw


def encode_connect(client_id: str, keepalive_s: int = 60) -> bytes:
    """``CONNECT`` with a clean session."""
    return _packet(CONNECT, _string("MQTT") + bytes((4, 0x02)) + _ID.pack(keepalive_s) + _string(client_id))


def encode_publish_qos1(topic: str, packet_id: int, payload: bytes) -> bytes:
    return _packet(PUBLISH | 0x02, _string(topic) + _ID.pack(packet_id) + payload)


def encode_subscribe(packet_id: int, topic_filter: str) -> bytes:
    """``SUBSCRIBE`` to one filter at QoS 1."""
    return _packet(SUBSCRIBE, _ID.pack(packet_id) + _string(topic_filter) + b"\x01")


class MqttCounter:
    """Splits an MQTT byte stream (split anywhere) into packets: counts ``PUBACK``\\ s, collects the
    packet ids of QoS 1 ``PUBLISH``\\ es (to acknowledge), and remembers the other packet types seen."""

    def __init__(self) -> None:
        self._buf = b""
        self.pubacks = 0
        self.published_ids: list[int] = []
        self.other: list[int] = []

    def feed(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            first = buf[pos]
            length, shift, i = 0, 0, pos + 1
            while True:
                if i >= end:
                    self._buf = buf[pos:]
                    return
                b = buf[i]
                length |= (b & 0x7F) << shift
                shift += 7
                i += 1
                if not b & 0x80:
                    break
            stop = i + length
            if stop > end:
                break
            kind = first & 0xF0
            if kind == PUBACK:
                self.pubacks += 1
            elif kind == PUBLISH and first & 0x06:
                (topic_len,) = _ID.unpack_from(buf, i)
                self.published_ids.append(_ID.unpack_from(buf, i + 2 + topic_len)[0])
            else:
                self.other.append(kind)
            pos = stop
        self._buf = buf[pos:]


def _session(args: argparse.Namespace, client_id: str) -> tuple[socket.socket, MqttCounter]:
    sock = connect(args.router)
    sock.sendall(encode_connect(client_id))
    counter = MqttCounter()
    while CONNACK not in counter.other:
        data = sock.recv(READ_BYTES)
        if not data:
            raise LoadError("the broker closed the connection before CONNACK")
        counter.feed(data)
    counter.other.clear()
    return sock, counter


def role_pub(args: argparse.Namespace) -> dict[str, Any]:
    from .workers import wait_for_go

    d = Path(args.dir)
    deadline = time.monotonic() + args.timeout
    payload = os.urandom(args.payload)
    frames = [encode_publish_qos1(f"{args.prefix}/p{args.tag}/m{i % 100}", i % 65535 + 1, payload)
              for i in range(args.messages)]
    offsets = [0]
    for f in frames:
        offsets.append(offsets[-1] + len(f))
    buf = memoryview(b"".join(frames))
    sock, counter = _session(args, f"bench-pub-{args.tag}-{os.getpid()}")
    with sock:
        (d / f"pub-{args.prefix}-{args.tag}.ready").write_text(str(len(buf)))
        wait_for_go(d, deadline)
        t0, n, sent = time.perf_counter(), args.messages, 0
        while counter.pubacks < n:
            if sent < n and sent - counter.pubacks <= args.concurrency // 2:
                stop = min(n, counter.pubacks + args.concurrency)
                sock.sendall(buf[offsets[sent]:offsets[stop]])
                sent = stop
            data = sock.recv(READ_BYTES)
            if not data or time.monotonic() > deadline:
                raise LoadError(f"publishing to the broker stopped after {counter.pubacks} PUBACKs")
            counter.feed(data)
        elapsed = time.perf_counter() - t0
        sock.sendall(DISCONNECT)
    return {"published": counter.pubacks, "refused": 0, "first_refusal": "", "seconds": elapsed,
            "frame_bytes": len(buf)}


def role_sub(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.dir)
    deadline = time.monotonic() + args.timeout
    sock, counter = _session(args, f"bench-sub-{os.getpid()}")
    with sock:
        sock.sendall(encode_subscribe(1, f"{args.prefix}/#"))
        while SUBACK not in counter.other:
            data = sock.recv(READ_BYTES)
            if not data:
                raise LoadError("the broker closed the connection before SUBACK")
            counter.feed(data)
        (d / f"sub-{args.prefix}.ready").write_text("1")
        sock.settimeout(POLL_S)
        received, first, last = 0, 0.0, 0.0
        while received < args.messages:
            try:
                data = sock.recv(READ_BYTES)
            except TimeoutError:
                if (d / f"sub-{args.prefix}.stop").exists() or time.monotonic() > deadline:
                    break
                continue
            if not data:
                raise LoadError(f"the broker closed the subscriber's connection after {received} messages")
            now = time.time()
            counter.feed(data)
            ids, counter.published_ids = counter.published_ids, []
            if ids:
                first = first or now
                last = now
                received += len(ids)
                sock.sendall(b"".join(b"\x40\x02" + _ID.pack(i) for i in ids))
        sock.sendall(DISCONNECT)
    return {"received": received, "first_wall": first, "last_wall": last, "seconds": last - first,
            "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
