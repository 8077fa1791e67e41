"""A real router process against hostile and unauthorized agents, over 127.0.0.1 sockets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from proc_helpers import RouterProcess, Site, config_text, wv
from waiting import await_until

from wavemq_edge.client import Client, RequestRefused
from wavemq_edge.router import ErrorCode
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Statement,
    WaveStore,
    build_proof,
    format_id,
    load_entity_secret,
    object_id,
    sign_handshake,
    sign_message,
    sign_query,
    sign_subscribe,
)
from wavemq_edge.wire import NEED_DATA, CloseCode, Frame, FrameDecoder, FrameType, encode_frame


class RawAgent:
    """The agent protocol spoken by hand, so a test can send what the client library never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder(1 << 24)
        self.req = 0

    @classmethod
    async def connect(cls, address: str, who: EntitySecret | None) -> RawAgent:
        host, _, port = address.rpartition(":")
        r, w = await asyncio.open_connection(host, int(port))
        agent = cls(r, w)
        hello = await agent.frame()
        assert hello.type is FrameType.HELLO
        if who is not None:
            challenge = hello.fields[2]
            assert isinstance(challenge, bytes)
            w.write(encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, challenge)))
            assert (await agent.frame()).type is FrameType.WELCOME
        return agent

    async def frame(self, timeout: float = 10.0) -> Frame:
        while True:
            f = self.decoder.next_frame()
            if f is not NEED_DATA:
                assert isinstance(f, Frame)
                return f
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionError("closed")
            self.decoder.receive_bytes(data)

    async def request(self, kind: FrameType, *fields: object) -> Frame:
        self.req += 1
        self.writer.write(encode_frame(kind, self.req, *fields, max_frame_bytes=1 << 24))
        while True:
            f = await self.frame()
            if f.type in (FrameType.OK, FrameType.REFUSED, FrameType.SUBSCRIBED, FrameType.QUERY_END,
                          FrameType.ERROR):
                return f

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


def proof_from_db(site: Site, who: EntitySecret, ns: bytes, perm: str, resource: str) -> bytes:
    with WaveStore(site.dir / "wave") as store:
        stmt = Statement(PSET_WAVEMQ, frozenset((perm,)), tuple(resource.split("/")))
        return build_proof(store, who.id, ns, [stmt], now=time.time()).to_bytes()


def refused_code(frame: Frame) -> int:
    assert frame.type is FrameType.REFUSED, frame
    code = frame.fields[1]
    assert isinstance(code, int)
    return code


async def publish_raw(agent: RawAgent, who: EntitySecret, ns: bytes, uri: str, proof: bytes) -> Frame:
    await agent.request(FrameType.PROOF, proof)
    msg = sign_message(who, namespace=ns, uri=uri, payload=[("t", b"x")], proof_id=object_id(proof), now=time.time())
    return await agent.request(FrameType.PUBLISH, msg.raw)


def test_unauthorized_requests_get_their_documented_codes(site: Site, router: RouterProcess) -> None:
    site.entity("narrow", grant="wavemq:publish,subscribe,query@namespace.ent/allowed/*")
    site.entity("other")
    narrow = load_entity_secret(site.dir / "narrow.ent")
    other = load_entity_secret(site.dir / "other.ent")
    ns = load_entity_secret(site.dir / "namespace.ent").id
    wv(site.env, site.dir, "mke", "-o", "ns2.ent", "--expiry", "1y", "--nopassphrase")
    wv(site.env, site.dir, "rtgrant", "--attester", "ns2.ent", "--subject", "narrow.ent", "--expiry", "1y",
       "wavemq:publish@ns2.ent/*")
    ns2 = load_entity_secret(site.dir / "ns2.ent").id

    async def main() -> None:
        a = await RawAgent.connect(router.address, narrow)
        own = proof_from_db(site, narrow, ns, "publish", "allowed/*")
        # no proof sent on this connection
        msg = sign_message(narrow, namespace=ns, uri="allowed/x", payload=[], proof_id=object_id(own), now=time.time())
        assert refused_code(await a.request(FrameType.PUBLISH, msg.raw)) == ErrorCode.NO_PROOF
        # a proof for another URI
        assert refused_code(await publish_raw(a, narrow, ns, "forbidden/x", own)) == ErrorCode.PERMISSION_DENIED
        # another entity's proof
        theirs = proof_from_db(site, other, ns, "publish", "*")
        assert refused_code(await publish_raw(a, narrow, ns, "allowed/x", theirs)) == ErrorCode.WRONG_SUBJECT
        # a proof for another namespace
        wrong_ns = proof_from_db(site, narrow, ns2, "publish", "*")
        assert refused_code(await publish_raw(a, narrow, ns, "allowed/x", wrong_ns)) == ErrorCode.WRONG_NAMESPACE
        # subscribe and query beyond the grant
        await a.request(FrameType.PROOF, own)
        sub = sign_subscribe(narrow, namespace=ns, uri="*", sub_id="s", router_id=b"", proof_id=object_id(own),
                             now=time.time())
        assert refused_code(await a.request(FrameType.SUBSCRIBE, sub.raw, False)) == ErrorCode.PERMISSION_DENIED
        q = sign_query(narrow, namespace=ns, uri="*", proof_id=object_id(own), now=time.time())
        assert refused_code(await a.request(FrameType.QUERY, q.raw, None, 10)) == ErrorCode.PERMISSION_DENIED
        # the good request still works on the same connection
        assert (await publish_raw(a, narrow, ns, "allowed/x", own)).type is FrameType.OK
        await a.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_expired_grant_is_refused(site: Site, router: RouterProcess) -> None:
    """End to end, on the router's real clock: a grant made by ``wv rtgrant --expiry 2s`` stops working
    on an open connection once it expires. (The rule itself, every path and edge, is tested on the fake
    clock in tests/router/test_router_expiry.py; this waits for the expiry, not for a fixed time.)"""
    wv(site.env, site.dir, "mke", "-o", "short.ent", "--expiry", "1y", "--nopassphrase")
    wv(site.env, site.dir, "rtgrant", "--attester", "namespace.ent", "--subject", "short.ent", "--expiry", "2s",
       "wavemq:publish@namespace.ent/*")
    short = load_entity_secret(site.dir / "short.ent")
    ns = load_entity_secret(site.dir / "namespace.ent").id
    proof = proof_from_db(site, short, ns, "publish", "*")

    async def main() -> None:
        a = await RawAgent.connect(router.address, short)

        async def refused() -> Frame | None:
            frame = await publish_raw(a, short, ns, "x", proof)
            return frame if frame.type is FrameType.REFUSED else None

        frame = await await_until(refused, 10, "the 2 s grant to expire", poll_s=0.1)
        assert refused_code(frame) == ErrorCode.PROOF_EXPIRED
        await a.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_revocation_with_wv_reaches_the_running_router(site: Site, router: RouterProcess) -> None:
    site.entity("service")
    service = load_entity_secret(site.dir / "service.ent")
    ns = load_entity_secret(site.dir / "namespace.ent").id
    proof = proof_from_db(site, service, ns, "publish", "*")

    async def main() -> None:
        a = await RawAgent.connect(router.address, service)
        assert (await publish_raw(a, service, ns, "before", proof)).type is FrameType.OK
        with WaveStore(site.dir / "wave") as store:
            att = store.attestations_by_subject(service.id)[0]
        wv(site.env, site.dir, "revoke", "--attester", "namespace.ent", "--attestation", format_id(att.id))

        async def refused() -> Frame | None:
            frame = await publish_raw(a, service, ns, "after", proof)
            return frame if frame.type is FrameType.REFUSED else None

        # the router polls the WAVE database every 2 s
        frame = await await_until(refused, 10, "the revocation to take effect", poll_s=0.2)
        assert refused_code(frame) == ErrorCode.PROOF_REVOKED
        await a.close()

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x00\x00\x00\x05\xa2\x01\x01\x01\x02",
                                     b"\x00\x00\x00\x01\xff", b"hello router\r\n"])
