"""mqtt/ codec: the specifications' byte examples, every bound, split input, round trips and fuzz."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.mqtt import (
    MQTT_5,
    MQTT_311,
    NEED_DATA,
    Auth,
    Connack,
    Connect,
    Disconnect,
    MqttCodecError,
    Packet,
    PacketDecoder,
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
from wavemq_edge.mqtt.primitives import Reader, encode_varint


def drain(d: PacketDecoder) -> list[Packet]:
    out: list[Packet] = []
    while True:
        p = d.next_packet()
        if p is NEED_DATA:
            return out
        out.append(p)  # type: ignore[arg-type]


def connected(version: int) -> PacketDecoder:
    d = PacketDecoder()
    d.receive_bytes(encode_packet(Connect("c", protocol_level=version), version))
    assert isinstance(d.next_packet(), Connect)
    return d


def decode_one(data: bytes, version: int = MQTT_5) -> Packet:
    d = connected(version)
    d.receive_bytes(data)
    p = d.next_packet()
    assert p is not NEED_DATA
    return p  # type: ignore[return-value]


def reason_of(data: bytes, version: int = MQTT_5) -> Reason:
    with pytest.raises(MqttCodecError) as info:
        decode_one(data, version)
    return info.value.reason


# ------------------------------------------------------------------ the specifications' examples

@pytest.mark.parametrize(("value", "hexed"), [
    (0, "00"), (127, "7f"), (128, "8001"), (16383, "ff7f"), (16384, "808001"), (2097151, "ffff7f"),
    (2097152, "80808001"), (268435455, "ffffff7f")])
def test_remaining_length_table(value: int, hexed: str) -> None:
    """3.1.1 Table 2.4 / 5.0 Table 1-1."""
    assert encode_varint(value).hex() == hexed
    assert Reader(bytes.fromhex(hexed)).varint("x") == value


def test_utf8_example() -> None:
    """3.1.1 §1.5.3 Figure 1.1: 'A' U+2A6D4 is 00 05 41 F0 AA 9B 94."""
    assert Reader(bytes.fromhex("000541F0AA9B94")).string("s") == "A\U0002A6D4"


def test_connect_variable_header_example_311() -> None:
    """3.1.1 §3.1.2.10 Figure 3.6: 'MQTT' level 4, flags CE (user, password, will QoS 1, clean), keepalive 10."""
    data = encode_packet(Connect("id", MQTT_311, True, 10, "u", b"p", Will("w", b"m", 1)), MQTT_311)
    assert data[2:12].hex() == "00044d5154540" + "4ce000a"
    d = PacketDecoder()
    d.receive_bytes(data)
    c = d.next_packet()
    assert isinstance(c, Connect) and c.keepalive == 10 and c.will == Will("w", b"m", 1) and d.version == MQTT_311


def test_connect_example_50() -> None:
    """5.0 §3.1.2.11 Figure 3-8: level 5, flags CE, keepalive 10, properties 05 11 00 00 00 0A."""
    props = Properties({Prop.SESSION_EXPIRY_INTERVAL: 10})
    data = encode_packet(Connect("id", MQTT_5, True, 10, "u", b"p", Will("w", b"m", 1), props), MQTT_5)
    assert data[2:18].hex() == "00044d51545405ce000a051100000" + "00a"
    d = PacketDecoder()
    d.receive_bytes(data)
    c = d.next_packet()
    assert isinstance(c, Connect) and c.properties.get_int(Prop.SESSION_EXPIRY_INTERVAL) == 10


def test_publish_variable_header_examples() -> None:
    """3.1.1 §3.3.2.3 Figure 3.11 and 5.0 §3.3.2.3 Figure 3-10: 'a/b', packet id 10 (5.0: no properties)."""
    assert encode_packet(Publish("a/b", b"", 1, packet_id=10), MQTT_311)[2:].hex() == "0003612f62000a"
    assert encode_packet(Publish("a/b", b"", 1, packet_id=10), MQTT_5)[2:].hex() == "0003612f62000a00"
    p = decode_one(bytes.fromhex("3209") + bytes.fromhex("0003612f62000a00") + b"x")
    assert p == Publish("a/b", b"x", 1, packet_id=10)


@pytest.mark.parametrize(("hexed", "packet", "version"), [
    ("c000", PingReq(), MQTT_311), ("d000", PingResp(), MQTT_5), ("e000", Disconnect(), MQTT_311),
    ("e000", Disconnect(), MQTT_5), ("e0018e", Disconnect(0x8E), MQTT_5), ("40020001", PubAck(PacketType.PUBACK, 1),
                                                                          MQTT_5),
    ("6202000a", PubAck(PacketType.PUBREL, 10), MQTT_311), ("20020100", Connack(True, 0), MQTT_311),
    ("9003000a01", Suback(10, (1,)), MQTT_311), ("b002000a", Unsuback(10), MQTT_311),
    ("f00118", Auth(0x18), MQTT_5)])
def test_small_packets(hexed: str, packet: Packet, version: int) -> None:
    assert decode_one(bytes.fromhex(hexed), version) == packet
    assert encode_packet(packet, version).hex() == hexed


def test_subscribe_options_50() -> None:
    """5.0 §3.8.3.1: QoS, No Local, Retain As Published, Retain Handling."""
    s = Subscribe(7, (("a/+", SubOptions(1, True, True, 2)), ("#", SubOptions())))
    data = encode_packet(s, MQTT_5)
    assert data[-1] == 0 and data[-5] == 0b101101
    assert decode_one(data) == s


# ------------------------------------------------------------------ bounds and malformed input

def test_length_checked_before_buffering() -> None:
    d = PacketDecoder(max_packet_bytes=1000)
    d.receive_bytes(bytes.fromhex("10ffffff7f"))  # announces 256 MiB
    with pytest.raises(MqttCodecError) as info:
        d.next_packet()
    assert info.value.reason is Reason.PACKET_TOO_LARGE
    with pytest.raises(MqttCodecError):
        d.receive_bytes(b"more")  # stays failed


def test_fifth_length_byte_is_malformed() -> None:
    assert reason_of(bytes.fromhex("30ffffffff01")) is Reason.MALFORMED_PACKET


def test_first_packet_must_be_connect() -> None:
    d = PacketDecoder()
    d.receive_bytes(bytes.fromhex("c000"))
    with pytest.raises(MqttCodecError) as info:
        d.next_packet()
    assert info.value.reason is Reason.PROTOCOL_ERROR


def test_second_connect_is_protocol_error() -> None:
    assert reason_of(encode_packet(Connect("x"), MQTT_5)) is Reason.PROTOCOL_ERROR


def test_unsupported_version() -> None:
    d = PacketDecoder()
    d.receive_bytes(bytes.fromhex("100c00044d5154540302003c0000") [:14])
    with pytest.raises(MqttCodecError) as info:
        drain(d)
    assert info.value.reason is Reason.UNSUPPORTED_PROTOCOL_VERSION


@pytest.mark.parametrize(("hexed", "version"), [
    ("36050001610001", MQTT_311),  # PUBLISH QoS 3
    ("3803000161", MQTT_311),  # DUP on QoS 0
    ("c100", MQTT_5),  # PINGREQ with flags
    ("6002000a", MQTT_5),  # PUBREL without its 0010 flags
    ("32050001610000", MQTT_311),  # packet id 0
    ("c00100", MQTT_311),  # trailing byte
    ("f000", MQTT_311),  # AUTH in 3.1.1
    ("00 00", MQTT_5),  # reserved type 0
    ("3004000261ff", MQTT_311),  # topic not UTF-8
    ("3006000261000000", MQTT_311),  # U+0000 in topic
    ("820600010001610c", MQTT_311),  # 3.1.1 reserved option bits
    ("820700010000016133", MQTT_5),  # retain handling 3 (0x30)
    ("3207000161000a027f01", MQTT_5),  # unknown property 0x7f
])
def test_malformed(hexed: str, version: int) -> None:
    assert reason_of(bytes.fromhex(hexed.replace(" ", "")), version) is Reason.MALFORMED_PACKET


@pytest.mark.parametrize("hexed", [
    "3209000161000a0321000a",  # RECEIVE_MAXIMUM not allowed on PUBLISH
    "320a000161000a0401000100",  # payload format twice
    "3208000161000a020102",  # payload format 2
    "3209000161000a03230000",  # topic alias 0
    "8203000100",  # SUBSCRIBE without a topic
])
def test_protocol_errors(hexed: str) -> None:
    assert reason_of(bytes.fromhex(hexed)) is Reason.PROTOCOL_ERROR


def test_user_properties_bounded() -> None:
    many = Properties(user=tuple((f"k{i}", "v") for i in range(40)))
    assert reason_of(encode_packet(Publish("t", b"", properties=many), MQTT_5)) is Reason.PROTOCOL_ERROR
    ok = Properties(user=(("k", "v"),) * 3)
    assert decode_one(encode_packet(Publish("t", b"", properties=ok), MQTT_5)) == Publish("t", properties=ok)


# ------------------------------------------------------------------ round trips, splits, fuzz

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
pids = st.integers(1, 0xFFFF)
props5 = st.builds(
    Properties,
    st.fixed_dictionaries({}, optional={Prop.MESSAGE_EXPIRY_INTERVAL: st.integers(0, 2**32 - 1),
                                        Prop.CONTENT_TYPE: topics, Prop.CORRELATION_DATA: st.binary(max_size=10)}),
    st.lists(st.tuples(topics, topics), max_size=3).map(tuple))


def packets(v5: bool) -> st.SearchStrategy[Packet]:
    props = props5 if v5 else st.just(Properties())
    reason = st.sampled_from([0, 0x10, 0x80, 0x87]) if v5 else st.just(0)
    opts = st.builds(SubOptions, st.integers(0, 2), *([st.booleans(), st.booleans(), st.integers(0, 2)] if v5 else []))
    return st.one_of(
        st.builds(lambda t, p, q, r, d, i, pr: Publish(t, p, q, r, d and q > 0, i if q else 0, pr),
                  topics, st.binary(max_size=50), st.integers(0, 2), st.booleans(), st.booleans(), pids, props),
        st.builds(PubAck, st.sampled_from([PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL,
                                           PacketType.PUBCOMP]), pids, reason),
        st.builds(Subscribe, pids, st.lists(st.tuples(topics, opts), min_size=1, max_size=4).map(tuple)),
        st.builds(Unsubscribe, pids, st.lists(topics, min_size=1, max_size=4).map(tuple)),
        st.just(PingReq()), st.builds(Disconnect, reason),
        st.builds(Suback, pids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=4).map(tuple)),
    )


@given(st.data(), st.sampled_from([MQTT_311, MQTT_5]), st.lists(st.integers(0, 400), max_size=6))
def test_round_trip_split_anywhere(data: st.DataObject, version: int, cuts: list[int]) -> None:
    items = data.draw(st.lists(packets(version == MQTT_5), max_size=5))
    stream = encode_packet(Connect("dev", protocol_level=version), version) + b"".join(
        encode_packet(p, version) for p in items)
    d = PacketDecoder()
    got: list[Packet] = []
    prev = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        d.receive_bytes(stream[prev:cut])
        prev = cut
        got += drain(d)
    assert got[1:] == items
    assert d.buffered_bytes == 0


@given(st.sampled_from([MQTT_311, MQTT_5]), st.binary(max_size=200))
def test_garbage_raises_only_codec_errors(version: int, junk: bytes) -> None:
    d = connected(version)
    d.receive_bytes(junk)
    try:
        drain(d)
    except MqttCodecError as exc:
        assert exc.reason >= 0x80


@given(st.binary(max_size=200))
def test_garbage_before_connect(junk: bytes) -> None:
    d = PacketDecoder(max_packet_bytes=128)
    d.receive_bytes(junk)
    with contextlib.suppress(MqttCodecError):
        drain(d)
