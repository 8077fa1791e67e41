"""The agent server's asyncio glue (AgentServer, AgentProtocol) against a mock transport, with a real
router core on a memory store (built as the sans-I/O router tests build it).

Only what the glue promises is checked: what reaches the transport (HELLO on accept, replies,
deliveries, an ERROR frame before a close), reading paused and resumed, and the core's view of the
connection (its status, its subscriptions). The session's protocol rules are tested in tests/router.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from net_helpers import MockTransport, run_pending
from router_helpers import T0, World, make_core
from waiting import await_until

from wavemq_edge.net.agent_server import AgentProtocol, AgentServer
from wavemq_edge.net.slots import SlotLimits
from wavemq_edge.net.writes import WriteScheduler
from wavemq_edge.router import RouterCore
from wavemq_edge.wave import EntitySecret, object_id, sign_handshake, sign_message, sign_subscribe
from wavemq_edge.wire import CloseCode, Frame, FrameType, encode_frame


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def make_server(core: RouterCore | None = None, *, max_connections: int = 10,
                handshake_timeout_s: float = 10.0, frame_stall_timeout_s: float = 30.0,
                **slots: int) -> AgentServer:
    core = core or make_core()
    limits = dict(max_connections=max_connections, max_per_address=1 << 20, max_handshakes=1 << 20,
                  handshake_drop_start=1 << 20, handshake_drop_rate=30, max_handshakes_per_address=1 << 20)
    limits.update(slots)
    return AgentServer(core, WriteScheduler(core), slots=SlotLimits(**limits), max_frame_bytes=1 << 18,
                       handshake_timeout_s=handshake_timeout_s, frame_stall_timeout_s=frame_stall_timeout_s,
                       wall_clock=wall)


class Conn:
    """One accepted connection: the protocol the server made, and its mock transport."""

    def __init__(self, server: AgentServer, port: int = 40000) -> None:
        self.transport = MockTransport(("127.0.0.1", port))
        self.proto: AgentProtocol = server.protocol_factory()
        self.proto.connection_made(self.transport)  # type: ignore[arg-type]
        self.req = 0

    def hello_challenge(self) -> bytes:
        hello = self.transport.frames()[0]
        assert hello.type is FrameType.HELLO
        challenge = hello.fields[2]
        assert isinstance(challenge, bytes)
        return challenge

    def feed(self, kind: FrameType, *fields: object) -> None:
        self.proto.data_received(encode_frame(kind, *fields))

    async def request(self, kind: FrameType, *fields: object) -> list[Frame]:
        self.req += 1
        self.feed(kind, self.req, *fields)
        await run_pending()
        return self.transport.frames()

    async def authenticate(self, who: EntitySecret) -> None:
        self.feed(FrameType.AUTH, who.entity.raw, sign_handshake(who, self.hello_challenge()))
        await run_pending()
        assert [f.type for f in self.transport.frames()] == [FrameType.WELCOME]

    async def status(self) -> dict[object, object]:
        reply = (await self.request(FrameType.STATUS))[-1]
        assert reply.type is FrameType.STATUS_REPLY
        status = reply.fields[1]
        assert isinstance(status, dict)
        return status

    def lost(self) -> None:
        self.proto.connection_lost(None)


def wall() -> float:
    """The core's wall clock: the glue feeds it the loop's time, and make_core's core counts from T0."""
    return T0 + asyncio.get_running_loop().time()


def subscribe_frames(world: World, who: EntitySecret, pattern: str, sub_id: str) -> list[tuple[FrameType, tuple]]:
    proof = world.proof(who, "subscribe")
    req = sign_subscribe(who, namespace=world.ns.id, uri=pattern, sub_id=sub_id, router_id=b"",
                         proof_id=object_id(proof), now=wall())
    return [(FrameType.PROOF, (proof,)), (FrameType.SUBSCRIBE, (req.raw,))]


async def subscribe(conn: Conn, world: World, who: EntitySecret, pattern: str, sub_id: str,
                    ephemeral: bool) -> None:
    (_, (proof,)), (_, (raw,)) = subscribe_frames(world, who, pattern, sub_id)
    await conn.request(FrameType.PROOF, proof)
    assert (await conn.request(FrameType.SUBSCRIBE, raw, ephemeral))[-1].type is FrameType.SUBSCRIBED


async def publish(conn: Conn, world: World, who: EntitySecret, uri: str, text: str) -> None:
    proof = world.proof(who, "publish")
    await conn.request(FrameType.PROOF, proof)
    msg = sign_message(who, namespace=world.ns.id, uri=uri, payload=[("text", text.encode())],
                       proof_id=object_id(proof), now=wall())
    assert (await conn.request(FrameType.PUBLISH, msg.raw))[-1].type is FrameType.OK


def test_an_accepted_connection_is_greeted_with_hello_and_completes_the_handshake(world: World) -> None:
    async def main() -> None:
        server = make_server()
        conn = Conn(server)
        assert not conn.transport.closed and conn.transport.reading
        await conn.authenticate(world.entity())
        status = await conn.status()
        assert status["connections"] == 1

    run(main)


