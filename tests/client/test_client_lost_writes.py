"""A connection that drops with ``reconnect=False``: the calls made meanwhile get the typed error and
nothing is printed (asyncio logs "socket.send() raised exception." when a transport that has lost its
connection is written to five times or more: the client must not write once it knows the connection
is going), and the library logs the loss at INFO only: the caller has the error.

The router here is a blocking socket in a thread, so the test can reset the connection at an exact
moment: the reset is in the client's kernel before its loop runs the ten publishes started right
after, so they run before the loop has read the reset."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time

import pytest
from router_helpers import World, new_world

from wavemq_edge.client import Client, ConnectionClosed
from wavemq_edge.wave import object_id
from wavemq_edge.wire import NEED_DATA, Frame, FrameDecoder, FrameType, encode_frame

BOUND_S = 10.0


class ResettingRouter:
    """Handshake, answer PROOF and PUBLISH, then reset the connection when ``reset()`` is called."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.conn: socket.socket | None = None
        self.answered = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(BOUND_S)
        conn, _ = self.listener.accept()
        conn.settimeout(BOUND_S)
        self.conn = conn
        decoder = FrameDecoder(1 << 24)
        conn.sendall(encode_frame(FrameType.HELLO, 1, b"R" * 36, b"c" * 32, 1 << 18, 4))
        while not self.answered.is_set() and (data := conn.recv(65536)):
            decoder.receive_bytes(data)
            while (frame := decoder.next_frame()) is not NEED_DATA:
                assert isinstance(frame, Frame)
                self._answer(conn, frame)

    def _answer(self, conn: socket.socket, frame: Frame) -> None:
        f = frame.fields
        if frame.type is FrameType.AUTH:
            conn.sendall(encode_frame(FrameType.WELCOME, b"E" * 36))
        elif frame.type is FrameType.PROOF:
            assert isinstance(f[1], bytes)
            conn.sendall(encode_frame(FrameType.OK, f[0], object_id(f[1])))
        elif frame.type is FrameType.PUBLISH:
            conn.sendall(encode_frame(FrameType.OK, f[0], "accepted"))
            self.answered.set()

    def reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a RST now, in its kernel, before its loop runs again."""
        self.thread.join(BOUND_S)
        assert self.conn is not None
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.close()

    def close(self) -> None:
        self.listener.close()
        if self.conn is not None:
            self.conn.close()


async def connected(router: ResettingRouter) -> tuple[World, Client]:
    now = time.time()
    world = new_world(now)
    who = world.entity(now=now)
    client = await Client.connect(router.address, entity=who, reconnect=False,
                                  proofs=[world.proof(who, "publish", now=now)])
    return world, client


def test_publishes_after_a_reset_raise_connection_closed_and_print_nothing(
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> list[BaseException | str]:
        router = ResettingRouter()
        world, client = await connected(router)
        try:
            assert await client.publish(world.ns.id, "a/b", "first") == "accepted"  # the proof is sent
            router.reset()
            # started before the loop reads the reset: each writes its PUBLISH in its first step
            calls = [asyncio.ensure_future(client.publish(world.ns.id, "a/b", str(i))) for i in range(10)]
            return list(await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), BOUND_S))
        finally:
            await client.close()
            router.close()

    caplog.set_level(logging.DEBUG)
    results = asyncio.run(main())
    assert results and all(isinstance(r, ConnectionClosed) for r in results), results
    assert "socket.send() raised exception" not in caplog.text
    # the typed error says it all: nothing at WARNING, which Python prints when the app set up no logging
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    captured = capsys.readouterr()
    assert "socket.send() raised exception" not in captured.out + captured.err
