"""Site <-> designated router trunk, driven in memory: channel, batches, acks, resend, downstream."""

from __future__ import annotations

import random

import pytest
from router_helpers import T0, YEAR, Agent, World, make_core

from wavemq_edge.router import RouterCore, RouterOptions
from wavemq_edge.router.channel import ChannelError, ChannelRole, SecureChannel
from wavemq_edge.router.trunk import PeerSession, TrunkOptions, Uplink, UplinkSession, UplinkSet
from wavemq_edge.router.trunk.lanes import PROMOTE_MAX, AckedRanges
from wavemq_edge.storage import MemoryBackend, QueueLimits
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Message,
    Statement,
    Verifier,
    build_proof,
    create_attestation,
    create_entity,
    object_id,
    sign_message,
    sign_subscribe,
)
from wavemq_edge.wire import FrameType


def route_proof(world: World, who: EntitySecret, resource: str = "*", expiry_s: int = YEAR,
                ns: EntitySecret | None = None) -> bytes:
    ns = ns or world.ns
    st = Statement(PSET_WAVEMQ, frozenset({"route"}), tuple(resource.split("/")))
    world.store.put_attestation(create_attestation(ns, who.entity, ns.id, [st], now=T0 - 5, expiry_s=expiry_s))
    return build_proof(world.store, who.id, ns.id, [st], now=T0).to_bytes()


class Tier:
    """A DR core and a site core joined by an in-memory trunk that the test can cut."""

    def __init__(self, world: World, window: int = 2048) -> None:
        self.world = world
        self.dr_entity = world.entity(grants=None)
        self.site_entity = world.entity(grants=None)
        self.proof = route_proof(world, self.dr_entity)
        opts = RouterOptions(subscription_limits=QueueLimits(100_000, 1 << 26, 86400), inflight_window=256)
        self.dr = make_core(options=opts, backend=MemoryBackend(), router_id=self.dr_entity.id,
                            designated=frozenset({world.ns.id}))
        self.uplinks = UplinkSet()
        self.site = make_core(options=opts, backend=MemoryBackend(), router_id=self.site_entity.id,
                              trunked={world.ns.id: QueueLimits(100_000, 1 << 26, 86400)}, hooks=self.uplinks)
        self.options = TrunkOptions(window=window)
        self.uplink = Uplink(self.site, self.site_entity, world.ns.id, "dr:4515", self.options, T0)
        self.uplinks.add(self.uplink)
        self.up: UplinkSession | None = None
        self.peer: PeerSession | None = None

    def connect(self, now: float = 0.0, pump: bool = True) -> None:
        self.up = self.uplink.new_session(Verifier(), now)
        self.peer = PeerSession(self.dr, self.dr_entity, Verifier(), {self.world.ns.id: self.proof}, self.options, now)
        if pump:
            self.pump(now)

    def cut(self, now: float = 0.0) -> None:
        assert self.peer is not None
        self.peer.connection_lost(now)
        self.uplink.session_closed(now, T0 + now)
        self.up = self.peer = None

    def restart_site(self) -> None:
        """The site's trunk state as after a restart: a new ``Uplink`` over the same (durable) queue, so
        the ranges the DR had acknowledged above the queue's head are forgotten."""
        assert self.up is None
        self.uplink = Uplink(self.site, self.site_entity, self.world.ns.id, "dr:4515", self.options, T0)
        self.uplinks.add(self.uplink)

    def pump(self, now: float = 0.0) -> None:
        """Move bytes both ways until quiet."""
        for _ in range(100):
            assert self.up is not None and self.peer is not None
            self.up.prepare_output(now)
            self.to_dr(b"", now)
            self.dr.service()
            self.site.service()
            self.peer.prepare_output(now)
            a, b = self.up.bytes_to_send(), self.peer.bytes_to_send()
            if not a and not b:
                return
            if a:
                self.to_dr(a, now)
            if b:
                self.up.receive_bytes(b, now, T0 + now)

    def to_dr(self, data: bytes, now: float = 0.0) -> None:
        """Bytes from the site reach the DR, which admits every batch (the glue does it in slices)."""
        assert self.peer is not None
        if data:
            self.peer.receive_bytes(data, now, T0 + now)
        while self.peer.has_work():
            self.peer.work(now, T0 + now, 1 << 30)