@pytest.mark.parametrize("split", ["whole", "byte-by-byte", "random"])
def test_bytes_are_accepted_in_any_split(world: World, split: str) -> None:
    """AUTH, PROOF, SUBSCRIBE and STATUS sent as one stream, cut anywhere: the same replies."""

    async def main() -> None:
        server = make_server()
        who = world.entity()
        conn = Conn(server)
        challenge = conn.hello_challenge()
        (_, (proof,)), (_, (raw,)) = subscribe_frames(world, who, "a/*", "s")
        stream = b"".join([encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, challenge)),
                           encode_frame(FrameType.PROOF, 1, proof),
                           encode_frame(FrameType.SUBSCRIBE, 2, raw, True),
                           encode_frame(FrameType.STATUS, 3)])
        if split == "whole":
            pieces = [stream]
        elif split == "byte-by-byte":
            pieces = [stream[i:i + 1] for i in range(len(stream))]
        else:
            rng = random.Random(7)
            cuts = sorted(rng.sample(range(1, len(stream)), 25))
            pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        for piece in pieces:
            conn.proto.data_received(piece)
        await run_pending()
        frames = conn.transport.frames()
        assert [f.type for f in frames] == [FrameType.WELCOME, FrameType.OK, FrameType.SUBSCRIBED,
                                            FrameType.STATUS_REPLY]
        status = frames[-1].fields[1]
        assert isinstance(status, dict) and status["subscriptions"] == 1
        assert not conn.transport.closed

    run(main)


def test_a_connection_over_max_connections_is_refused_with_an_error_frame(world: World) -> None:
    async def main() -> None:
        server = make_server(max_connections=1)
        first = Conn(server, 40001)
        who = world.entity()
        await first.authenticate(who)
        await subscribe(first, world, who, "t/*", "s", ephemeral=True)  # did real work: not evictable
        second = Conn(server, 40002)
        refused = second.transport.frames()
        assert [f.type for f in refused] == [FrameType.ERROR]
        assert refused[0].fields[0] == CloseCode.LIMIT_EXCEEDED and "maxConnections=1" in str(refused[0].fields[1])
        assert second.transport.closed
        second.lost()  # the loop reports the refused connection's end too: it must not count
        assert not first.transport.closed
        status = await first.status()
        assert status["connections"] == 1 and status["admission"]["refused"]["max_connections"] == 1
        first.lost()
        third = Conn(server, 40003)  # the slot is free again
        await third.authenticate(world.entity())

    run(main)


def test_a_newcomer_evicts_the_oldest_connection_that_never_made_an_authorised_request(world: World) -> None:
    async def main() -> None:
        server = make_server(max_connections=2)
        idle, handshaking = Conn(server, 40001), Conn(server, 40002)
        await idle.authenticate(world.entity())  # a throw-away key buys no protection
        newcomer = Conn(server, 40003)
        err = idle.transport.frames()[-1]
        assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.LIMIT_EXCEEDED
        assert "evicted" in str(err.fields[1]) and idle.transport.closed
        assert not handshaking.transport.closed
        idle.lost()
        await newcomer.authenticate(world.entity())
        status = await newcomer.status()
        assert status["connections"] == 2 and status["admission"]["evicted"]["max_connections"] == 1

    run(main)


def test_handshake_pool_and_per_address_cap_refuse(world: World) -> None:
    async def main() -> None:
        server = make_server(max_handshakes=3, handshake_drop_start=3, max_handshakes_per_address=2)
        conns = [Conn(server, 40001 + i) for i in range(3)]  # all from 127.0.0.1
        err = conns[2].transport.frames()[-1]
        assert err.type is FrameType.ERROR and "maxHandshakesPerAddress=2" in str(err.fields[1])
        await conns[0].authenticate(world.entity())  # its handshake slot is free again
        again = Conn(server, 40010)
        assert not again.transport.closed
        assert server.admission()["refused"]["handshakes_per_address"] == 1

    run(main)


def test_timers_close_a_stalled_handshake_and_a_trickled_frame(world: World) -> None:
    async def main() -> None:
        server = make_server(handshake_timeout_s=0.05, frame_stall_timeout_s=0.05)
        silent, trickler = Conn(server, 40001), Conn(server, 40002)
        await trickler.authenticate(world.entity())
        trickler.proto.data_received(encode_frame(FrameType.PING, 1)[:3])
        await await_until(lambda: silent.transport.closed and trickler.transport.closed, 5, "both timed out")
        for conn in (silent, trickler):
            err = conn.transport.frames()[-1]
            assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.TIMEOUT
        assert server.admission()["timed_out"] == {"handshake": 1, "frame_stall": 1}

    run(main)


