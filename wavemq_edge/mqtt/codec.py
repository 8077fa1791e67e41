"""Sans-I/O MQTT stream decoder: bytes in, packets out, every length checked before buffering.

Theory of operation (like ``wire.codec.FrameDecoder``):

* ``receive_bytes(data)`` appends; ``next_packet()`` returns a packet or ``NEED_DATA``. Input may be
  split anywhere.
* The fixed header (one type byte, a 1-4 byte Remaining Length) is read first; the whole packet's size
  is checked against ``max_packet_bytes`` *before* its body is buffered (5.0 ``PACKET_TOO_LARGE``), so
  the buffer holds at most one maximal packet plus one read. A fifth length byte is malformed.
* The first packet must be CONNECT (both specifications, §3.1); it fixes the connection's protocol
  version, with which every later packet is decoded (5.0 properties, reason codes).
* Any failure raises ``MqttCodecError`` with the 5.0 reason code to close with; the decoder then stays
  failed (every later call raises the same error): the connection is done.
"""

from __future__ import annotations

from typing import Final

from .errors import MqttCodecError, Reason
from .packets import MQTT_5, Connect, Packet, PacketType, decode_body
from .primitives import read_varint_prefix

__all__ = ["DEFAULT_MAX_PACKET_BYTES", "NEED_DATA", "NeedData", "PacketDecoder"]

#: Largest packet accepted from a device by default: 256 KiB, the agent frame bound
#: (``MqttConfig.maxPacketSize``): a sensor reading is tens of bytes.
DEFAULT_MAX_PACKET_BYTES: Final = 256 * 1024


class NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class PacketDecoder:
    """See the module docstring. ``server=True`` (the default) requires CONNECT first."""

    __slots__ = ("_buffer", "_error", "_pos", "max_packet_bytes", "offset", "server", "version")

    def __init__(self, max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES, *, server: bool = True,
                 version: int | None = None) -> None:
        if max_packet_bytes < 2:
            raise ValueError(f"max_packet_bytes={max_packet_bytes} must be >= 2")
        self.max_packet_bytes = max_packet_bytes
        self.server = server
        #: the connection's protocol level once CONNECT is decoded (4 = 3.1.1, 5 = 5.0)
        self.version = version
        #: stream offset of the first byte not consumed by a whole packet
        self.offset = 0
        self._buffer = bytearray()
        self._pos = 0
        self._error: MqttCodecError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._pos

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data

    def next_packet(self) -> Packet | NeedData:
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except MqttCodecError as exc:
            self._error = MqttCodecError(exc.reason, f"{exc} (at stream offset {self.offset})", exc.protocol_level)
            raise self._error from None

    def _next(self) -> Packet | NeedData:
        buf, pos = self._buffer, self._pos
        if len(buf) - pos < 2:
            return NEED_DATA
        first = buf[pos]
        remaining, used = read_varint_prefix(buf, pos + 1, len(buf), "remaining length")
        if used == 0:
            return NEED_DATA
        total = 1 + used + remaining
        if total > self.max_packet_bytes:
            raise MqttCodecError(Reason.PACKET_TOO_LARGE,
                                 f"packet of {total} bytes exceeds the maximum packet size {self.max_packet_bytes}")
        if len(buf) - pos < total:
            return NEED_DATA
        body = bytes(buf[pos + 1 + used:pos + total])
        self._pos = pos + total
        self.offset += total
        if self._pos > 65536 or self._pos == len(buf):
            del buf[:self._pos]
            self._pos = 0
        kind = first >> 4
        if self.version is None and self.server and kind != PacketType.CONNECT:
            raise MqttCodecError(Reason.PROTOCOL_ERROR, f"first packet is type {kind}, not CONNECT")
        if self.version is not None and self.server and kind == PacketType.CONNECT:
            raise MqttCodecError(Reason.PROTOCOL_ERROR, "a second CONNECT on one connection")
        packet = decode_body(first, body, self.version if self.version is not None else MQTT_5)
        if isinstance(packet, Connect):
            self.version = packet.protocol_level
        return packet