def publish(agent: Agent, world: World, uri: str, text: str, router: RouterCore) -> None:
    proof = world.proof(agent.who, "publish")
    agent.request(FrameType.PROOF, proof)
    msg = sign_message(agent.who, namespace=world.ns.id, uri=uri, payload=[("t", text.encode())],
                       proof_id=object_id(proof), now=T0, origin_router=router.router_id)
    frames = agent.request(FrameType.PUBLISH, msg.raw)
    assert frames[-1].type is FrameType.OK, frames


def subscribe(agent: Agent, world: World, pattern: str, sub_id: str, router: RouterCore) -> None:
    proof = world.proof(agent.who, "subscribe")
    agent.request(FrameType.PROOF, proof)
    req = sign_subscribe(agent.who, namespace=world.ns.id, uri=pattern, sub_id=sub_id, router_id=router.router_id,
                         proof_id=object_id(proof), now=T0)
    assert agent.request(FrameType.SUBSCRIBE, req.raw, False)[-1].type is FrameType.SUBSCRIBED


def texts(agent: Agent) -> list[str]:
    out = []
    frames = agent.recv()
    seqs: dict[str, list[int]] = {}
    for f in frames:
        if f.type is FrameType.DELIVER:
            raw = f.fields[2]
            assert isinstance(raw, bytes)
            out.append(Message.parse(raw).payload[0][1].decode())
            seqs.setdefault(str(f.fields[0]), []).append(int(f.fields[1]))  # type: ignore[call-overload]
    for sid, s in seqs.items():
        agent.send(FrameType.DACK, sid, s)
    return out


def test_site_publish_reaches_dr_subscriber_and_only_once_locally(world: World) -> None:
    t = Tier(world)
    t.connect()
    dr_sub, site_sub, pub = Agent(t.dr, world.entity()), Agent(t.site, world.entity()), None
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    subscribe(site_sub, world, "*", "local", t.site)
    t.pump()
    pub = Agent(t.site, world.entity())
    for i in range(5):
        publish(pub, world, f"s/{i}", f"m{i}", t.site)
    t.pump()
    assert texts(dr_sub) == [f"m{i}" for i in range(5)]
    t.pump()
    assert texts(site_sub) == [f"m{i}" for i in range(5)]  # local delivery, and no echo from the DR
    t.pump()
    assert texts(site_sub) == []
    assert t.site.queues.stats(t.uplink.queue_id).depth == 0  # acknowledged by the DR


def test_outage_backlog_is_resent_and_duplicates_dropped(world: World) -> None:
    t = Tier(world, window=8)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    pub = Agent(t.site, world.entity())
    for i in range(30):  # uplink down: queued at the site
        publish(pub, world, f"b/{i}", f"m{i}", t.site)
    assert t.uplink.backlog() == 30
    t.connect(pump=False)
    # handshake, then the first batches reach the DR but its acks are lost (cut): the DR sees resends
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)  # hello
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)  # accept -> auth + first batches
    t.to_dr(t.up.bytes_to_send())
    assert t.peer.received == 8
    t.peer.bytes_to_send()  # the acks are lost
    t.cut()
    t.connect(1.0)
    t.pump(1.0)
    got = texts(dr_sub)
    t.pump(1.0)
    got += texts(dr_sub)
    for _ in range(10):
        t.pump(1.0)
        got += texts(dr_sub)
    assert got == [f"m{i}" for i in range(30)]  # in order, none lost, none twice
    assert t.uplink.backlog() == 0
    assert t.dr.counters.duplicates >= 1


def test_downstream_from_another_site_and_query_via_dr(world: World) -> None:
    t = Tier(world)
    t.connect()
    site_sub = Agent(t.site, world.entity())
    subscribe(site_sub, world, "x/*", "down", t.site)
    t.pump()
    dr_pub = Agent(t.dr, world.entity())  # a publisher at the DR stands for another site
    publish(dr_pub, world, "x/1", "from-cloud", t.dr)
    t.pump()
    assert texts(site_sub) == ["from-cloud"]
    assert t.uplink.stats.delivered_down == 1


