"""Hostile agents for tests/integration/test_connection_slots.py, run as their own process so their
event loop does not slow the good client's: ``python hostile_agents.py HOST:PORT SOURCE N_SILENT N_TRICKLE``.

* ``N_SILENT`` connections that never send a byte (they never finish the handshake);
* ``N_TRICKLE`` connections that authenticate with a freshly made key each (any key may AUTH), then
  announce a 1000-byte frame and send its body one byte a second.

Each reopens its connection as soon as the router closes it (after ``REOPEN_S``: the loop of the
issue, paced so that the test machine's two cores stay usable). All connect from ``SOURCE`` (a
loopback address such as 127.0.0.2: one host). Once a second a line
``opened=N open=M silent_open=A trickling=B closed_by_router=C`` goes to stdout; the test waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import sys
import time
from dataclasses import dataclass

from wavemq_edge.wave import create_entity, sign_handshake
from wavemq_edge.wire import NEED_DATA, Frame, FrameDecoder, FrameType, encode_frame

REOPEN_S = 0.2
TRICKLE_S = 1.0
#: the announced length of the frame that is never finished
STALLED_FRAME_BYTES = 1000


@dataclass
class Counts:
    opened: int = 0
    open: int = 0
    silent_open: int = 0
    trickling: int = 0
    closed_by_router: int = 0


async def _pace(seconds: float) -> None:
    """The attack's own rhythm (reopen pause, one byte a second): the fault being injected."""
    await asyncio.sleep(seconds)


async def _connect(host: str, port: int, source: str, counts: Counts) -> tuple[asyncio.StreamReader,
                                                                               asyncio.StreamWriter] | None:
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    except OSError:
        return None
    counts.opened += 1
    counts.open += 1
    return reader, writer


async def _frame(reader: asyncio.StreamReader, decoder: FrameDecoder) -> Frame | None:
    while True:
        f = decoder.next_frame()
        if f is not NEED_DATA:
            assert isinstance(f, Frame)
            return f
        data = await reader.read(4096)
        if not data:
            return None
        decoder.receive_bytes(data)


async def _until_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(4096):
            pass


async def silent(host: str, port: int, source: str, counts: Counts) -> None:
    while True:
        conn = await _connect(host, port, source, counts)
        if conn is not None:
            counts.silent_open += 1
            await _until_closed(conn[0])
            counts.silent_open -= 1
            counts.open -= 1
            counts.closed_by_router += 1
            conn[1].close()
        await _pace(REOPEN_S)


async def _trickle_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counts: Counts) -> None:
    who = create_entity(time.time() - 60, 3600)  # a fresh key: costs nothing
    decoder = FrameDecoder(1 << 20)
    hello = await _frame(reader, decoder)
    if hello is None or hello.type is not FrameType.HELLO:
        return
    challenge = hello.fields[2]
    assert isinstance(challenge, bytes)
    writer.write(encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, challenge)))
    welcome = await _frame(reader, decoder)
    if welcome is None or welcome.type is not FrameType.WELCOME:
        return
    closed = asyncio.ensure_future(_until_closed(reader))
    counts.trickling += 1
    try:
        writer.write(struct.pack(">I", STALLED_FRAME_BYTES))
        while not closed.done():
            writer.write(b"\x00")
            await asyncio.wait([closed], timeout=TRICKLE_S)
    finally:
        counts.trickling -= 1
        closed.cancel()


async def trickler(host: str, port: int, source: str, counts: Counts) -> None:
    while True:
        conn = await _connect(host, port, source, counts)
        if conn is not None:
            reader, writer = conn
            with contextlib.suppress(OSError, ConnectionError):
                await _trickle_once(reader, writer, counts)
            counts.open -= 1
            counts.closed_by_router += 1
            writer.close()
        await _pace(REOPEN_S)


async def report(counts: Counts) -> None:
    while True:
        print(f"opened={counts.opened} open={counts.open} silent_open={counts.silent_open} "
              f"trickling={counts.trickling} closed_by_router={counts.closed_by_router}", flush=True)
        await _pace(1.0)


async def main(address: str, source: str, n_silent: int, n_trickle: int) -> None:
    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    counts = Counts()
    tasks = [asyncio.create_task(report(counts))]
    tasks += [asyncio.create_task(silent(host, port, source, counts)) for _ in range(n_silent)]
    tasks += [asyncio.create_task(trickler(host, port, source, counts)) for _ in range(n_trickle)]
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
