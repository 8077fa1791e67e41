"""MQTT 5.0 properties (§2.2.2): parsed against the table of which packet may carry which, bounded.

A property not allowed in its packet, a duplicate of a single-valued one, an out-of-range value
(Receive Maximum 0, Maximum Packet Size 0, a 0/1 flag that is 2, ...) is a ``PROTOCOL_ERROR``; an
unknown identifier or a value that runs past the property length is ``MALFORMED_PACKET``. User
properties are bounded in number (``MAX_USER_PROPERTIES``); the whole block is bounded by the packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from .errors import MqttCodecError, Reason
from .primitives import Reader, encode_varint, malformed, w_binary, w_str, w_u16, w_u32

__all__ = ["MAX_USER_PROPERTIES", "NO_PROPERTIES", "WILL", "Prop", "Properties", "decode_properties",
           "encode_properties"]

#: User properties accepted in one packet: a device annotating a reading uses a few; this bounds the
#: work and memory one packet can cost.
MAX_USER_PROPERTIES: Final = 32


class Prop(IntEnum):
    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# value kinds
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
# where a property may appear: packet type numbers, and "will" for the CONNECT payload's will properties
WILL: Final = 16
_P: Final = {"CONNECT": 1, "CONNACK": 2, "PUBLISH": 3, "PUBACK": 4, "PUBREC": 5, "PUBREL": 6, "PUBCOMP": 7,
             "SUBSCRIBE": 8, "SUBACK": 9, "UNSUBSCRIBE": 10, "UNSUBACK": 11, "DISCONNECT": 14, "AUTH": 15,
             "WILL": WILL}


def _where(*names: str) -> frozenset[int]:
    return frozenset(_P[n] for n in names)


_ACKS = ("CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH")
#: id -> (kind, packets it may appear in, allowed values or None)
_TABLE: Final[dict[int, tuple[int, frozenset[int], frozenset[int] | None]]] = {
    Prop.PAYLOAD_FORMAT_INDICATOR: (_BYTE, _where("PUBLISH", "WILL"), frozenset({0, 1})),
    Prop.MESSAGE_EXPIRY_INTERVAL: (_U32, _where("PUBLISH", "WILL"), None),
    Prop.CONTENT_TYPE: (_STR, _where("PUBLISH", "WILL"), None),
    Prop.RESPONSE_TOPIC: (_STR, _where("PUBLISH", "WILL"), None),
    Prop.CORRELATION_DATA: (_BIN, _where("PUBLISH", "WILL"), None),
    Prop.SUBSCRIPTION_IDENTIFIER: (_VARINT, _where("PUBLISH", "SUBSCRIBE"), None),
    Prop.SESSION_EXPIRY_INTERVAL: (_U32, _where("CONNECT", "CONNACK", "DISCONNECT"), None),
    Prop.ASSIGNED_CLIENT_IDENTIFIER: (_STR, _where("CONNACK"), None),
    Prop.SERVER_KEEP_ALIVE: (_U16, _where("CONNACK"), None),
    Prop.AUTHENTICATION_METHOD: (_STR, _where("CONNECT", "CONNACK", "AUTH"), None),
    Prop.AUTHENTICATION_DATA: (_BIN, _where("CONNECT", "CONNACK", "AUTH"), None),
    Prop.REQUEST_PROBLEM_INFORMATION: (_BYTE, _where("CONNECT"), frozenset({0, 1})),
    Prop.WILL_DELAY_INTERVAL: (_U32, _where("WILL"), None),
    Prop.REQUEST_RESPONSE_INFORMATION: (_BYTE, _where("CONNECT"), frozenset({0, 1})),
    Prop.RESPONSE_INFORMATION: (_STR, _where("CONNACK"), None),
    Prop.SERVER_REFERENCE: (_STR, _where("CONNACK", "DISCONNECT"), None),
    Prop.REASON_STRING: (_STR, _where(*_ACKS), None),
    Prop.RECEIVE_MAXIMUM: (_U16, _where("CONNECT", "CONNACK"), None),
    Prop.TOPIC_ALIAS_MAXIMUM: (_U16, _where("CONNECT", "CONNACK"), None),
    Prop.TOPIC_ALIAS: (_U16, _where("PUBLISH"), None),
    Prop.MAXIMUM_QOS: (_BYTE, _where("CONNACK"), frozenset({0, 1})),
    Prop.RETAIN_AVAILABLE: (_BYTE, _where("CONNACK"), frozenset({0, 1})),
    Prop.USER_PROPERTY: (_PAIR, frozenset(_P.values()), None),
    Prop.MAXIMUM_PACKET_SIZE: (_U32, _where("CONNECT", "CONNACK"), None),
    Prop.WILDCARD_SUBSCRIPTION_AVAILABLE: (_BYTE, _where("CONNACK"), frozenset({0, 1})),
    Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE: (_BYTE, _where("CONNACK"), frozenset({0, 1})),
    Prop.SHARED_SUBSCRIPTION_AVAILABLE: (_BYTE, _where("CONNACK"), frozenset({0, 1})),
}
#: values that must not be zero where they appear (§3.1.2.11.3, §3.1.2.11.4, §3.3.2.3.4, §3.8.2.1.2)
_NONZERO: Final = frozenset({Prop.RECEIVE_MAXIMUM, Prop.MAXIMUM_PACKET_SIZE, Prop.TOPIC_ALIAS,
                             Prop.SUBSCRIPTION_IDENTIFIER})


@dataclass(frozen=True, slots=True)
class Properties:
    """Single-valued properties by id; user properties and PUBLISH's subscription identifiers apart."""

    values: dict[int, int | str | bytes] = field(default_factory=dict)
    user: tuple[tuple[str, str], ...] = ()
    subscription_ids: tuple[int, ...] = ()

    def get_int(self, prop: Prop, default: int | None = None) -> int | None:
        v = self.values.get(prop, default)
        return v if isinstance(v, int) or v is None else default

    def get_str(self, prop: Prop) -> str | None:
        v = self.values.get(prop)
        return v if isinstance(v, str) else None

    def __bool__(self) -> bool:
        return bool(self.values or self.user or self.subscription_ids)


