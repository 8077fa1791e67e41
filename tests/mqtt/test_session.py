"""mqtt/session.py on a fake clock: CONNECT and auth, publish/subscribe through the router core's checks,
QoS 0/1/2, credit window, keepalive, takeover, will, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_helpers import Device, make_hub, user_for
from router_helpers import T0, Agent, World

from wavemq_edge.mqtt import (
    MQTT_5,
    MQTT_311,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Prop,
    Properties,
    PubAck,
    Publish,
    Reason,
    Suback,
    SubOptions,
    Subscribe,
    Unsuback,
    Unsubscribe,
    Will,
    encode_packet,
)
from wavemq_edge.mqtt.hub import MqttHub
from wavemq_edge.mqtt.identity import MqttUser, hash_password
from wavemq_edge.mqtt.sys_topics import topic_matches
from wavemq_edge.wave import Message, object_id, sign_message, sign_subscribe
from wavemq_edge.wire import Frame, FrameType

BOTH = pytest.mark.parametrize("version", [MQTT_311, MQTT_5])


def hub_for(world: World, **options: object) -> MqttHub:
    dev = user_for(world, "dev", world.entity())
    narrow = user_for(world, "narrow", world.entity(resource="allowed/*"), resource="allowed/*")
    return make_hub([dev, narrow], **options)


def connected(hub: MqttHub, version: int = MQTT_5, user: str = "dev", client_id: str = "c1",
              **kw: object) -> Device:
    d = Device(hub, version)
    (ack,) = d.connect(user=user, client_id=client_id, **kw)
    assert isinstance(ack, Connack) and ack.reason == 0
    return d


def publishes(packets: list[Packet]) -> list[Publish]:
    return [p for p in packets if isinstance(p, Publish)]


def agent_subscriber(hub: MqttHub, world: World, pattern: str = "*") -> Agent:
    a = Agent(hub.core, world.entity())
    proof = world.proof(a.who, "subscribe")
    a.request(FrameType.PROOF, proof)
    req = sign_subscribe(a.who, namespace=world.ns.id, uri=pattern, sub_id="s", router_id=b"",
                         proof_id=object_id(proof), now=T0)
    assert a.request(FrameType.SUBSCRIBE, req.raw, True)[-1].type is FrameType.SUBSCRIBED
    return a


def delivered(frames: list[Frame]) -> list[Message]:
    return [Message.parse(f.fields[2]) for f in frames if f.type is FrameType.DELIVER]  # type: ignore[arg-type]


# ------------------------------------------------------------------ CONNECT

@BOTH
def test_connect_and_ping(world: World, version: int) -> None:
    d = Device(hub_for(world), version)
    (ack,) = d.connect()
    assert isinstance(ack, Connack) and ack.reason == 0 and not ack.session_present
    if version == MQTT_5:
        assert ack.properties.get_int(Prop.RECEIVE_MAXIMUM) == 32
        assert ack.properties.get_int(Prop.SHARED_SUBSCRIPTION_AVAILABLE) == 0
    assert d.send(PingReq()) == [PingResp()]


@BOTH
@pytest.mark.parametrize(("user", "password"), [("dev", "wrong"), ("nobody", "s3cret"), (None, "")])
def test_bad_user_or_password(world: World, version: int, user: str | None, password: str) -> None:
    hub = hub_for(world)
    d = Device(hub, version)
    (ack,) = d.connect(user=user, password=password)
    assert isinstance(ack, Connack)
    assert ack.reason == (Reason.BAD_USER_NAME_OR_PASSWORD if version == MQTT_5 else 4)
    assert d.session.closing and hub.refused == {"bad_user_name_or_password": 1}


def test_anonymous_only_when_configured(world: World) -> None:
    anon = user_for(world, "anon", world.entity())
    hub = make_hub([], anonymous=anon)
    d = Device(hub)
    (ack,) = d.connect(user=None)
    assert isinstance(ack, Connack) and ack.reason == 0


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_persistent_session_queues_while_away(world: World, version: int) -> None:
    hub = hub_for(world)
    keep = {"clean_start": False} if version == MQTT_311 else {
        "clean_start": False, "properties": Properties({Prop.SESSION_EXPIRY_INTERVAL: 3600})}
    d = connected(hub, version, client_id="dev1", **keep)
    d.send(Subscribe(1, (("q/#", SubOptions(1)),)))
    other = connected(hub, version, client_id="dev2", **keep)  # another client id: another session
    other.send(Subscribe(1, (("z", SubOptions(1)),)))
    d.session.connection_lost(1.0, T0 + 1)
    for i in range(3):
        wave_publish(hub, world, "q/x", str(i))
    back = Device(hub, version)
    out = back.connect(client_id="dev1", **keep)
    assert isinstance(out[0], Connack) and out[0].session_present
    assert [(p.topic, p.payload) for p in publishes(out + back.recv())] == [("q/x", b"0"), ("q/x", b"1"),
                                                                            ("q/x", b"2")]
    back.session.connection_lost(2.0, T0 + 2)
    clean = Device(hub, version)
    (ack,) = clean.connect(client_id="dev1")
    assert isinstance(ack, Connack) and not ack.session_present
    assert [sub.sub_id for sub in hub.core.subscriptions()] == [other.session.subs.by_filter["z"].sub.sub_id]


def test_session_expiry_capped_by_queue_expiry(world: World) -> None:
    d = Device(hub_for(world))
    (ack,) = d.connect(clean_start=False, properties=Properties({Prop.SESSION_EXPIRY_INTERVAL: 10**6}))
    assert isinstance(ack, Connack) and ack.properties.get_int(Prop.SESSION_EXPIRY_INTERVAL) == 86400


def test_assigned_client_id(world: World) -> None:
    d = Device(hub_for(world))
    (ack,) = d.connect(client_id="")
    assert isinstance(ack, Connack) and (ack.properties.get_str(Prop.ASSIGNED_CLIENT_IDENTIFIER) or "").startswith(
        "auto-")


def test_connect_timeout(world: World) -> None:
    d = Device(hub_for(world))
    assert d.session.next_deadline() == 10.0
    d.tick(10.0)
    assert d.session.closing and d.session.timed_out == "connect"


@BOTH
def test_keepalive_one_and_a_half(world: World, version: int) -> None:
    d = connected(hub_for(world), version, keepalive=10)
    assert d.session.next_deadline() == 15.0
    d.tick(14.9)
    assert not d.session.closing
    d.now = 14.9
    d.send(PingReq())
    d.tick(29.8)
    assert not d.session.closing
    out = d.tick(29.9)
    assert d.session.closing and d.session.timed_out == "keepalive"
    assert out == ([Disconnect(Reason.KEEP_ALIVE_TIMEOUT, out[0].properties)] if version == MQTT_5 else [])  # type: ignore[union-attr]


def test_takeover(world: World) -> None:
    hub = hub_for(world)
    old = connected(hub)
    connected(hub)
    out = old.recv()
    assert isinstance(out[0], Disconnect) and out[0].reason == Reason.SESSION_TAKEN_OVER
    assert old.session.closing and hub.takeovers == 1


# ------------------------------------------------------------------ PUBLISH device -> router

@BOTH
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_reaches_wave_agent(world: World, version: int, qos: int) -> None:
    hub = hub_for(world)
    agent = agent_subscriber(hub, world)
    d = connected(hub, version)
    out = d.send(Publish("sensors/t1", b"21.5", qos, packet_id=7 if qos else 0))
    assert out == ([] if qos == 0 else [PubAck(PacketType.PUBACK if qos == 1 else PacketType.PUBREC, 7)])
    (msg,) = delivered(agent.recv())
    user = hub.users.by_name["dev"]
    assert (msg.uri, msg.payload, msg.src, msg.namespace) == ("sensors/t1", (("application/octet-stream", b"21.5"),),
                                                              user.secret.id, world.ns.id)
    if qos == 2:  # repeated before PUBREL: acknowledged, not published again
        assert d.send(Publish("sensors/t1", b"21.5", 2, dup=True, packet_id=7)) == [PubAck(PacketType.PUBREC, 7)]
        assert delivered(agent.recv()) == []
        assert d.send(PubAck(PacketType.PUBREL, 7)) == [PubAck(PacketType.PUBCOMP, 7)]


def test_publish_without_grant_50(world: World) -> None:
    hub = hub_for(world)
    agent = agent_subscriber(hub, world)
    d = connected(hub, MQTT_5, user="narrow")
    assert d.send(Publish("allowed/x", b"1", 1, packet_id=1)) == [PubAck(PacketType.PUBACK, 1)]
    (ack,) = d.send(Publish("secret/x", b"1", 1, packet_id=2))
    assert isinstance(ack, PubAck) and ack.reason == Reason.NOT_AUTHORIZED
    assert "does not grant" in (ack.properties.get_str(Prop.REASON_STRING) or "") or ack.properties
    assert [m.uri for m in delivered(agent.recv())] == ["allowed/x"]
    assert not d.session.closing
    (disc,) = d.send(Publish("secret/x", b"1", 0))
    assert isinstance(disc, Disconnect) and disc.reason == Reason.NOT_AUTHORIZED and d.session.closing


def test_publish_without_grant_311_closes(world: World) -> None:
    d = connected(hub_for(world), MQTT_311, user="narrow")
    assert d.send(Publish("secret/x", b"1", 1, packet_id=2)) == []
    assert d.session.closing and "refused" in (d.session.close_reason or "")


@BOTH
@pytest.mark.parametrize("topic", ["a//b", "/a", "a/", "a b", "$SYS/x", "a/+", "a/#", "caf\u00e9"])
def test_invalid_topic_name(world: World, version: int, topic: str) -> None:
    d = connected(hub_for(world), version)
    out = d.send(Publish(topic, b"x", 1, packet_id=3))
    if version == MQTT_5:
        assert isinstance(out[0], PubAck) and out[0].reason == Reason.TOPIC_NAME_INVALID
    else:
        assert out == [] and d.session.closing


def test_topic_aliases(world: World) -> None:
    hub = hub_for(world, topic_alias_maximum=2)
    agent = agent_subscriber(hub, world)
    d = Device(hub)
    (ack,) = d.connect()
    assert isinstance(ack, Connack) and ack.properties.get_int(Prop.TOPIC_ALIAS_MAXIMUM) == 2
    assert d.send(Publish("a/b", b"1", 1, packet_id=1, properties=Properties({Prop.TOPIC_ALIAS: 2}))) == [
        PubAck(PacketType.PUBACK, 1)]
    assert d.send(Publish("", b"2", 1, packet_id=2, properties=Properties({Prop.TOPIC_ALIAS: 2}))) == [
        PubAck(PacketType.PUBACK, 2)]
    assert [(m.uri, m.payload[0][1]) for m in delivered(agent.recv())] == [("a/b", b"1"), ("a/b", b"2")]
    (disc,) = d.send(Publish("", b"x", 0, properties=Properties({Prop.TOPIC_ALIAS: 1})))
    assert isinstance(disc, Disconnect) and disc.reason == Reason.PROTOCOL_ERROR  # never set
    d = connected(hub, client_id="c2")
    (disc,) = d.send(Publish("a", b"x", 0, properties=Properties({Prop.TOPIC_ALIAS: 3})))
    assert isinstance(disc, Disconnect) and disc.reason == Reason.TOPIC_ALIAS_INVALID  # above the maximum


def test_retain_is_persist(world: World) -> None:
    hub = hub_for(world)
    agent = agent_subscriber(hub, world)
    connected(hub).send(Publish("r", b"x", 1, retain=True, packet_id=1))
    assert [m.persist for m in delivered(agent.recv())] == [True]


# ------------------------------------------------------------------ SUBSCRIBE, deliveries to the device

def wave_publish(hub: MqttHub, world: World, uri: str, text: str) -> None:
    a = Agent(hub.core, world.entity())
    proof = world.proof(a.who, "publish")
    a.request(FrameType.PROOF, proof)
    msg = sign_message(a.who, namespace=world.ns.id, uri=uri, payload=[("text/plain", text.encode())],
                       proof_id=object_id(proof), now=T0)
    assert a.request(FrameType.PUBLISH, msg.raw)[-1].type is FrameType.OK


@BOTH
def test_subscribe_wildcards_and_wave_publish(world: World, version: int) -> None:
    hub = hub_for(world)
    d = connected(hub, version)
    out = d.send(Subscribe(1, (("sensors/+/t", SubOptions(1)), ("plant/#", SubOptions(0)), ("x/y", SubOptions(2)))))
    assert out == [Suback(1, (1, 0, 1))]
    for uri in ("sensors/a/t", "sensors/a/b/t", "plant", "plant/a/b", "other"):
        wave_publish(hub, world, uri, uri)
    got = publishes(d.recv())
    assert [(p.topic, p.qos) for p in got] == [("sensors/a/t", 1), ("plant", 0), ("plant/a/b", 0)]
    assert got[0].payload == b"sensors/a/t"
    if version == MQTT_5:
        assert got[0].properties.get_str(Prop.CONTENT_TYPE) == "text/plain"


@BOTH
def test_invalid_filters(world: World, version: int) -> None:
    d = connected(hub_for(world), version)
    (ack,) = d.send(Subscribe(1, (("a/#/b", SubOptions()), ("a//b", SubOptions()), ("$share/g/a", SubOptions()),
                                  ("ok", SubOptions()))))
    fail = 0x80
    expected = ((Reason.TOPIC_FILTER_INVALID, Reason.TOPIC_FILTER_INVALID,
                 Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 0) if version == MQTT_5 else (fail, fail, fail, 0))
    assert ack == Suback(1, tuple(int(r) for r in expected))


@BOTH
def test_subscribe_without_grant(world: World, version: int) -> None:
    d = connected(hub_for(world), version, user="narrow")
    (ack,) = d.send(Subscribe(1, (("secret/#", SubOptions()), ("allowed/+", SubOptions()))))
    assert ack == Suback(1, (Reason.NOT_AUTHORIZED if version == MQTT_5 else 0x80, 0))


def test_mqtt_to_mqtt_and_unsubscribe(world: World) -> None:
    hub = hub_for(world)
    sub = connected(hub, client_id="sub")
    pub = connected(hub, MQTT_311, client_id="pub")
    sub.send(Subscribe(1, (("a/#", SubOptions(1)),)))
    pub.send(Publish("a/b", b"1", 1, packet_id=1))
    (p,) = publishes(sub.recv())
    assert (p.topic, p.payload, p.qos) == ("a/b", b"1", 1)
    sub.send(PubAck(PacketType.PUBACK, p.packet_id))
    assert sub.send(Unsubscribe(2, ("a/#", "nope"))) == [Unsuback(2, (0, Reason.NO_SUBSCRIPTION_EXISTED))]
    pub.send(Publish("a/b", b"2", 1, packet_id=2))
    assert publishes(sub.recv()) == []
    assert hub.core.subscriptions() == []


def test_credit_window_is_receive_maximum(world: World) -> None:
    hub = hub_for(world)
    d = connected(hub, properties=Properties({Prop.RECEIVE_MAXIMUM: 2}))
    d.send(Subscribe(1, (("q", SubOptions(1)),)))
    for i in range(5):
        wave_publish(hub, world, "q", str(i))
    got = publishes(d.recv())
    assert [p.payload for p in got] == [b"0", b"1"]
    assert [p.payload for p in publishes(d.send(PubAck(PacketType.PUBACK, got[0].packet_id)))] == [b"2"]


def test_qos0_credit_returns_after_write(world: World) -> None:
    hub = hub_for(world, max_inflight=2)
    d = connected(hub)
    d.send(Subscribe(1, (("q", SubOptions(0)),)))
    for i in range(5):
        wave_publish(hub, world, "q", str(i))
    assert [p.payload for p in publishes(d.recv())] == [b"0", b"1"]
    assert [p.payload for p in publishes(d.recv())] == [b"2", b"3"]
    assert [p.payload for p in publishes(d.recv())] == [b"4"]


def test_disconnect_redelivers_unacked_to_next(world: World) -> None:
    hub = hub_for(world)
    agent = agent_subscriber(hub, world, "z")
    d = connected(hub)
    d.send(Subscribe(1, (("z", SubOptions(1)),)))
    wave_publish(hub, world, "z", "m")
    assert len(publishes(d.recv())) == 1
    d.session.connection_lost(1.0, T0 + 1)
    assert len(delivered(agent.recv())) == 1


# ------------------------------------------------------------------ will, malformed input

@BOTH
def test_will_on_abnormal_close_only(world: World, version: int) -> None:
    hub = hub_for(world)
    agent = agent_subscriber(hub, world)
    d = connected(hub, version, will=Will("status/c1", b"offline", 1))
    d.session.connection_lost(1.0, T0 + 1)
    hub.core.service()
    assert [(m.uri, m.payload[0][1]) for m in delivered(agent.recv())] == [("status/c1", b"offline")]
    d2 = connected(hub, version, client_id="c2", will=Will("status/c2", b"offline"))
    d2.send(Disconnect())
    d2.session.connection_lost(1.0, T0 + 1)
    assert delivered(agent.recv()) == []


@BOTH
def test_malformed_closes_this_connection_only(world: World, version: int) -> None:
    hub = hub_for(world)
    other = connected(hub, version, client_id="other")
    d = connected(hub, version, client_id="bad")
    out = d.send_raw(bytes.fromhex("36050001610001"))  # QoS 3
    assert d.session.closing
    assert out == ([Disconnect(Reason.MALFORMED_PACKET, out[0].properties)] if version == MQTT_5 else [])  # type: ignore[union-attr]
    assert other.send(PingReq()) == [PingResp()]


def test_malformed_connect_gets_connack_reason(world: World) -> None:
    d = Device(hub_for(world))
    out = d.send_raw(bytes.fromhex("100c00044d5154540602003c0000"))  # level 6
    assert isinstance(out[0], Connack) and out[0].reason == Reason.UNSUPPORTED_PROTOCOL_VERSION
    d311 = Device(hub_for(world), MQTT_311)
    out = d311.send_raw(bytes.fromhex("100c00044d5154540302003c0000"))  # level 3
    assert out == [Connack(False, 1)] and d311.session.closing
    d311 = Device(hub_for(world), MQTT_311)
    assert d311.send_raw(bytes.fromhex("100c00044d5154540403003c0000")) == []  # reserved flag: closed, no CONNACK
    assert d311.session.closing


def test_packet_stall(world: World) -> None:
    d = connected(hub_for(world, packet_stall_timeout_s=5.0))
    d.send_raw(bytes.fromhex("3005"))
    assert d.session.next_deadline() == 5.0
    d.tick(5.0)
    assert d.session.closing and d.session.timed_out == "packet_stall"


def test_auth_packet_is_protocol_error(world: World) -> None:
    d = connected(hub_for(world))
    (disc,) = d.send_raw(bytes.fromhex("f00118"))
    assert isinstance(disc, Disconnect) and disc.reason == Reason.PROTOCOL_ERROR



@pytest.mark.parametrize("right", [True, False])
def test_password_check_is_the_glues_and_packets_wait(world: World, right: bool) -> None:
    """An argon2id check not made before is handed to the glue (``auth_pending``); the packets that came
    with CONNECT are processed only once ``auth_done`` says yes."""
    fresh = MqttUser("fresh", hash_password("fresh-pw"), world.entity(), world.ns.id,
                     (world.proof(world.entity(), "publish"),))
    hub = make_hub([fresh])
    d = Device(hub)
    d.verify_passwords = False
    data = encode_packet(Connect("c", MQTT_5, username="fresh", password=b"fresh-pw" if right else b"x"), MQTT_5)
    assert d.send_raw(data + encode_packet(PingReq(), MQTT_5)) == []
    check = d.session.auth_pending
    assert check is not None and check.run() is right
    d.session.auth_done(check.run(), 0.0, T0)
    out = d.recv()
    if right:
        assert out == [Connack(False, 0, out[0].properties), PingResp()]  # type: ignore[union-attr]
        assert d.session.auth_pending is None
        assert hub.users.authenticate("fresh", b"fresh-pw") is fresh  # remembered: no second argon2id run
    else:
        assert isinstance(out[0], Connack) and out[0].reason == Reason.BAD_USER_NAME_OR_PASSWORD and len(out) == 1
        assert d.session.closing


def test_retained_are_persisted_values(world: World) -> None:
    """A retained publish is the URI's persisted value; a new subscription gets the values its filter
    matches (with the retain flag) when the user may query; an empty payload cleared one."""
    querier = user_for(world, "q", world.entity(), grants=("publish", "subscribe", "query"))
    plain = user_for(world, "p", world.entity(grants="publish,subscribe"))
    hub = make_hub([querier, plain])
    pub = connected(hub, user="q", client_id="pub")
    for topic, payload in (("r/a", b"1"), ("r/b", b"2"), ("r/b", b"3"), ("r/c", b"x"), ("r/c", b""), ("s", b"9")):
        pub.send(Publish(topic, payload, 1, retain=True, packet_id=1))
    pub.send(Publish("r/d", b"not retained", 1, packet_id=2))
    sub = connected(hub, user="q", client_id="sub")
    out = sub.send(Subscribe(1, (("r/#", SubOptions(1)),)))
    assert out[0] == Suback(1, (1,))
    assert [(p.topic, p.payload, p.retain, p.qos) for p in publishes(out)] == [("r/a", b"1", True, 0),
                                                                              ("r/b", b"3", True, 0)]
    again = sub.send(Subscribe(2, (("r/#", SubOptions(1, retain_handling=1)),)))
    assert publishes(again) == []  # Retain Handling 1: only for a new subscription
    no_grant = connected(hub, user="p", client_id="nq")
    out = no_grant.send(Subscribe(1, (("r/#", SubOptions(1)),)))
    assert out == [Suback(1, (1,))]  # subscribed; no wavemq:query, so no retained messages


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([MQTT_311, MQTT_5]), st.binary(max_size=300), st.integers(1, 64))
def test_fuzz_never_raises_nor_disturbs_another(world: World, version: int, junk: bytes, chunk: int) -> None:
    hub = hub_for(world)
    other = connected(hub, version, client_id="other")
    other.send(Subscribe(1, (("f", SubOptions(1)),)))
    d = connected(hub, version, client_id="fuzz")
    for i in range(0, len(junk), chunk):
        d.send_raw(junk[i:i + chunk])
    d.tick(1000.0)
    (p,) = publishes(connected(hub, version, client_id="pub").send(Publish("f", b"ok", 1, packet_id=1)) + other.recv())
    assert p.payload == b"ok"
    assert other.send(PingReq()) == [PingResp()]


def test_sys_topics(world: World) -> None:
    hub = hub_for(world)
    d = connected(hub)
    out = d.send(Subscribe(1, (("$SYS/broker/clients/+", SubOptions(1)), ("$SYS/broker/uptime", SubOptions()))))
    assert out[0] == Suback(1, (0, 0))
    got = {(p.topic, p.retain) for p in publishes(out)}
    assert got == {("$SYS/broker/clients/connected", True), ("$SYS/broker/uptime", True)}
    assert [p.payload for p in publishes(out) if p.topic.endswith("connected")] == [b"1"]
    assert d.session.next_deadline() == 10.0
    assert {p.topic for p in publishes(d.tick(10.0))} == {"$SYS/broker/clients/connected", "$SYS/broker/uptime"}
    assert d.send(Unsubscribe(2, ("$SYS/broker/uptime",))) == [Unsuback(2, (0,))]
    assert {p.topic for p in publishes(d.tick(20.0))} == {"$SYS/broker/clients/connected"}


@pytest.mark.parametrize(("topic_filter", "topic", "match"), [
    ("$SYS/#", "$SYS/broker/uptime", True), ("$SYS/+/uptime", "$SYS/broker/uptime", True),
    ("$SYS/broker", "$SYS/broker/uptime", False), ("$SYS/broker/#", "$SYS/broker", True),
    ("$SYS/+", "$SYS/broker/uptime", False)])
def test_sys_matching(topic_filter: str, topic: str, match: bool) -> None:
    assert topic_matches(topic_filter, topic) is match
