"""MQTT control packets as values (3.1.1 and 5.0 share one shape; 5.0-only fields are empty in 3.1.1).

``decode_body(type_and_flags, body, version)`` turns one packet's body (its remaining length already
checked and buffered by ``codec.PacketDecoder``) into a packet; ``encode_packet(packet, version)``
writes one. Every rule a packet's own bytes can break is checked here (fixed-header flags, reserved
bits, QoS 3, packet identifier 0, a SUBSCRIBE with no topic, trailing bytes ...); what needs the
connection's state (topic aliases, receive maximum, auth) is the session's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from .errors import MqttCodecError, Reason
from .primitives import Reader, encode_varint, malformed, w_binary, w_str, w_u16
from .properties import NO_PROPERTIES, WILL, Properties, decode_properties, encode_properties

__all__ = [
    "MQTT_5",
    "MQTT_311",
    "Auth",
    "Connack",
    "Connect",
    "Disconnect",
    "Packet",
    "PacketType",
    "PingReq",
    "PingResp",
    "PubAck",
    "Publish",
    "SubOptions",
    "Suback",
    "Subscribe",
    "Unsuback",
    "Unsubscribe",
    "Will",
    "decode_body",
    "encode_packet",
]

MQTT_311: Final = 4
MQTT_5: Final = 5


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    protocol_level: int = MQTT_5
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.CONNECT, init=False)


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool = False
    reason: int = 0
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.CONNACK, init=False)


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.PUBLISH, init=False)


@dataclass(frozen=True, slots=True)
class PubAck:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``type``)."""

    type: PacketType
    packet_id: int
    reason: int = 0
    properties: Properties = NO_PROPERTIES


@dataclass(frozen=True, slots=True)
class SubOptions:
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    topics: tuple[tuple[str, SubOptions], ...]
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.SUBSCRIBE, init=False)


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    reasons: tuple[int, ...]
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.SUBACK, init=False)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.UNSUBSCRIBE, init=False)


@dataclass(frozen=True, slots=True)
class Unsuback:
    packet_id: int
    reasons: tuple[int, ...] = ()
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.UNSUBACK, init=False)


@dataclass(frozen=True, slots=True)
class PingReq:
    type: PacketType = field(default=PacketType.PINGREQ, init=False)


@dataclass(frozen=True, slots=True)
class PingResp:
    type: PacketType = field(default=PacketType.PINGRESP, init=False)


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int = 0
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.DISCONNECT, init=False)


@dataclass(frozen=True, slots=True)
class Auth:
    reason: int = 0
    properties: Properties = NO_PROPERTIES
    type: PacketType = field(default=PacketType.AUTH, init=False)


Packet = (Connect | Connack | Publish | PubAck | Subscribe | Suback | Unsubscribe | Unsuback | PingReq | PingResp
          | Disconnect | Auth)

#: fixed-header flags each type must carry (§2.2.2 of 3.1.1, §2.1.3 of 5.0); PUBLISH's are its own
_FLAGS: Final = {t: (2 if t in (PacketType.PUBREL, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE) else 0)
                 for t in PacketType}


# ---------------------------------------------------------------------------------------------- decode

def decode_body(first: int, body: bytes, version: int) -> Packet:
    """One packet from its first byte and body. ``version`` is the connection's (CONNECT sets its own)."""
    try:
        kind = PacketType(first >> 4)
    except ValueError:
        raise malformed(f"packet type {first >> 4} is reserved") from None
    flags = first & 0x0F
    if kind is not PacketType.PUBLISH and flags != _FLAGS[kind]:
        raise malformed(f"{kind.name}: fixed-header flags 0x{flags:x}, expected 0x{_FLAGS[kind]:x}")
    if kind is PacketType.AUTH and version != MQTT_5:
        raise malformed("AUTH is not an MQTT 3.1.1 packet")
    r = Reader(body)
    packet = _DECODERS[kind](r, flags, version, kind)
    if r.remaining:
        raise malformed(f"{kind.name}: {r.remaining} unexpected bytes after the packet")
    return packet


def _props(r: Reader, version: int, kind: int, what: str) -> Properties:
    return decode_properties(r, kind, what) if version == MQTT_5 else NO_PROPERTIES


def _packet_id(r: Reader, what: str) -> int:
    pid = r.u16(f"{what} packet identifier")
    if pid == 0:
        raise malformed(f"{what}: packet identifier 0")
    return pid


def _d_connect(r: Reader, flags: int, version: int, kind: PacketType) -> Connect:
    name = r.string("CONNECT protocol name")
    level = r.u8("CONNECT protocol level")
    if name not in ("MQTT", "MQIsdp"):
        raise malformed(f"CONNECT: protocol name {name!r} is not MQTT")
    if (name, level) not in (("MQTT", MQTT_311), ("MQTT", MQTT_5)):
        raise MqttCodecError(Reason.UNSUPPORTED_PROTOCOL_VERSION,
                             f"CONNECT: protocol {name} level {level}; this server speaks 3.1.1 (4) and 5.0 (5)", level)
    try:
        return _d_connect_rest(r, level)
    except MqttCodecError as exc:
        exc.protocol_level = level
        raise


