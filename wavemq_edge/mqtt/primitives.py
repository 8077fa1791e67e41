"""MQTT data representations (§1.5 of both specifications): a bounded reader and the writers.

``Reader`` walks one packet's body (already bounded by its remaining length); every read checks the
bytes are there and raises ``MqttCodecError(MALFORMED_PACKET)`` naming the field otherwise. UTF-8
strings are strict (§1.5.4: well-formed UTF-8, no U+0000, no surrogates).
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import MqttCodecError, Reason

__all__ = ["MAX_VARINT", "Reader", "encode_varint", "read_varint_prefix", "w_binary", "w_str", "w_u16", "w_u32"]

#: Largest Variable Byte Integer (four bytes, §1.5.5).
MAX_VARINT: Final = 268_435_455
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")


def malformed(message: str) -> MqttCodecError:
    return MqttCodecError(Reason.MALFORMED_PACKET, message)


class Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise malformed(f"{what}: needs {n} bytes, {self.end - self.pos} left in the packet")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self._take(1, what)[0]

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self._take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self._take(4, what))[0])

    def varint(self, what: str) -> int:
        value, used = read_varint_prefix(self.data, self.pos, self.end, what)
        if used == 0:
            raise malformed(f"{what}: variable byte integer runs past the packet")
        self.pos += used
        return value

    def binary(self, what: str) -> bytes:
        return self._take(self.u16(what), what)

    def string(self, what: str) -> str:
        raw = self._take(self.u16(what), what)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise malformed(f"{what}: not well-formed UTF-8") from None
        if "\x00" in text:
            raise malformed(f"{what}: contains U+0000")
        return text

    def rest(self) -> bytes:
        out = self.data[self.pos:self.end]
        self.pos = self.end
        return out


def read_varint_prefix(data: bytes | bytearray, pos: int, end: int, what: str) -> tuple[int, int]:
    """(value, bytes used) of the Variable Byte Integer at ``pos``; (0, 0) when it is not complete yet.
    A fifth continuation byte, or a non-minimal encoding's fifth byte, is malformed."""
    value = 0
    for i in range(4):
        if pos + i >= end:
            return 0, 0
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, i + 1
    raise malformed(f"{what}: variable byte integer longer than four bytes")


def encode_varint(value: int) -> bytes:
    if not 0 <= value <= MAX_VARINT:
        raise ValueError(f"variable byte integer {value} out of range 0..{MAX_VARINT}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def w_u16(value: int) -> bytes:
    return _U16.pack(value)


def w_u32(value: int) -> bytes:
    return _U32.pack(value)


def w_binary(value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError(f"binary field of {len(value)} bytes exceeds 65535")
    return _U16.pack(len(value)) + value


def w_str(value: str) -> bytes:
    return w_binary(value.encode("utf-8"))
