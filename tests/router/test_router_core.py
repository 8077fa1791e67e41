"""The routing core and agent session, driven in memory with a fake clock (no sockets)."""

from __future__ import annotations

import cbor2
import pytest
from router_helpers import T0, Agent, MemoryPersist, World, make_core

from wavemq_edge.router import ErrorCode, RouterOptions
from wavemq_edge.storage import MemoryBackend, QueueLimits
from wavemq_edge.wave import (
    EntitySecret,
    create_entity,
    object_id,
    sign_message,
    sign_query,
    sign_subscribe,
    sign_unsubscribe,
)
from wavemq_edge.wire import CloseCode, Frame, FrameType


def publish(agent: Agent, world: World, uri: str, text: str, *, proof: bytes | None = None, persist: bool = False,
            who: EntitySecret | None = None, now: float = 0.0, ns: bytes | None = None) -> list[Frame]:
    proof = proof if proof is not None else world.proof(agent.who, "publish")
    agent.request(FrameType.PROOF, proof, now=now)
    msg = sign_message(who or agent.who, namespace=ns or world.ns.id, uri=uri, payload=[("text", text.encode())],
                       proof_id=object_id(proof), now=T0 + now, persist=persist)
    return agent.request(FrameType.PUBLISH, msg.raw, now=now)


def subscribe(agent: Agent, world: World, pattern: str, sub_id: str, *, ephemeral: bool = False,
              proof: bytes | None = None, now: float = 0.0, expiry_s: int = 0) -> list[Frame]:
    proof = proof if proof is not None else world.proof(agent.who, "subscribe")
    agent.request(FrameType.PROOF, proof, now=now)
    req = sign_subscribe(agent.who, namespace=world.ns.id, uri=pattern, sub_id=sub_id, router_id=b"",
                         proof_id=object_id(proof), now=T0 + now, expiry_s=expiry_s)
    return agent.request(FrameType.SUBSCRIBE, req.raw, ephemeral, now=now)


def texts(frames: list[Frame]) -> list[str]:
    out = []
    for f in frames:
        if f.type is FrameType.DELIVER:
            raw = f.fields[2]
            assert isinstance(raw, bytes)
            from wavemq_edge.wave import Message

            out.append(Message.parse(raw).payload[0][1].decode())
    return out


def dack(agent: Agent, frames: list[Frame], now: float = 0.0) -> None:
    by_sub: dict[str, list[int]] = {}
    for f in frames:
        if f.type is FrameType.DELIVER:
            by_sub.setdefault(str(f.fields[0]), []).append(int(f.fields[1]))  # type: ignore[call-overload]
    for sub_id, seqs in by_sub.items():
        agent.send(FrameType.DACK, sub_id, seqs, now=now)


def test_publish_reaches_matching_subscriptions_once(world: World) -> None:
    core = make_core()
    pub, s1, s2 = world.entity(), world.entity(), world.entity()
    a, b, c = Agent(core, pub), Agent(core, s1), Agent(core, s2)
    assert subscribe(b, world, "bldg/+/temp", "t")[-1].type is FrameType.SUBSCRIBED
    assert subscribe(c, world, "bldg/*", "all")[-1].type is FrameType.SUBSCRIBED
    reply = publish(a, world, "bldg/room1/temp", "21.5")
    assert reply[-1] == Frame(FrameType.OK, (reply[-1].fields[0], "accepted"))
    publish(a, world, "bldg/room1/humidity", "40")
    assert texts(b.recv()) == ["21.5"]
    assert texts(c.recv()) == ["21.5", "40"]
    assert core.counters.enqueued == 3


def test_subscriptions_never_cross_namespaces(world: World) -> None:
    core = make_core()
    other_ns = create_entity(T0 - 20, 10**8)
    other = World(other_ns)
    other.store.put_entity(other_ns.entity)
    s = world.entity()
    p2 = other.entity()
    sa, pa = Agent(core, s), Agent(core, p2)
    subscribe(sa, world, "*", "all")
    assert publish(pa, other, "x/y", "elsewhere", ns=other_ns.id)[-1].type is FrameType.OK
    assert texts(sa.recv()) == []


def test_credit_flow_control_and_acks(world: World) -> None:
    core = make_core()  # inflight_window=4
    pub, sub = world.entity(), world.entity()
    a, b = Agent(core, pub), Agent(core, sub)
    subscribe(b, world, "q/*", "q")
    b.recv()
    for i in range(10):
        publish(a, world, f"q/{i}", str(i))
    first = b.recv()
    assert texts(first) == ["0", "1", "2", "3"]  # window of 4, the rest stays queued
    dack(b, first[:2])
    second = b.recv()
    assert texts(second) == ["4", "5"]
    dack(b, first[2:] + second)
    assert texts(b.recv()) == ["6", "7", "8", "9"]
    stats = core.queues.stats(next(iter(b.session.subscriptions)))
    assert stats.depth == 4  # acked items left the queue; the last 4 are in flight