def test_pause_writing_stops_reading_until_resume_writing(world: World) -> None:
    async def main() -> None:
        conn = Conn(make_server())
        await conn.authenticate(world.entity())
        assert conn.transport.write_limits is not None  # the glue sets its own high and low water marks
        conn.proto.pause_writing()
        assert not conn.transport.reading
        conn.proto.pause_writing()  # asyncio may call it again: still paused, no error
        assert not conn.transport.reading
        conn.proto.resume_writing()
        assert conn.transport.reading
        conn.proto.resume_writing()
        assert conn.transport.reading
        assert (await conn.status())["connections"] == 1  # the connection works on

    run(main)


def test_a_publish_on_one_connection_is_written_to_the_subscribers_transport(world: World) -> None:
    async def main() -> None:
        server = make_server()
        sub_who, pub_who = world.entity(), world.entity()
        sub, pub = Conn(server, 40001), Conn(server, 40002)
        await sub.authenticate(sub_who)
        await pub.authenticate(pub_who)
        await subscribe(sub, world, sub_who, "t/*", "s", ephemeral=True)
        await publish(pub, world, pub_who, "t/1", "hello")
        delivered = sub.transport.frames()
        assert [f.type for f in delivered] == [FrameType.DELIVER] and delivered[0].fields[0] == "s"

    run(main)


def test_connection_lost_detaches_the_session(world: World) -> None:
    async def main() -> None:
        core = make_core()
        server = make_server(core)
        eph_who, dur_who, pub_who = world.entity(), world.entity(), world.entity()
        eph, dur, pub = Conn(server, 40001), Conn(server, 40002), Conn(server, 40003)
        for conn, who in ((eph, eph_who), (dur, dur_who), (pub, pub_who)):
            await conn.authenticate(who)
        await subscribe(eph, world, eph_who, "t/*", "e", ephemeral=True)
        await subscribe(dur, world, dur_who, "t/*", "d", ephemeral=False)
        assert (await pub.status())["subscriptions"] == 2
        eph.lost()
        dur.lost()
        # the ephemeral subscription ended with its connection; the durable one stays, detached, queueing
        status = await pub.status()
        assert status["connections"] == 1 and status["subscriptions"] == 1
        assert [s.sub_id for s in core.subscriptions()] == ["d"]
        await publish(pub, world, pub_who, "t/1", "while away")
        assert dur.transport.frames() == [] and eph.transport.frames() == []
        # bytes that arrive after the loss (a late callback) are ignored, not processed
        eph.feed(FrameType.STATUS, 99)
        await run_pending()
        assert eph.transport.frames() == []

    run(main)


def test_a_malformed_frame_closes_only_that_connection(world: World) -> None:
    async def main() -> None:
        server = make_server()
        bad, good = Conn(server, 40001), Conn(server, 40002)
        await bad.authenticate(world.entity())
        await good.authenticate(world.entity())
        bad.proto.data_received(b"\x00\x00\x00\x01\xff")
        await run_pending()
        err = bad.transport.frames()
        assert [f.type for f in err] == [FrameType.ERROR] and err[0].fields[0] == CloseCode.MALFORMED_FRAME
        assert bad.transport.closed
        bad.lost()
        assert not good.transport.closed and (await good.status())["connections"] == 1

    run(main)


def test_an_unfinished_handshake_is_closed_by_the_glues_timer(world: World) -> None:
    async def main() -> None:
        conn = Conn(make_server(handshake_timeout_s=0.05))
        conn.hello_challenge()
        await await_until(lambda: conn.transport.closed, 5, "the handshake timer to close the connection")
        assert [f.type for f in conn.transport.frames()] == [FrameType.ERROR]
        conn.lost()

    run(main)


def test_close_all_says_going_away_to_every_connection(world: World) -> None:
    async def main() -> None:
        server = make_server()
        conns = [Conn(server, 40001 + i) for i in range(3)]
        for c in conns:
            await c.authenticate(world.entity())
        server.close_all("router shutting down")
        for c in conns:
            err = c.transport.frames()
            assert [f.type for f in err] == [FrameType.ERROR] and err[0].fields[0] == CloseCode.GOING_AWAY
            assert c.transport.closed
            c.lost()

    run(main)


def test_a_frame_held_back_by_our_own_back_pressure_is_not_timed_out(world: World) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = make_server(frame_stall_timeout_s=0.01)
        conn = Conn(server)
        await conn.authenticate(world.entity())
        conn.proto.data_received(encode_frame(FrameType.PING, 1)[:3])
        conn.proto.pause_writing()  # the agent does not read: we stopped reading its frame's rest
        deadline = conn.proto.session.next_deadline() if conn.proto.session else None
        assert deadline is not None
        await await_until(lambda: loop.time() > deadline, 5, "the frame's deadline passed")
        conn.proto._on_timer()  # as the loop would call it
        assert not conn.transport.closed  # its input was held by us, not stalled by it
        conn.proto.resume_writing()  # the clock starts again now
        await await_until(lambda: conn.transport.closed, 5, "the stalled frame closed after resuming")
        assert conn.transport.frames()[-1].fields[0] == CloseCode.TIMEOUT

    run(main)