def test_ended_local_subscription_is_removed_at_the_dr(world: World) -> None:
    t = Tier(world)
    t.connect()
    a = Agent(t.site, world.entity())
    proof = world.proof(a.who, "subscribe")
    a.request(FrameType.PROOF, proof)
    req = sign_subscribe(a.who, namespace=world.ns.id, uri="e/*", sub_id="tmp", router_id=t.site.router_id,
                         proof_id=object_id(proof), now=T0)
    a.request(FrameType.SUBSCRIBE, req.raw, True)  # ephemeral
    t.pump()
    assert [s.sub_id for s in t.dr.subscriptions()] == ["tmp"]
    a.session.connection_lost(0.0)
    t.pump()
    assert t.dr.subscriptions() == []


@pytest.mark.parametrize("case", ["wrong-key", "replayed-transcript", "other-namespace", "sub-resource", "expired"])
def test_channel_failures(world: World, case: str) -> None:
    dr, site = world.entity(grants=None), world.entity(grants=None)
    verifier = Verifier()
    if case in ("wrong-key", "replayed-transcript"):
        proofs = {world.ns.id: route_proof(world, dr)}
    elif case == "other-namespace":
        other = create_entity(T0 - 20, YEAR)
        world.store.put_entity(other.entity)
        proofs = {world.ns.id: route_proof(world, dr, ns=other)}
    elif case == "sub-resource":
        proofs = {world.ns.id: route_proof(world, dr, resource="a/*")}
    elif case == "expired":
        proofs = {world.ns.id: route_proof(world, dr, expiry_s=10)}
    i = SecureChannel(ChannelRole.INITIATOR, site, verifier=verifier, max_frame_bytes=1 << 18,
                      namespace=world.ns.id)
    r_me = world.entity(grants=None) if case == "wrong-key" else dr
    r = SecureChannel(ChannelRole.RESPONDER, r_me, verifier=Verifier(), max_frame_bytes=1 << 18,
                      route_proofs=proofs)
    if case == "replayed-transcript":
        # a DR answer recorded from another channel (other ephemeral keys) is replayed to this one
        i_other = SecureChannel(ChannelRole.INITIATOR, site, verifier=verifier,
                                max_frame_bytes=1 << 18, namespace=world.ns.id)
        r.receive_bytes(i_other.bytes_to_send(), T0 + 100)
        accept = r.bytes_to_send()
        i.bytes_to_send()
        with pytest.raises(ChannelError) as info:
            i.receive_bytes(accept, T0 + 100)
        assert info.value.reason == "bad-signature"
        return
    r.receive_bytes(i.bytes_to_send(), T0 + 100)
    with pytest.raises(ChannelError) as info:
        i.receive_bytes(r.bytes_to_send(), T0 + 100)
    expected = {"wrong-key": "route-proof", "other-namespace": "route-proof", "sub-resource": "route-proof",
                "expired": "route-proof"}[case]
    assert info.value.reason == expected, str(info.value)


def test_site_with_a_forged_signature_is_refused(world: World) -> None:
    dr, site, impostor = world.entity(grants=None), world.entity(grants=None), world.entity(grants=None)
    i = SecureChannel(ChannelRole.INITIATOR, site, verifier=Verifier(), max_frame_bytes=1 << 18,
                      namespace=world.ns.id)
    r = SecureChannel(ChannelRole.RESPONDER, dr, verifier=Verifier(), max_frame_bytes=1 << 18,
                      route_proofs={world.ns.id: route_proof(world, dr)})
    r.receive_bytes(i.bytes_to_send(), T0)
    i.receive_bytes(r.bytes_to_send(), T0)
    auth = bytearray(i.bytes_to_send())
    # swap the site entity for the impostor's: the signature no longer matches
    idx = auth.find(site.entity.raw)
    auth[idx : idx + len(site.entity.raw)] = impostor.entity.raw
    with pytest.raises(ChannelError) as info:
        r.receive_bytes(bytes(auth), T0)
    assert info.value.reason == "bad-signature"


def test_tampered_record_ends_the_channel(world: World) -> None:
    t = Tier(world)
    t.connect()
    assert t.up is not None and t.peer is not None
    t.up.channel.send(FrameType.PING, 1)
    data = bytearray(t.up.bytes_to_send())
    data[-1] ^= 1
    t.peer.receive_bytes(bytes(data), 0.0, T0)
    assert t.peer.closing and "bad-record" in t.peer.close_reason


def test_dead_link_is_detected(world: World) -> None:
    t = Tier(world)
    t.connect()
    assert t.up is not None
    t.up.handle_timer(5.0)  # keepalive ping
    assert not t.up.closing
    t.up.handle_timer(15.0)
    assert t.up.closing and "no traffic" in t.up.close_reason