def _d_connect_rest(r: Reader, level: int) -> Connect:
    cflags = r.u8("CONNECT flags")
    if cflags & 0x01:
        raise malformed("CONNECT: reserved flag bit 0 is set")
    will_flag, will_qos, will_retain = bool(cflags & 0x04), (cflags >> 3) & 0x03, bool(cflags & 0x20)
    has_user, has_password = bool(cflags & 0x80), bool(cflags & 0x40)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise malformed(f"CONNECT: will flags 0x{cflags:02x} are inconsistent")
    if level == MQTT_311 and has_password and not has_user:
        raise malformed("CONNECT: password flag without user name flag (3.1.1 §3.1.2.9)")
    keepalive = r.u16("CONNECT keep alive")
    props = _props(r, level, PacketType.CONNECT, "CONNECT")
    client_id = r.string("CONNECT client identifier")
    will = None
    if will_flag:
        will_props = _props(r, level, WILL, "CONNECT will")
        topic = r.string("CONNECT will topic")
        will = Will(topic, r.binary("CONNECT will payload"), will_qos, will_retain, will_props)
    username = r.string("CONNECT user name") if has_user else None
    password = r.binary("CONNECT password") if has_password else None
    return Connect(client_id, level, bool(cflags & 0x02), keepalive, username, password, will, props)


def _d_connack(r: Reader, flags: int, version: int, kind: PacketType) -> Connack:
    ack = r.u8("CONNACK flags")
    if ack & 0xFE:
        raise malformed("CONNACK: reserved flag bits set")
    reason = r.u8("CONNACK reason")
    return Connack(bool(ack & 1), reason, _props(r, version, kind, "CONNACK"))


def _d_publish(r: Reader, flags: int, version: int, kind: PacketType) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise malformed("PUBLISH: QoS 3")
    dup = bool(flags & 0x08)
    if qos == 0 and dup:
        raise malformed("PUBLISH: DUP set on a QoS 0 message")
    topic = r.string("PUBLISH topic name")
    pid = _packet_id(r, "PUBLISH") if qos else 0
    props = _props(r, version, kind, "PUBLISH")
    return Publish(topic, r.rest(), qos, bool(flags & 0x01), dup, pid, props)


def _d_puback(r: Reader, flags: int, version: int, kind: PacketType) -> PubAck:
    pid = _packet_id(r, kind.name)
    if version != MQTT_5 or not r.remaining:
        return PubAck(kind, pid)
    reason = r.u8(f"{kind.name} reason")
    props = _props(r, version, kind, kind.name) if r.remaining else NO_PROPERTIES
    return PubAck(kind, pid, reason, props)


def _sub_options(byte: int, version: int) -> SubOptions:
    qos = byte & 0x03
    if qos == 3:
        raise malformed("SUBSCRIBE: requested QoS 3")
    if version != MQTT_5:
        if byte & 0xFC:
            raise malformed("SUBSCRIBE: reserved option bits set (3.1.1)")
        return SubOptions(qos)
    retain_handling = (byte >> 4) & 0x03
    if byte & 0xC0 or retain_handling == 3:
        raise malformed(f"SUBSCRIBE: invalid subscription options 0x{byte:02x}")
    return SubOptions(qos, bool(byte & 0x04), bool(byte & 0x08), retain_handling)


def _d_subscribe(r: Reader, flags: int, version: int, kind: PacketType) -> Subscribe:
    pid = _packet_id(r, "SUBSCRIBE")
    props = _props(r, version, kind, "SUBSCRIBE")
    topics: list[tuple[str, SubOptions]] = []
    while r.remaining:
        topic = r.string("SUBSCRIBE topic filter")
        topics.append((topic, _sub_options(r.u8("SUBSCRIBE options"), version)))
    if not topics:
        raise MqttCodecError(Reason.PROTOCOL_ERROR, "SUBSCRIBE with no topic filter")
    return Subscribe(pid, tuple(topics), props)


def _d_suback(r: Reader, flags: int, version: int, kind: PacketType) -> Suback | Unsuback:
    pid = _packet_id(r, kind.name)
    props = _props(r, version, kind, kind.name)
    reasons = tuple(r.rest())
    if kind is PacketType.SUBACK:
        if not reasons:
            raise malformed("SUBACK with no reason code")
        return Suback(pid, reasons, props)
    if version == MQTT_5 and not reasons:
        raise malformed("UNSUBACK with no reason code")
    return Unsuback(pid, reasons, props)


