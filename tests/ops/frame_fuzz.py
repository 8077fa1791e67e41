"""A frame fuzzer against a real router: authenticated connections send random frames (every agent frame
type and unknown ones, fields of random types and sizes, now and then raw garbage), each followed by a
PING whose PONG (or the connection's end) says the router has dealt with it. A connection the router
closes is replaced. Seeded, so a run can be repeated.

Used by ``test_ops_fuzz_soak.py``; runnable by hand::

    .venv/bin/python tests/ops/frame_fuzz.py ADDRESS PID SITE_DIR CASES
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from pathlib import Path

from memory_load import RssSampler

from wavemq_edge.wave import EntitySecret, load_entity_secret, sign_handshake, sign_message
from wavemq_edge.wave.ids import ID_BYTES
from wavemq_edge.wire import NEED_DATA, Frame, FrameDecoder, FrameType, encode_frame

__all__ = ["fuzz"]

AGENT_TYPES = (FrameType.PROOF, FrameType.PUBLISH, FrameType.SUBSCRIBE, FrameType.DACK, FrameType.UNSUBSCRIBE,
               FrameType.QUERY, FrameType.PING, FrameType.OK, FrameType.DELIVER, FrameType.CH_HELLO, 99)


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(7 if depth < 2 else 5)
    if kind == 0:
        return rng.randrange(-(2**40), 2**40)
    if kind == 1:
        return rng.randbytes(rng.choice((0, 1, 32, 64, rng.randrange(300))))
    if kind == 2:
        return "".join(rng.choice("abc/*+xyz0123") for _ in range(rng.randrange(40)))
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return None
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.randrange(10): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _typed(rng: random.Random) -> bytes:
    """A request with fields of the right types and random content: the router refuses it and the
    connection stays open (what reaches admission, the caches and the logs)."""
    req = rng.randrange(1, 1 << 20)
    blob = rng.randbytes(rng.choice((0, 32, 64, rng.randrange(2000))))
    kind = rng.randrange(6)
    if kind == 0:
        return encode_frame(FrameType.PUBLISH, req, blob)
    if kind == 1:
        return encode_frame(FrameType.SUBSCRIBE, req, blob, rng.random() < 0.5)
    if kind == 2:
        return encode_frame(FrameType.PROOF, req, blob)
    if kind == 3:
        return encode_frame(FrameType.UNSUBSCRIBE, req, blob)
    if kind == 4:
        return encode_frame(FrameType.QUERY, req, blob, rng.choice((None, f"a/{req}")), rng.randrange(1, 100))
    return encode_frame(FrameType.DACK, f"sub-{req}", [rng.randrange(1 << 30) for _ in range(rng.randrange(5))])


def _signed(rng: random.Random, who: EntitySecret, ns: bytes) -> bytes:
    """A correctly signed publish whose proof was never sent: refused after its signature, timestamp and
    replay checks, so every one is remembered by the router's replay guard (a bounded window)."""
    msg = sign_message(who, namespace=ns, uri=f"fuzz/{rng.randrange(1 << 30)}", payload=[("", rng.randbytes(16))],
                       proof_id=rng.randbytes(ID_BYTES), now=time.time(), seq=rng.randrange(1, 1 << 30))
    return encode_frame(FrameType.PUBLISH, rng.randrange(1, 1 << 20), msg.raw)


def _case(rng: random.Random, who: EntitySecret, ns: bytes, signed: float) -> bytes:
    if rng.random() < signed:
        return _signed(rng, who, ns)
    if rng.random() < 0.02:
        return rng.randbytes(rng.randrange(1, 64))  # garbage: the router closes the connection
    if rng.random() < 0.8:
        return _typed(rng)
    kind = rng.choice(AGENT_TYPES)
    fields = [rng.randrange(1, 1 << 20), *(_value(rng) for _ in range(rng.randrange(4)))]
    return encode_frame(kind, *fields)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder(1 << 24)

    async def frame(self) -> Frame | None:
        while True:
            f = self.decoder.next_frame()
            if f is not NEED_DATA:
                assert isinstance(f, Frame)
                return f
            data = await asyncio.wait_for(self.reader.read(65536), 30)
            if not data:
                return None
            self.decoder.receive_bytes(data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


async def _connect(address: str, who: EntitySecret) -> _Conn:
    host, _, port = address.rpartition(":")
    conn = _Conn(*await asyncio.open_connection(host, int(port)))
    hello = await conn.frame()
    assert hello is not None and hello.type is FrameType.HELLO
    challenge = hello.fields[2]
    assert isinstance(challenge, bytes)
    conn.writer.write(encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, challenge)))
    welcome = await conn.frame()
    assert welcome is not None and welcome.type is FrameType.WELCOME
    return conn


async def fuzz(address: str, who: EntitySecret, ns: bytes, cases: int, *, seed: int = 1, connections: int = 4,
               signed: float = 0.5) -> int:
    """Send ``cases`` fuzz frames over ``connections`` parallel connections, a ``signed`` share of them
    signed publishes; returns how many connections the router closed (each replaced)."""
    done = 0
    closed = 0

    async def worker(n: int) -> None:
        nonlocal done, closed
        rng = random.Random(seed * 1000 + n)
        conn = await _connect(address, who)
        token = 0
        try:
            while done < cases:
                done += 1
                token += 1
                conn.writer.write(_case(rng, who, ns, signed) + encode_frame(FrameType.PING, token))
                while True:
                    f = await conn.frame()
                    if f is None or f.type is FrameType.ERROR:
                        closed += 1
                        await conn.close()
                        conn = await _connect(address, who)
                        break
                    if f.type is FrameType.PONG and f.fields[0] == token:
                        break
        finally:
            await conn.close()

    await asyncio.gather(*(worker(n) for n in range(connections)))
    return closed


async def _main(address: str, pid: int, site: Path, cases: int) -> None:
    who = load_entity_secret(site / "service.ent")
    ns = load_entity_secret(site / "namespace.ent").id
    with RssSampler(pid, 0.5) as sampler:
        step = max(1, cases // 10)
        for i in range(0, cases, step):
            closed = await fuzz(address, who, ns, step, seed=i + 1)
            _t, rss, anon = sampler.samples[-1]
            print(f"{i + step} cases: RSS {rss / 2**20:.1f} MB RssAnon {anon / 2**20:.1f} MB (closed {closed})",
                  flush=True)


if __name__ == "__main__":
    a = sys.argv
    asyncio.run(_main(a[1], int(a[2]), Path(a[3]), int(a[4])))