def _sign(pub: Agent, world: World, proof: bytes, t: Tier, i: int, at: float) -> Message:
    """A message shaped as ``bench --tier`` sends them (its 136 bytes per message is the figure to hold)."""
    return sign_message(pub.who, namespace=world.ns.id, uri=f"bench/p0/m{i % 100}", payload=[("b", bytes(64))],
                        proof_id=object_id(proof), now=at, origin_router=t.site.router_id)


@pytest.mark.parametrize("overflow", [False, True])
def test_wire_bytes_per_message(world: World, overflow: bool) -> None:
    """Both directions, framing and encryption included, 64-byte payloads. Windowed: a burst within the
    window, written in one pass. Overflowing: a fast publisher far beyond a small window, the site writing
    after every publish and the DR answering as it goes (before: each message beyond the window went out
    as its own ~200-byte frame)."""
    t = Tier(world, window=512)
    t.connect()
    pub = Agent(t.site, world.entity())
    proof = world.proof(pub.who, "publish")
    pub.request(FrameType.PROOF, proof)
    n = 3000 if overflow else 500
    for i in range(500):
        pub.request(FrameType.PUBLISH, _sign(pub, world, proof, t, i, T0 + i / 1000).raw)
    t.pump()  # warm: definitions (proof, ids) go once per connection
    assert t.up is not None and t.peer is not None
    total = 0
    for i in range(n):
        pub.request(FrameType.PUBLISH, _sign(pub, world, proof, t, i, T0 + 1 + i / 1000).raw)
        if overflow:  # a write pass per publish; the DR's acks come back every few publishes
            t.up.prepare_output(0.0)
            a = t.up.bytes_to_send()
            total += len(a)
            if a:
                t.to_dr(a)
            if i % 64 == 0:  # slower than the publisher: the window (512) fills and overflows
                b = t.peer.bytes_to_send()
                total += len(b)
                t.up.receive_bytes(b, 0.0, T0)
    for _ in range(1000):
        t.up.prepare_output(0.0)
        a, b = t.up.bytes_to_send(), t.peer.bytes_to_send()
        total += len(a) + len(b)
        if not a and not b:
            break
        if a:
            t.to_dr(a)
        if b:
            t.up.receive_bytes(b, 0.0, T0)
    per_message = total / n
    assert t.uplink.backlog() == 0
    print(f"trunk bytes per message, both directions ({'overflowing' if overflow else 'windowed'}): "
          f"{per_message:.1f}")
    assert per_message <= 136, per_message


def test_a_held_publishers_new_messages_follow_its_backlog(world: World) -> None:
    """A publisher with a long backlog (over PROMOTE_MAX) publishes again once the uplink is up: its new
    messages reach the DR's subscriber after its whole backlog, in order; another publisher with nothing
    queued is not held behind that backlog (the live lane)."""
    t = Tier(world, window=8)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    pub, other = Agent(t.site, world.entity()), Agent(t.site, world.entity())
    backlog = PROMOTE_MAX + 36
    for i in range(backlog):  # uplink down
        publish(pub, world, f"b/{i}", f"b{i}", t.site)
    t.connect(pump=False)
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)  # open: the first window of the backlog goes out
    assert t.uplink.stats.held == 1
    for i in range(3):
        publish(pub, world, f"l/{i}", f"live{i}", t.site)
        publish(other, world, f"o/{i}", f"o{i}", t.site)
    t.up.prepare_output(0.0)
    t.to_dr(t.up.bytes_to_send())
    t.dr.service()
    got = texts(dr_sub)
    assert [x for x in got if x.startswith("o")] == ["o0", "o1", "o2"]  # not behind the backlog
    assert not [x for x in got if x.startswith("live")]  # behind its own backlog
    assert len([x for x in got if x.startswith("b")]) <= 8  # most of the backlog is still at the site
    for i in range(3, 6):  # more new messages while the drain goes on
        publish(pub, world, f"l/{i}", f"live{i}", t.site)
        t.pump()
        got += texts(dr_sub)
    for _ in range(40):
        t.pump()
        got += texts(dr_sub)
    assert [x for x in got if x[0] in "bl"] == [f"b{i}" for i in range(backlog)] + [f"live{i}" for i in range(6)]
    assert t.uplink.backlog() == 0 and t.uplink.stats.live >= 3
    assert t.dr.counters.duplicates == 0


