"""client/connection.py, the asyncio pump, against a fake router on 127.0.0.1 (port 0).

The fake router does the handshake, answers PROOF and SUBSCRIBE, holds a PUBLISH and a STATUS without
answering, and then sends one bad frame. Every pending call and the subscription iterator must get the
typed error within a bounded time, and the client must not reconnect to a router that broke the
protocol. Synchronisation is by events, never by sleeping."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest
from router_helpers import World, new_world

from wavemq_edge.client import Client, ConnectionClosed, RouterProtocolError, SubscriptionEnded
from wavemq_edge.wave import object_id
from wavemq_edge.wire import NEED_DATA, CloseCode, Frame, FrameDecoder, FrameType, encode_frame

BOUND_S = 10.0

BAD_FRAMES: dict[str, tuple[bytes, int]] = {
    "malformed_deliver": (encode_frame(FrameType.DELIVER, "s1", "not-a-seq", b"m"), CloseCode.BAD_FIELDS),
    "unexpected_frame": (encode_frame(FrameType.T_DELIVER, "ref", [1], [], 0, b""), CloseCode.PROTOCOL_VIOLATION),
    "reply_to_nothing": (encode_frame(FrameType.OK, 9999, "accepted"), CloseCode.PROTOCOL_VIOLATION),
    "not_cbor": (struct.pack(">I", 1) + b"\xff", CloseCode.MALFORMED_FRAME),
}


class FakeRouter:
    """Speaks just enough of the agent API; ``bad`` is sent once a PUBLISH and a STATUS are pending."""

    def __init__(self, bad: bytes) -> None:
        self.bad = bad
        self.connections = 0
        self.bad_sent = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        decoder = FrameDecoder(1 << 24)
        writer.write(encode_frame(FrameType.HELLO, 1, b"R" * 36, b"c" * 32, 1 << 18, 4))
        held: set[FrameType] = set()
        try:
            while data := await reader.read(65536):
                decoder.receive_bytes(data)
                while (frame := decoder.next_frame()) is not NEED_DATA:
                    assert isinstance(frame, Frame)
                    self.answer(frame, writer, held)
                if {FrameType.PUBLISH, FrameType.STATUS} <= held and not self.bad_sent.is_set():
                    writer.write(self.bad)
                    self.bad_sent.set()
        finally:
            writer.close()

    @staticmethod
    def answer(frame: Frame, writer: asyncio.StreamWriter, held: set[FrameType]) -> None:
        f = frame.fields
        if frame.type is FrameType.AUTH:
            writer.write(encode_frame(FrameType.WELCOME, b"E" * 36))
        elif frame.type is FrameType.PROOF:
            assert isinstance(f[1], bytes)
            writer.write(encode_frame(FrameType.OK, f[0], object_id(f[1])))
        elif frame.type is FrameType.SUBSCRIBE:
            writer.write(encode_frame(FrameType.SUBSCRIBED, f[0], "s1", int(time.time()) + 3600, False, 0))
        elif frame.type in (FrameType.PUBLISH, FrameType.STATUS):
            held.add(frame.type)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def connected(router: FakeRouter, reconnect: bool) -> tuple[World, Client]:
    """A client (on the real clock: the fake router is a real socket) connected to ``router``."""
    now = time.time()
    world = new_world(now)
    who = world.entity(now=now)
    address = await router.start()
    client = await Client.connect(address, entity=who, reconnect=reconnect,
                                  proofs=[world.proof(who, "publish", now=now), world.proof(who, "subscribe", now=now)])
    return world, client


async def scenario(bad: bytes) -> tuple[list[BaseException], int]:
    router = FakeRouter(bad)
    world, client = await connected(router, reconnect=True)
    try:
        sub = client.subscribe(world.ns.id, "a/*", identifier="s1")
        await sub.start()
        publish = asyncio.create_task(client.publish(world.ns.id, "a/b", b"x"))
        status = asyncio.create_task(client.status())
        iterate = asyncio.create_task(sub.__anext__())
        await router.bad_sent.wait()
        results = await asyncio.gather(publish, status, iterate, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 3, results
        with pytest.raises(RouterProtocolError):  # later calls fail at once with the same error
            await client.publish(world.ns.id, "a/c", b"y")
        errors.append(await _raised(sub.__anext__()))  # the iteration is over
        return errors, router.connections
    finally:
        await client.close()
        await router.stop()


async def _raised(coro: object) -> BaseException:
    try:
        await coro  # type: ignore[misc]
    except BaseException as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_router_frame_fails_every_pending_call_and_iterator(case: str) -> None:
    bad, code = BAD_FRAMES[case]
    errors, connections = asyncio.run(asyncio.wait_for(scenario(bad), BOUND_S))
    *pending, after = errors
    for err in pending:
        assert isinstance(err, RouterProtocolError) and isinstance(err, ConnectionClosed), repr(err)
        assert err.close_code == code and err.reason
    assert pending[0] is pending[1] is pending[2]  # one error, the connection's close reason
    assert isinstance(after, StopAsyncIteration)
    assert connections == 1  # no reconnect to a router that broke the protocol


async def error_frame_scenario() -> tuple[BaseException, BaseException]:
    router = FakeRouter(encode_frame(FrameType.ERROR, int(CloseCode.GOING_AWAY), "shutting down"))
    world, client = await connected(router, reconnect=False)
    try:
        sub = client.subscribe(world.ns.id, "a/*", identifier="s1")
        await sub.start()
        publish = asyncio.create_task(client.publish(world.ns.id, "a/b", b"x"))
        status = asyncio.create_task(client.status())
        await router.bad_sent.wait()
        pub_err = await _raised(publish)
        await _raised(status)
        return pub_err, await _raised(sub.__anext__())
    finally:
        await client.close()
        await router.stop()


def test_router_error_frame_is_a_plain_close_without_reconnect() -> None:
    pub_err, sub_err = asyncio.run(asyncio.wait_for(error_frame_scenario(), BOUND_S))
    assert type(pub_err) is ConnectionClosed and "(503) shutting down" in str(pub_err)
    assert isinstance(sub_err, SubscriptionEnded) and "connection lost" in sub_err.reason
