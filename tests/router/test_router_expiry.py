"""Expiry of grants and subscriptions, on the fixed clock of router_helpers (T0, in-memory agents).

These rules used to be checked by waiting real seconds against a router process for a grant made with
``--expiry 2s``; on the fake clock each edge is one step of ``now`` and the whole file runs in
milliseconds. Every grant here is made at ``T0 - 5`` (router_helpers.World.entity), so a grant of
``expiry_s=100`` expires at wall ``T0 + 95``, that is at monotonic ``now = 95.0`` for make_core's core.
"""

from __future__ import annotations

import pytest
from router_helpers import T0, Agent, World, make_core

from wavemq_edge.router import ErrorCode
from wavemq_edge.wave import EntitySecret, object_id, sign_message, sign_query, sign_subscribe
from wavemq_edge.wire import Frame, FrameType

GRANT_S = 100
EXPIRES = GRANT_S - 5.0  # monotonic time at which a GRANT_S grant made at T0 - 5 expires


def publish(agent: Agent, world: World, uri: str, text: str, now: float) -> Frame:
    proof = world.proof(agent.who, "publish")
    agent.request(FrameType.PROOF, proof, now=now)
    msg = sign_message(agent.who, namespace=world.ns.id, uri=uri, payload=[("text", text.encode())],
                       proof_id=object_id(proof), now=T0 + now)
    return agent.request(FrameType.PUBLISH, msg.raw, now=now)[-1]


def subscribe(agent: Agent, world: World, pattern: str, sub_id: str, now: float, expiry_s: int = 0,
              ephemeral: bool = False) -> Frame:
    proof = world.proof(agent.who, "subscribe")
    agent.request(FrameType.PROOF, proof, now=now)
    req = sign_subscribe(agent.who, namespace=world.ns.id, uri=pattern, sub_id=sub_id, router_id=b"",
                         proof_id=object_id(proof), now=T0 + now, expiry_s=expiry_s)
    return agent.request(FrameType.SUBSCRIBE, req.raw, ephemeral, now=now)[-1]


def refused(frame: Frame, code: ErrorCode) -> None:
    assert frame.type is FrameType.REFUSED, frame
    assert frame.fields[1] == code, frame


def short_lived(world: World, grants: str = "publish,subscribe,query") -> EntitySecret:
    return world.entity(grants=grants, expiry_s=GRANT_S)


def test_publish_is_accepted_until_the_grant_expires_and_refused_after(world: World) -> None:
    core = make_core()
    a = Agent(core, short_lived(world, "publish"))
    assert publish(a, world, "x", "in time", now=EXPIRES - 1).type is FrameType.OK
    # the same proof, already verified and cached on this connection: the cache must not outlive it
    refused(publish(a, world, "x", "late", now=EXPIRES + 1), ErrorCode.PROOF_EXPIRED)
    assert core.counters.published == 1


def test_subscription_ends_at_its_proofs_expiry(world: World) -> None:
    core = make_core()
    b = Agent(core, short_lived(world))
    assert subscribe(b, world, "t/*", "s", now=0.0).type is FrameType.SUBSCRIBED
    assert core.next_deadline(0.0, T0) == pytest.approx(EXPIRES)
    core.handle_timer(EXPIRES - 0.5, T0 + EXPIRES - 0.5)
    assert len(core.subscriptions()) == 1 and not b.recv()
    core.handle_timer(EXPIRES, T0 + EXPIRES)
    end = b.recv()[-1]
    assert end.type is FrameType.SUB_END and end.fields[1] == ErrorCode.SUBSCRIPTION_ENDED
    assert "expired" in str(end.fields[2])
    assert core.subscriptions() == [] and core.next_deadline(0.0, T0) is None


@pytest.mark.parametrize(("requested_s", "ends_at"), [(30, 30.0), (600, EXPIRES)])
def test_a_subscription_ends_at_the_earlier_of_its_requested_and_its_proofs_expiry(
        world: World, requested_s: int, ends_at: float) -> None:
    core = make_core()
    b = Agent(core, short_lived(world))
    assert subscribe(b, world, "t/*", "s", now=0.0, expiry_s=requested_s).type is FrameType.SUBSCRIBED
    assert core.next_deadline(0.0, T0) == pytest.approx(ends_at)


def test_nothing_is_delivered_to_a_subscription_after_it_expired(world: World) -> None:
    core = make_core()
    pub = Agent(core, world.entity())
    b = Agent(core, short_lived(world))
    subscribe(b, world, "t/*", "s", now=0.0)
    assert publish(pub, world, "t/1", "before", now=50.0).type is FrameType.OK
    assert [f.type for f in b.recv()] == [FrameType.DELIVER]
    core.handle_timer(EXPIRES, T0 + EXPIRES)
    assert [f.type for f in b.recv()] == [FrameType.SUB_END]
    assert publish(pub, world, "t/2", "after", now=EXPIRES + 1).type is FrameType.OK
    assert b.recv() == []
    assert core.counters.delivered == 1


def test_subscribe_and_query_with_an_expired_grant_are_refused(world: World) -> None:
    core = make_core()
    who = short_lived(world)
    a = Agent(core, who)
    refused(subscribe(a, world, "t/*", "late", now=EXPIRES + 1), ErrorCode.PROOF_EXPIRED)
    proof = world.proof(who, "query")
    a.request(FrameType.PROOF, proof, now=EXPIRES + 1)
    q = sign_query(who, namespace=world.ns.id, uri="*", proof_id=object_id(proof), now=T0 + EXPIRES + 1)
    refused(a.request(FrameType.QUERY, q.raw, None, 10, now=EXPIRES + 1)[-1], ErrorCode.PROOF_EXPIRED)
    assert core.subscriptions() == []


def test_the_earliest_expiry_among_subscriptions_arms_the_timer(world: World) -> None:
    core = make_core()
    long, brief = Agent(core, world.entity()), Agent(core, short_lived(world))
    subscribe(long, world, "t/*", "long", now=0.0)
    subscribe(brief, world, "t/*", "brief", now=0.0)
    assert core.next_deadline(0.0, T0) == pytest.approx(EXPIRES)
    core.handle_timer(EXPIRES, T0 + EXPIRES)
    assert [s.sub_id for s in core.subscriptions()] == ["long"]
    deadline = core.next_deadline(0.0, T0)
    assert deadline is not None and deadline > EXPIRES