def test_a_small_backlog_goes_first_and_keeps_its_publishers_order(world: World) -> None:
    """A publisher with a few queued messages (the live publisher of a real outage) is not stuck behind
    another's long backlog: its queued messages go first by the live lane, then its new ones, in order."""
    t = Tier(world, window=8)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    bulk, sensor = Agent(t.site, world.entity()), Agent(t.site, world.entity())
    for i in range(PROMOTE_MAX + 36):
        publish(bulk, world, f"b/{i}", f"b{i}", t.site)
    for i in range(3):
        publish(sensor, world, f"s/{i}", f"s{i}", t.site)  # queued last, behind the bulk
    t.connect(pump=False)
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)
    publish(sensor, world, "s/3", "s3", t.site)
    t.up.prepare_output(0.0)
    t.to_dr(t.up.bytes_to_send())
    t.dr.service()
    first = texts(dr_sub)
    assert first[:3] == ["s0", "s1", "s2"]  # the live lane is admitted first at the DR (s3: next frame)
    got = first
    for _ in range(40):
        t.pump()
        got += texts(dr_sub)
    assert [x for x in got if x.startswith("b")] == [f"b{i}" for i in range(PROMOTE_MAX + 36)]
    assert [x for x in got if x.startswith("s")] == ["s0", "s1", "s2", "s3"] and t.uplink.backlog() == 0


def _by_publisher(got: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for x in got:
        out.setdefault(x.rstrip("0123456789"), []).append(x)
    return out


def test_each_publishers_order_holds_across_lanes_and_a_reconnect(world: World) -> None:
    """Three publishers while a long backlog drains: ``big`` has more than PROMOTE_MAX queued (held in the
    backlog lane), ``small`` a few (sent first by the live lane), ``new`` none. All three publish during
    the drain; the connection is cut mid-drain with frames and acknowledgements lost both ways. At the
    DR's subscriber each publisher's messages arrive in the order the site accepted them, once each, and
    ``small``'s and ``new``'s do not wait for ``big``'s backlog."""
    t = Tier(world, window=16)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    agents = {name: Agent(t.site, world.entity()) for name in ("big", "small", "new")}
    sent: dict[str, list[str]] = {name: [] for name in agents}

    def pub(name: str) -> None:
        text = f"{name}{len(sent[name])}"
        publish(agents[name], world, f"{name}/x", text, t.site)
        sent[name].append(text)

    for i in range(200):
        pub("big")
        if i % 50 == 0:
            pub("small")
    t.connect(pump=False)
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)  # open: the first window of each lane goes out
    t.to_dr(t.up.bytes_to_send())
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)  # their acknowledgements
    t.dr.service()
    got = texts(dr_sub)
    for _ in range(4):
        pub("big"), pub("small"), pub("new")
    t.up.prepare_output(0.0)
    t.to_dr(t.up.bytes_to_send())
    t.dr.service()
    got += texts(dr_sub)
    early = _by_publisher(got)
    assert early["small"] == sent["small"] and early["new"] == sent["new"]  # ahead of big's backlog
    assert len(early["big"]) < 200
    t.peer.bytes_to_send()  # these acknowledgements are lost, and so is what the site sends next
    t.up.prepare_output(0.0)
    t.up.bytes_to_send()
    t.cut(1.0)
    for _ in range(3):
        pub("big"), pub("small"), pub("new")
    t.connect(2.0)
    for _ in range(60):
        t.pump(2.0)
        got += texts(dr_sub)
        if len(got) >= sum(map(len, sent.values())):
            break
    assert _by_publisher(got) == sent
    assert t.uplink.backlog() == 0


def _sign_text(pub: Agent, world: World, proof: bytes, t: Tier, uri: str, text: str) -> Message:
    return sign_message(pub.who, namespace=world.ns.id, uri=uri, payload=[("t", text.encode())],
                        proof_id=object_id(proof), now=T0, origin_router=t.site.router_id)