def test_resume_by_identifier_delivers_what_was_missed_in_order(world: World) -> None:
    core = make_core()
    pub, sub = world.entity(), world.entity()
    a, b = Agent(core, pub), Agent(core, sub)
    subscribe(b, world, "s/*", "durable")
    b.session.connection_lost(0.0)
    for i in range(6):
        publish(a, world, f"s/{i}", str(i))
    b2 = Agent(core, sub)
    reply = subscribe(b2, world, "s/*", "durable")
    subscribed = next(f for f in reply if f.type is FrameType.SUBSCRIBED)
    assert subscribed.fields[3] is True and subscribed.fields[4] == 6  # resumed, backlog 6
    got = [f for f in reply if f.type is FrameType.DELIVER]
    dack(b2, got)
    got += b2.recv()
    assert texts(got) == [str(i) for i in range(6)]


def test_unacked_deliveries_are_redelivered_after_a_disconnect(world: World) -> None:
    core = make_core()
    pub, sub = world.entity(), world.entity()
    a, b = Agent(core, pub), Agent(core, sub)
    subscribe(b, world, "r/*", "r")
    for i in range(3):
        publish(a, world, f"r/{i}", str(i))
    assert texts(b.recv()) == ["0", "1", "2"]
    b.session.connection_lost(0.0)  # never acked
    b2 = Agent(core, sub)
    assert texts(subscribe(b2, world, "r/*", "r")) == ["0", "1", "2"]
    assert core.counters.redelivered == 3


def test_competing_consumers_share_one_identifier(world: World) -> None:
    core = make_core()
    pub, sub = world.entity(), world.entity()
    a, b1, b2 = Agent(core, pub), Agent(core, sub), Agent(core, sub)
    subscribe(b1, world, "c/*", "shared")
    subscribe(b2, world, "c/*", "shared")
    for i in range(6):
        publish(a, world, f"c/{i}", str(i))
    one, two = texts(b1.recv()), texts(b2.recv())
    assert sorted(one + two, key=int) == [str(i) for i in range(6)]
    assert one and two


def test_ephemeral_subscription_ends_with_its_connection(world: World) -> None:
    core = make_core()
    sub = world.entity()
    b = Agent(core, sub)
    subscribe(b, world, "e/*", "tmp", ephemeral=True)
    assert len(core.subscriptions()) == 1
    b.session.connection_lost(0.0)
    assert core.subscriptions() == []
    assert [q for q in core.queues.queue_ids() if q.startswith("sub:")] == []


def test_signed_unsubscribe_and_only_by_its_owner(world: World) -> None:
    core = make_core()
    owner, intruder = world.entity(), world.entity()
    b, x = Agent(core, owner), Agent(core, intruder)
    subscribe(b, world, "u/*", "mine")
    bad = sign_unsubscribe(intruder, sub_id="mine", now=T0)
    refused = x.request(FrameType.UNSUBSCRIBE, bad.raw)[-1]
    assert refused.type is FrameType.REFUSED and refused.fields[1] == ErrorCode.UNKNOWN_SUBSCRIPTION
    good = sign_unsubscribe(owner, sub_id="mine", now=T0)
    frames = b.request(FrameType.UNSUBSCRIBE, good.raw)
    assert [f.type for f in frames] == [FrameType.SUB_END, FrameType.OK]
    assert core.subscriptions() == []


@pytest.mark.parametrize("case", ["no-proof", "other-uri", "expired", "other-entity", "wrong-namespace",
                                  "wrong-source", "wildcard"])