NO_PROPERTIES: Final = Properties()


def decode_properties(r: Reader, packet: int, what: str) -> Properties:
    """Read a property block (length, then properties) for packet type ``packet`` (or ``WILL``)."""
    length = r.varint(f"{what} property length")
    if length > r.remaining:
        raise malformed(f"{what}: property length {length} exceeds the {r.remaining} bytes left")
    end = r.pos + length
    sub = Reader(r.data, r.pos, end)
    values: dict[int, int | str | bytes] = {}
    user: list[tuple[str, str]] = []
    sub_ids: list[int] = []
    while sub.remaining:
        pid = sub.varint(f"{what} property identifier")
        spec = _TABLE.get(pid)
        if spec is None:
            raise malformed(f"{what}: unknown property identifier 0x{pid:02x}")
        kind, where, allowed = spec
        name = Prop(pid).name
        if packet not in where:
            raise MqttCodecError(Reason.PROTOCOL_ERROR, f"{what}: property {name} is not allowed here")
        value = _read_value(sub, kind, f"{what} {name}")
        if kind == _PAIR:
            if len(user) >= MAX_USER_PROPERTIES:
                raise MqttCodecError(Reason.PROTOCOL_ERROR, f"{what}: more than {MAX_USER_PROPERTIES} user properties")
            assert isinstance(value, tuple)
            user.append(value)
            continue
        assert not isinstance(value, tuple)
        if (allowed is not None and value not in allowed) or (pid in _NONZERO and value == 0):
            raise MqttCodecError(Reason.PROTOCOL_ERROR, f"{what}: property {name} has invalid value {value!r}")
        if pid == Prop.SUBSCRIPTION_IDENTIFIER and packet == _P["PUBLISH"]:
            sub_ids.append(int(value))
            continue
        if pid in values:
            raise MqttCodecError(Reason.PROTOCOL_ERROR, f"{what}: property {name} appears twice")
        values[pid] = value
    r.pos = end
    if Prop.AUTHENTICATION_DATA in values and Prop.AUTHENTICATION_METHOD not in values:
        raise MqttCodecError(Reason.PROTOCOL_ERROR, f"{what}: authentication data without a method")
    return Properties(values, tuple(user), tuple(sub_ids))


def _read_value(r: Reader, kind: int, what: str) -> int | str | bytes | tuple[str, str]:
    if kind == _BYTE:
        return r.u8(what)
    if kind == _U16:
        return r.u16(what)
    if kind == _U32:
        return r.u32(what)
    if kind == _VARINT:
        return r.varint(what)
    if kind == _STR:
        return r.string(what)
    if kind == _BIN:
        return r.binary(what)
    return r.string(what + " name"), r.string(what + " value")


def encode_properties(props: Properties) -> bytes:
    out = bytearray()
    for pid, value in props.values.items():
        kind = _TABLE[pid][0]
        out += encode_varint(pid)
        if kind == _BYTE:
            assert isinstance(value, int)
            out.append(value)
        elif kind == _U16:
            assert isinstance(value, int)
            out += w_u16(value)
        elif kind == _U32:
            assert isinstance(value, int)
            out += w_u32(value)
        elif kind == _VARINT:
            assert isinstance(value, int)
            out += encode_varint(value)
        elif kind == _STR:
            assert isinstance(value, str)
            out += w_str(value)
        else:
            assert isinstance(value, bytes)
            out += w_binary(value)
    for sid in props.subscription_ids:
        out += encode_varint(Prop.SUBSCRIPTION_IDENTIFIER) + encode_varint(sid)
    for name, value in props.user:
        out += encode_varint(Prop.USER_PROPERTY) + w_str(name) + w_str(value)
    return encode_varint(len(out)) + bytes(out)