def test_the_dr_admits_a_publishers_received_backlog_before_an_earlier_sites_live_message(world: World) -> None:
    """An earlier site sent a publisher's single live message (lane ``true``) while that publisher's backlog
    batches could still be unadmitted at the DR: the DR admits those first (the live lane goes ahead of
    the backlog, but not of the same publisher's)."""
    t = Tier(world, window=4096)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    bulk, pub = Agent(t.site, world.entity()), Agent(t.site, world.entity())
    for i in range(200):
        publish(bulk, world, f"b/{i}", f"b{i}", t.site)
        if i % 2 == 0:
            publish(pub, world, f"p/{i}", f"p{i}", t.site)
    t.connect(pump=False)
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)
    while t.up.has_work():  # a batch per loop iteration in the glue
        t.up.prepare_output(0.0)
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)  # the whole backlog: decoded, not admitted
    proof = world.proof(pub.who, "publish")
    live = _sign_text(pub, world, proof, t, "p/live", "plive")
    defs, base_ts, blob = t.up.encoder.encode_batch([(live, proof)])
    t.up.channel.send(FrameType.T_PUB, 10_000, defs, base_ts, blob, [], True)
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.peer.work(0.0, T0, 1)
    t.dr.service()
    got = texts(dr_sub)
    assert got == [f"p{i}" for i in range(0, 200, 2)] + ["plive"]  # its backlog first, nobody else's
    for _ in range(40):
        t.pump()
        got += texts(dr_sub)
    assert [x for x in got if x.startswith("b")] == [f"b{i}" for i in range(200)]
    assert t.uplink.backlog() == 0


def test_a_reconnect_does_not_resend_what_the_live_lane_had_acknowledged(world: World) -> None:
    t = Tier(world, window=8)
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    pub, other = Agent(t.site, world.entity()), Agent(t.site, world.entity())
    for i in range(PROMOTE_MAX + 36):
        publish(pub, world, f"b/{i}", f"b{i}", t.site)
    t.connect(pump=False)
    assert t.up is not None and t.peer is not None
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)
    for i in range(20):  # a publisher with nothing queued: the live lane, acknowledged ahead of the backlog
        publish(other, world, f"l/{i}", f"live{i}", t.site)
    t.up.prepare_output(0.0)
    t.to_dr(t.up.bytes_to_send())
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)  # acks of the first backlog window and the live lane
    t.up.prepare_output(0.0)
    t.up.bytes_to_send()  # lost with the connection
    assert len(t.uplink.acked) >= 1  # the live lane's messages: acknowledged, kept queued behind the backlog
    t.cut()
    t.connect(1.0)
    got = []
    for _ in range(40):
        t.pump(1.0)
        got += texts(dr_sub)
    assert t.uplink.backlog() == 0 and len(t.uplink.acked) == 0
    assert t.dr.counters.duplicates == 0  # nothing acknowledged was sent again
    assert [x for x in got if x.startswith("b")] == [f"b{i}" for i in range(PROMOTE_MAX + 36)]
    assert [x for x in got if x.startswith("l")] == [f"live{i}" for i in range(20)]


@pytest.mark.parametrize("lane", [True, 3, "live"])
def test_an_earlier_sites_live_frame_is_admitted_and_an_unknown_lane_refused(world: World, lane: object) -> None:
    """``lane`` true: the single live message an earlier site sends, admitted and acknowledged only with
    its backlog (the DR must not acknowledge it by sequence: that site would drop its backlog). Any
    other value than false, 2 or true is a protocol violation."""
    t = Tier(world)
    t.connect()
    assert t.up is not None and t.peer is not None
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    pub = Agent(t.site, world.entity())
    proof = world.proof(pub.who, "publish")
    msg = _sign(pub, world, proof, t, 1, T0)
    defs, base_ts, blob = t.up.encoder.encode_batch([(msg, proof)])
    t.up.channel.send(FrameType.T_PUB, 7, defs, base_ts, blob, [], lane)
    t.to_dr(t.up.bytes_to_send())
    t.dr.service()
    if lane is True:
        assert t.dr.counters.published == 1 and len(texts(dr_sub)) == 1
        assert t.peer.bytes_to_send() == b""  # no T_ACK for it
        assert not t.peer.closing
    else:
        assert t.peer.closing and "T_PUB lane" in t.peer.close_reason, t.peer.close_reason