def _d_unsubscribe(r: Reader, flags: int, version: int, kind: PacketType) -> Unsubscribe:
    pid = _packet_id(r, "UNSUBSCRIBE")
    props = _props(r, version, kind, "UNSUBSCRIBE")
    topics: list[str] = []
    while r.remaining:
        topics.append(r.string("UNSUBSCRIBE topic filter"))
    if not topics:
        raise MqttCodecError(Reason.PROTOCOL_ERROR, "UNSUBSCRIBE with no topic filter")
    return Unsubscribe(pid, tuple(topics), props)


def _d_empty(r: Reader, flags: int, version: int, kind: PacketType) -> PingReq | PingResp:
    return PingReq() if kind is PacketType.PINGREQ else PingResp()


def _d_reason(r: Reader, flags: int, version: int, kind: PacketType) -> Disconnect | Auth:
    reason, props = 0, NO_PROPERTIES
    if version == MQTT_5 and r.remaining:
        reason = r.u8(f"{kind.name} reason")
        if r.remaining:
            props = _props(r, version, kind, kind.name)
    return Disconnect(reason, props) if kind is PacketType.DISCONNECT else Auth(reason, props)


_DECODERS: Final[dict[PacketType, Callable[[Reader, int, int, PacketType], Packet]]] = {
    PacketType.CONNECT: _d_connect, PacketType.CONNACK: _d_connack, PacketType.PUBLISH: _d_publish,
    PacketType.PUBACK: _d_puback, PacketType.PUBREC: _d_puback, PacketType.PUBREL: _d_puback,
    PacketType.PUBCOMP: _d_puback, PacketType.SUBSCRIBE: _d_subscribe, PacketType.SUBACK: _d_suback,
    PacketType.UNSUBSCRIBE: _d_unsubscribe, PacketType.UNSUBACK: _d_suback, PacketType.PINGREQ: _d_empty,
    PacketType.PINGRESP: _d_empty, PacketType.DISCONNECT: _d_reason, PacketType.AUTH: _d_reason,
}


# ---------------------------------------------------------------------------------------------- encode

def encode_packet(packet: Packet, version: int) -> bytes:
    """The packet's bytes for a ``version`` connection (a CONNECT uses its own level)."""
    v5 = version == MQTT_5
    kind = packet.type
    flags = _FLAGS[kind]
    body = bytearray()
    if isinstance(packet, Connect):
        body += _e_connect(packet)
    elif isinstance(packet, Connack):
        body += bytes((int(packet.session_present), packet.reason))
        body += encode_properties(packet.properties) if v5 else b""
    elif isinstance(packet, Publish):
        flags = (packet.dup << 3) | (packet.qos << 1) | int(packet.retain)
        body += w_str(packet.topic) + (w_u16(packet.packet_id) if packet.qos else b"")
        body += (encode_properties(packet.properties) if v5 else b"") + packet.payload
    elif isinstance(packet, PubAck):
        body += w_u16(packet.packet_id)
        if v5 and (packet.reason or packet.properties):
            body.append(packet.reason)
            body += encode_properties(packet.properties) if packet.properties else b""
    elif isinstance(packet, (Subscribe, Suback, Unsubscribe, Unsuback)):
        body += w_u16(packet.packet_id) + (encode_properties(packet.properties) if v5 else b"")
        body += _e_list(packet, v5)
    elif isinstance(packet, (Disconnect, Auth)) and v5 and (
            packet.reason or packet.properties or isinstance(packet, Auth)):
        body.append(packet.reason)
        body += encode_properties(packet.properties) if packet.properties else b""
    return bytes(((kind << 4) | flags,)) + encode_varint(len(body)) + bytes(body)


def _e_list(packet: Subscribe | Suback | Unsubscribe | Unsuback, v5: bool) -> bytes:
    if isinstance(packet, Subscribe):
        out = bytearray()
        for topic, o in packet.topics:
            out += w_str(topic)
            out.append(o.qos | (o.no_local << 2) | (o.retain_as_published << 3) | (o.retain_handling << 4))
        return bytes(out)
    if isinstance(packet, Unsubscribe):
        return b"".join(w_str(t) for t in packet.topics)
    if isinstance(packet, Unsuback) and not v5:
        return b""
    return bytes(packet.reasons)


def _e_connect(c: Connect) -> bytes:
    v5 = c.protocol_level == MQTT_5
    flags = (int(c.clean_start) << 1) | ((c.username is not None) << 7) | ((c.password is not None) << 6)
    if c.will is not None:
        flags |= 0x04 | (c.will.qos << 3) | (int(c.will.retain) << 5)
    out = bytearray(w_str("MQTT") + bytes((c.protocol_level, flags)) + w_u16(c.keepalive))
    out += encode_properties(c.properties) if v5 else b""
    out += w_str(c.client_id)
    if c.will is not None:
        out += encode_properties(c.will.properties) if v5 else b""
        out += w_str(c.will.topic) + w_binary(c.will.payload)
    if c.username is not None:
        out += w_str(c.username)
    if c.password is not None:
        out += w_binary(c.password)
    return bytes(out)