def test_unauthorized_publish_is_refused_with_its_code(world: World, case: str) -> None:
    core = make_core()
    narrow = world.entity(grants="publish", resource="allowed/*")
    other = world.entity()
    a = Agent(core, narrow)
    own = world.proof(narrow, "publish", "allowed/*")
    if case == "no-proof":
        msg = sign_message(narrow, namespace=world.ns.id, uri="allowed/x", payload=[], proof_id=b"\x00" * 36, now=T0)
        frame, code = a.request(FrameType.PUBLISH, msg.raw)[-1], ErrorCode.NO_PROOF
    elif case == "other-uri":
        frame, code = publish(a, world, "forbidden/x", "no", proof=world.proof(narrow, "publish", "allowed/*"))[-1], \
            ErrorCode.PERMISSION_DENIED
    elif case == "expired":
        short = world.entity(grants="publish", expiry_s=100)
        a = Agent(core, short)
        frame, code = publish(a, world, "x", "late", proof=world.proof(short, "publish"), now=200.0)[-1], \
            ErrorCode.PROOF_EXPIRED
    elif case == "other-entity":
        frame, code = publish(a, world, "allowed/x", "theft", proof=world.proof(other, "publish"))[-1], \
            ErrorCode.WRONG_SUBJECT
    elif case == "wrong-namespace":
        frame, code = publish(a, world, "allowed/x", "ns", ns=other.id, proof=own)[-1], ErrorCode.WRONG_NAMESPACE
    elif case == "wrong-source":
        frame, code = publish(a, world, "allowed/x", "spoof", who=other, proof=own)[-1], ErrorCode.WRONG_SOURCE
    else:
        from wavemq_edge.uri import UriError

        with pytest.raises(UriError):  # the client helper refuses to sign it at all
            publish(a, world, "allowed/*", "wild", proof=own)
        return
    assert frame.type is FrameType.REFUSED, frame
    assert frame.fields[1] == code, frame
    assert core.counters.published == 0


def test_revoked_grant_refuses_publish_and_ends_subscriptions(world: World) -> None:
    from wavemq_edge.wave import revoke_attestation

    core = make_core()
    sub = world.entity()
    b = Agent(core, sub)
    subscribe(b, world, "v/*", "v")
    att = world.store.attestations_by_subject(sub.id)[0]
    rev = revoke_attestation(world.ns, att)
    assert core.add_revocation(rev, 1.0, T0 + 1.0) == 1
    end = b.recv()[-1]
    assert end.type is FrameType.SUB_END and end.fields[1] == ErrorCode.SUBSCRIPTION_ENDED
    assert "revoked" in str(end.fields[2])
    refused = subscribe(b, world, "v/*", "v2", now=2.0)[-1]
    assert refused.type is FrameType.REFUSED and refused.fields[1] == ErrorCode.PROOF_REVOKED


def test_subscription_ends_when_its_expiry_passes(world: World) -> None:
    core = make_core()
    sub = world.entity()
    b = Agent(core, sub)
    subscribe(b, world, "x", "short", expiry_s=60)
    deadline = core.next_deadline(0.0, T0)
    assert deadline is not None and deadline == pytest.approx(60.0, abs=1.0)
    core.handle_timer(61.0, T0 + 61.0)
    end = b.recv()[-1]
    assert end.type is FrameType.SUB_END and "expired" in str(end.fields[2])


def test_duplicate_publish_is_acknowledged_once(world: World) -> None:
    core = make_core()
    pub, sub = world.entity(), world.entity()
    a, b = Agent(core, pub), Agent(core, sub)
    subscribe(b, world, "d", "d")
    proof = world.proof(pub, "publish")
    a.request(FrameType.PROOF, proof)
    msg = sign_message(pub, namespace=world.ns.id, uri="d", payload=[("t", b"1")], proof_id=object_id(proof), now=T0)
    assert a.request(FrameType.PUBLISH, msg.raw)[-1].fields[1] == "accepted"
    assert a.request(FrameType.PUBLISH, msg.raw)[-1].fields[1] == "duplicate"
    assert texts(b.recv()) == ["1"]


def test_persist_and_query(world: World) -> None:
    persist = MemoryPersist()
    core = make_core(persist=persist)
    pub, reader = world.entity(), world.entity()
    a, r = Agent(core, pub), Agent(core, reader)
    publish(a, world, "p/a", "old", persist=True)
    publish(a, world, "p/a", "new", persist=True)
    publish(a, world, "p/b/c", "deep", persist=True)
    publish(a, world, "pb/x", "prefix-only", persist=True)
    publish(a, world, "p/volatile", "gone")
    proof = world.proof(reader, "query")
    r.request(FrameType.PROOF, proof)
    q = sign_query(reader, namespace=world.ns.id, uri="p/*", proof_id=object_id(proof), now=T0)
    frames = r.request(FrameType.QUERY, q.raw, None, 100)
    from wavemq_edge.wave import Message

    results = [Message.parse(f.fields[1]).payload[0][1] for f in frames  # type: ignore[arg-type]
               if f.type is FrameType.RESULT]
    assert results == [b"new", b"deep"]
    assert frames[-1].type is FrameType.QUERY_END and frames[-1].fields[1:] == (2, None, "local")