def test_bad_frames_from_one_client_do_not_disturb_another(site: Site, router: RouterProcess,
                                                            garbage: bytes) -> None:
    site.entity("service")
    service = load_entity_secret(site.dir / "service.ent")
    ns = load_entity_secret(site.dir / "namespace.ent").id

    async def main() -> None:
        good = await Client.connect(router.address, entity=service, wave_db=site.dir / "wave")
        async with good, good.subscribe(ns, "stream/*") as sub:
            bad = await RawAgent.connect(router.address, service)
            for i in range(20):
                await good.publish(ns, f"stream/{i}", str(i))
                if i == 10:
                    bad.writer.write(garbage)
            err = await bad.frame()
            assert err.type is FrameType.ERROR
            assert err.fields[0] in (CloseCode.FRAME_TOO_LARGE, CloseCode.MALFORMED_FRAME)
            with pytest.raises(ConnectionError):
                await bad.frame(timeout=5)
            got = []
            async for msg in sub:
                got.append(msg.text)
                if len(got) == 20:
                    break
            assert got == [str(i) for i in range(20)]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_thousand_idle_agents_are_accepted(site: Site, router_factory: Callable[..., RouterProcess],
                                             tmp_path: Path) -> None:
    cfg = tmp_path / "limits.toml"
    # all from one address, connecting at once: the per-address and handshake bounds raised to match
    cfg.write_text(config_text(tmp_path) + "\n[LimitsConfig]\n  maxConnections = 1001\n"
                   "  maxConnectionsPerAddress = 1001\n  maxHandshakes = 1001\n  handshakeDropStart = 1001\n"
                   "  maxHandshakesPerAddress = 1001\n")
    router = router_factory(cfg).start()
    site.entity("service")
    service = load_entity_secret(site.dir / "service.ent")
    ns = load_entity_secret(site.dir / "namespace.ent").id

    async def main() -> None:
        idle = await asyncio.gather(*[RawAgent.connect(router.address, service) for _ in range(1000)])
        async with await Client.connect(router.address, entity=service, wave_db=site.dir / "wave") as c:
            status = await c.status()
            assert status["connections"] == 1001
            async with c.subscribe(ns, "busy") as sub:
                await c.publish(ns, "busy", "still serving")
                msg = await asyncio.wait_for(sub.__anext__(), 10)
                assert msg.text == "still serving"
            # one more than the limit takes the slot of the oldest agent that never made an authorised
            # request (these only authenticated), which is told why; the others stay
            newcomer = await RawAgent.connect(router.address, service)
            status = await c.status()
            assert status["connections"] == 1001 and sum(status["admission"]["evicted"].values()) == 1
            await newcomer.close()
        for a in idle:
            a.writer.close()

    asyncio.run(asyncio.wait_for(main(), 120))


def test_publish_through_client_is_refused_without_any_grant(site: Site, router: RouterProcess) -> None:
    site.entity("nobody", grant=None)

    async def main() -> None:
        async with await Client.connect(router.address, entity=site.dir / "nobody.ent",
                                        wave_db=site.dir / "wave") as c:
            with pytest.raises(Exception, match="no valid chain of grants"):
                await c.publish(site.dir / "namespace.ent", "x", "y")

    asyncio.run(asyncio.wait_for(main(), 30))


def test_request_refused_exception_carries_the_code() -> None:
    e = RequestRefused(int(ErrorCode.PROOF_REVOKED), "revoked")
    assert e.code == 613 and "PROOF_REVOKED" in str(e)