def test_acked_ranges_merge_and_release_a_prefix() -> None:
    r = AckedRanges()
    r.add(10, 12)
    r.add(20, 20)
    r.add(13, 15)  # adjacent: merged
    r.add(17, 19)
    assert len(r) == 2 and r.covering(14) == 15 and r.covering(16) is None and r.covering(20) == 20
    assert r.next_start(15) == 17 and r.next_start(20) is None
    assert r.take_prefix(5) is None and len(r) == 2
    assert r.take_prefix(10) == 15 and len(r) == 1
    r.add(16, 16)
    assert r.take_prefix(16) == 20 and len(r) == 0


@pytest.mark.parametrize("case", ["ack-with-text-sequence", "frame-only-a-site-sends", "ack-missing-field"])
def test_a_malformed_frame_from_the_dr_closes_the_link_and_keeps_the_backlog(world: World, case: str) -> None:
    t = Tier(world)
    t.connect()
    assert t.up is not None and t.peer is not None
    pub = Agent(t.site, world.entity())
    for i in range(5):  # queued for the DR, not yet acknowledged
        publish(pub, world, f"b/{i}", f"m{i}", t.site)
    bad = {"ack-with-text-sequence": (FrameType.T_ACK, "4", []),
           "frame-only-a-site-sends": (FrameType.T_SUB, 1, b"x", b"y"),
           "ack-missing-field": (FrameType.T_ACK, 4)}[case]
    t.peer.channel.send(*bad)
    t.up.receive_bytes(t.peer.bytes_to_send(), 0.0, T0)
    assert t.up.closing and "protocol violation" in t.up.close_reason, t.up.close_reason
    assert t.uplink.backlog() == 5  # nothing was acknowledged: every message is still queued to resend


def test_a_malformed_frame_from_a_site_closes_only_that_link(world: World) -> None:
    t = Tier(world)
    t.connect()
    assert t.up is not None and t.peer is not None
    t.up.channel.send(FrameType.T_DACK, "ref", ["not", "integers"])
    t.peer.receive_bytes(t.up.bytes_to_send(), 0.0, T0)
    assert t.peer.closing and "protocol violation" in t.peer.close_reason, t.peer.close_reason
    dr_agent = Agent(t.dr, world.entity())  # the DR itself goes on serving its agents
    publish(dr_agent, world, "x/1", "still here", t.dr)


def _random_run(world: World, seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """Publishes from three publishers (one with a long backlog, one with a few queued) while frames move
    in random slices, the DR admits in random slices, and the link is cut (losing what was in flight) or
    the site restarts; returns what was published and what the DR's subscriber got, in order."""
    rng = random.Random(seed)
    t = Tier(world, window=rng.choice([4, 16, 64]))
    dr_sub = Agent(t.dr, world.entity())
    subscribe(dr_sub, world, "*", "cloud", t.dr)
    agents = {name: Agent(t.site, world.entity()) for name in ("big", "small", "new")}
    sent: dict[str, list[str]] = {name: [] for name in agents}

    def pub(name: str) -> None:
        sent[name].append(f"{name}{len(sent[name])}")
        publish(agents[name], world, f"{name}/x", sent[name][-1], t.site)

    for i in range(PROMOTE_MAX + 60):
        pub("big")
        if i % 30 == 0:
            pub("small")
    t.connect(pump=False)
    got: list[str] = []
    cuts = 0
    for step in range(400):
        assert t.up is not None and t.peer is not None
        r = rng.random()
        if r < 0.3:
            pub(rng.choice(["big", "big", "small", "new"]))
        elif r < 0.5:
            t.up.prepare_output(step)
            t.peer.receive_bytes(t.up.bytes_to_send(), step, T0 + step)
        elif r < 0.7:
            t.peer.work(step, T0 + step, rng.randint(1, 40))
        elif r < 0.975:
            t.peer.prepare_output(step)
            t.up.receive_bytes(t.peer.bytes_to_send(), step, T0 + step)
        else:  # what is in flight either way is lost; sometimes the site restarts as well
            cuts += 1
            t.cut(step)
            if r > 0.993:
                t.restart_site()
            t.connect(step, pump=False)
        t.dr.service()
        got += texts(dr_sub)
    for _ in range(100):
        t.pump(400.0)
        got += texts(dr_sub)
        if len(got) >= sum(map(len, sent.values())):
            break
    return sent, got


@pytest.mark.parametrize("seed", range(6))
def test_each_publishers_order_holds_through_random_slices_cuts_and_restarts(world: World, seed: int) -> None:
    sent, got = _random_run(world, seed)
    assert _by_publisher(got) == sent  # in order, none lost, none twice
