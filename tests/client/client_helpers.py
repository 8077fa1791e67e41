"""Helpers for the client tests: a ``ClientProtocol`` joined to a real ``AgentSession`` in memory.

The namespace, entities and core come from ``tests/router/router_helpers.py`` (fixed wall clock ``T0``,
monotonic time from 0.0, a core on a memory store; ``conftest.py`` puts that directory on the path).
``Link`` moves bytes both ways and hands each side's bytes over in one
of three ways (``FEEDS``): whole, byte by byte, or cut one frame plus a few bytes of the next at a time
(every frame arrives with trailing bytes). A module with its own name, not a conftest, so tests import
it explicitly without clashing with other directories' helpers."""

from __future__ import annotations

import struct
from collections.abc import Callable

from router_helpers import T0
from router_helpers import make_core as router_make_core

from wavemq_edge.client import ClientProtocol
from wavemq_edge.client.events import Event
from wavemq_edge.router import AgentSession, RouterCore, RouterOptions
from wavemq_edge.storage import QueueLimits
from wavemq_edge.wave import (
    EntitySecret,
)
from wavemq_edge.wire import NEED_DATA, FrameType, encode_frame

ROUTER_ID = b"R" * 36
WINDOW = 4

Feed = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def trailing(data: bytes) -> list[bytes]:
    """Each piece ends 3 bytes into the next frame: every frame is followed by trailing bytes."""
    cuts: list[int] = []
    pos = 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4 + length
        cuts.append(min(pos + 3, len(data)))
    pieces, start = [], 0
    for cut in [*cuts, len(data)]:
        if cut > start:
            pieces.append(data[start:cut])
            start = cut
    return pieces


FEEDS: dict[str, Feed] = {"whole": whole, "bytewise": bytewise, "trailing": trailing}


def make_core() -> RouterCore:
    """The router core of ``router_helpers`` with this directory's router id and delivery window."""
    opts = RouterOptions(subscription_limits=QueueLimits(1000, 1 << 20, 86400), inflight_window=WINDOW)
    return router_make_core(options=opts, router_id=ROUTER_ID)


class Link:
    """A client protocol and a router session joined by a fake network link."""

    def __init__(self, who: EntitySecret, feed: str = "whole", core: RouterCore | None = None) -> None:
        self.core = core or make_core()
        self.feed = FEEDS[feed]
        self.session = AgentSession(self.core, now=0.0, max_frame_bytes=1 << 18, handshake_timeout_s=10.0,
                                    peer="test")
        self.client = ClientProtocol(who, now=0.0)
        self.events: list[Event] = []

    def pump(self, now: float = 0.0) -> list[Event]:
        """Move bytes both ways until both sides are quiet; returns the client's new events."""
        while True:
            down = self.session.bytes_to_send()
            for piece in self.feed(down):
                self.client.receive_bytes(piece, now)
            up = self.client.bytes_to_send()
            for piece in self.feed(up):
                self.session.receive_bytes(piece, now, T0 + now)
            self.core.service()
            if not down and not up:
                break
        new: list[Event] = []
        while (event := self.client.next_event()) is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            new.append(event)
        self.events.extend(new)
        return new


def hello(window: int = WINDOW) -> bytes:
    return encode_frame(FrameType.HELLO, 1, ROUTER_ID, b"c" * 32, 1 << 18, window)


def open_alone(who: EntitySecret, feed: str = "whole") -> ClientProtocol:
    """A client protocol in OPEN without a router: HELLO and WELCOME fed by hand."""
    proto = ClientProtocol(who, now=0.0)
    for piece in FEEDS[feed](hello() + encode_frame(FrameType.WELCOME, who.id)):
        proto.receive_bytes(piece, 0.0)
    assert proto.bytes_to_send()[4:5]  # the AUTH
    return proto


def drain(proto: ClientProtocol) -> list[Event]:
    out: list[Event] = []
    while (event := proto.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        out.append(event)
    return out