def test_query_without_query_permission_is_refused(world: World) -> None:
    core = make_core()
    reader = world.entity(grants="subscribe")
    r = Agent(core, reader)
    proof = world.proof(reader, "subscribe")
    r.request(FrameType.PROOF, proof)
    q = sign_query(reader, namespace=world.ns.id, uri="*", proof_id=object_id(proof), now=T0)
    frame = r.request(FrameType.QUERY, q.raw, None, 10)[-1]
    assert frame.type is FrameType.REFUSED and frame.fields[1] == ErrorCode.PERMISSION_DENIED


def test_durable_subscription_survives_a_restart(world: World) -> None:
    backend = MemoryBackend()
    core = make_core(backend=backend)
    pub, sub = world.entity(), world.entity()
    b = Agent(core, sub)
    subscribe(b, world, "k/*", "keep")
    core.queues.close(1.0)
    core2 = make_core(backend=backend)
    assert [s.sub_id for s in core2.subscriptions()] == ["keep"]
    a = Agent(core2, pub)
    publish(a, world, "k/1", "while away")  # queued before the subscriber reconnects
    b2 = Agent(core2, sub)
    assert texts(subscribe(b2, world, "k/*", "keep")) == ["while away"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xff\xff\xff", CloseCode.FRAME_TOO_LARGE),
        (b"\x00\x00\x00\x01\xff", CloseCode.MALFORMED_FRAME),
        (b"\x00\x00\x00\x02\x81\x19", CloseCode.MALFORMED_FRAME),
        (cbor2.dumps([999]), None),
    ],
)
def test_bad_frames_close_only_that_connection(world: World, data: bytes, code: CloseCode | None) -> None:
    core = make_core()
    good_pub, bad, sub = world.entity(), world.entity(), world.entity()
    a, x, b = Agent(core, good_pub), Agent(core, bad), Agent(core, sub)
    subscribe(b, world, "*", "all")
    if code is None:
        data = len(data).to_bytes(4, "big") + data
        code = CloseCode.UNKNOWN_FRAME_TYPE
    x.send_raw(data)
    err = x.recv()[-1]
    assert err.type is FrameType.ERROR and err.fields[0] == code
    assert x.session.closing
    publish(a, world, "still/working", "yes")
    assert texts(b.recv()) == ["yes"]


def test_frames_before_auth_and_bad_auth_close(world: World) -> None:
    core = make_core()
    who, other = world.entity(), world.entity()
    x = Agent(core, who, authenticate=False)
    x.send(FrameType.STATUS, 1)
    err = x.recv()[-1]
    assert err.type is FrameType.ERROR and "before AUTH" in str(err.fields[1])
    y = Agent(core, who, authenticate=False)
    from wavemq_edge.wave import sign_handshake

    assert isinstance(y.challenge, bytes)
    y.send(FrameType.AUTH, who.entity.raw, sign_handshake(other, y.challenge))  # someone else's signature
    err = y.recv()[-1]
    assert err.type is FrameType.ERROR and "authentication failed" in str(err.fields[1])
    z = Agent(core, who, authenticate=False)
    z.send(FrameType.AUTH, who.entity.raw, sign_handshake(who, b"\x00" * 32))  # replayed for another challenge
    assert z.recv()[-1].type is FrameType.ERROR


def test_handshake_timeout(world: World) -> None:
    core = make_core()
    x = Agent(core, world.entity(), authenticate=False)
    assert x.session.next_deadline() == 10.0
    x.session.handle_timer(10.0)
    err = x.recv()[-1]
    assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.TIMEOUT


def test_wrong_field_types_close_with_bad_fields(world: World) -> None:
    core = make_core()
    x = Agent(core, world.entity())
    x.send(FrameType.PUBLISH, "not-a-number", b"")
    err = x.recv()[-1]
    assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.BAD_FIELDS


def test_subscription_limit_per_connection(world: World) -> None:
    opts = RouterOptions(subscription_limits=QueueLimits(100, 1 << 20, 86400), max_subscriptions_per_connection=2)
    core = make_core(options=opts)
    b = Agent(core, world.entity())
    assert subscribe(b, world, "a", "1")[-1].type is FrameType.SUBSCRIBED
    assert subscribe(b, world, "b", "2")[-1].type is FrameType.SUBSCRIBED
    frame = subscribe(b, world, "c", "3")[-1]
    assert frame.type is FrameType.REFUSED and frame.fields[1] == ErrorCode.TOO_MANY_SUBSCRIPTIONS


def test_status(world: World) -> None:
    core = make_core()
    a = Agent(core, world.entity())
    reply = a.request(FrameType.STATUS)[-1]
    assert reply.type is FrameType.STATUS_REPLY
    status = reply.fields[1]
    assert isinstance(status, dict) and status["subscriptions"] == 0 and "version" in status
