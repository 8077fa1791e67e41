"""Sans-I/O frame codec: ``u32 big-endian length || one CBOR item``.

Decoder theory of operation (nats ``parser.go``, h11 ``_receivebuffer.py``):

* ``receive_bytes(data)`` appends to a buffer; ``next_frame()`` returns a ``Frame`` or ``NEED_DATA``.
  Input may be split anywhere: a prefix over two reads, a body over many.
* The 4-byte length is checked against ``max_frame_bytes`` *before* any body is buffered, so a peer
  announcing 4 GB makes us fail at once, not allocate. The buffer never holds more than one maximal frame
  plus what one ``receive_bytes`` call brought (the caller reads with a bounded size).
* The body must be exactly one CBOR item (no trailing bytes), definite lengths only, no duplicate map
  keys, nesting at most ``MAX_DEPTH``, and only the plain types (int, bytes, str, bool, None, array,
  map with int/str keys). CBOR tags are refused: they would let a peer make us build datetimes,
  decimals, shared (cyclic) references or regexes. (With cbor2 5.x, which lacks the strict options,
  indefinite lengths and duplicate keys get through: see ``_strict_options``.)
* Every failure raises ``RemoteWireError`` with a ``CloseCode``, the decoder state, the stream offset
  and a short hex snippet. After an error the decoder is in ``ERROR`` and raises again on any call: the
  connection is done.

The codec is a hot path (one call per frame): it avoids per-byte Python loops and leaves CBOR itself to
cbor2's C decoder.
"""

from __future__ import annotations

import io
import struct
from enum import Enum
from typing import Any, Final

import cbor2

from .errors import LocalWireError, RemoteWireError
from .frames import CloseCode, Frame, FrameType

__all__ = [
    "AGENT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "LENGTH_PREFIX_BYTES",
    "MAX_DEPTH",
    "NEED_DATA",
    "DecoderState",
    "FrameDecoder",
    "NeedData",
    "decode_body",
    "encode_frame",
]

#: Size of the length prefix. Four bytes: frames are batched, so the prefix is amortised over many
#: messages (the trunk issue's 168-byte budget is per message, not per frame).
LENGTH_PREFIX_BYTES: Final = 4
_PREFIX: Final = struct.Struct(">I")

#: 256 KiB: a sensor message is tens of bytes, a batch of a few hundred messages fits, and 1024
#: connections each holding a partial maximal frame stay within 256 MiB. Configurable
#: (``LimitsConfig.maxFrameBytes``).
DEFAULT_MAX_FRAME_BYTES: Final = 256 * 1024

#: The bound an agent (``wavemq_edge.client``) puts on frames both ways: 16 MiB. An agent does not know
#: the router's configured ``maxFrameBytes`` (1 KiB to 64 MiB, default 256 KiB) before HELLO, and the
#: router enforces its own bound anyway, so this one only caps what one agent connection may buffer for
#: a runaway peer: 64 times the router's default frame, and far above any message a service publishes.
AGENT_MAX_FRAME_BYTES: Final = 16 * 1024 * 1024

#: Deepest nesting of arrays/maps we accept. Our frames nest at most 4 deep; 16 leaves room and stops
#: recursion-depth attacks.
MAX_DEPTH: Final = 16

#: How many bytes of the offending input an error message shows.
_SNIPPET_BYTES: Final = 16


class NeedData(Enum):
    """Sentinel type: the decoder needs more bytes before it can return a frame."""

    NEED_DATA = 0


NEED_DATA: Final = NeedData.NEED_DATA


class DecoderState(Enum):
    LENGTH = "length"  # waiting for (the rest of) a length prefix
    BODY = "body"  # waiting for (the rest of) a frame body
    ERROR = "error"  # a framing error happened; the connection is finished


def _reject_tag(decoder: object, value: object, /) -> object:
    raise ValueError("CBOR tags are not allowed in frames")


# cbor2 decodes these tags itself (datetime, bignum, decimal, shared references, sets, ...) before a
# tag_hook sees them; overriding each with a rejecting decoder keeps every tag out.
_SEMANTIC_REJECTS: Final = {tag: _reject_tag for tag in (*range(0, 64), 256, 258, 260, 261, 262, 263, 1004,
                                                           1040, 55799)}


def _snippet(data: bytes | bytearray | memoryview) -> str:
    chunk = bytes(data[:_SNIPPET_BYTES])
    more = "..." if len(data) > _SNIPPET_BYTES else ""
    return chunk.hex(" ") + more


#: int -> FrameType without the cost of ``FrameType(n)``'s lookup machinery.
_FRAME_TYPES: Final[dict[int, FrameType]] = {int(t): t for t in FrameType}

_LEAF_TYPES: Final = frozenset({type(None), bool, int, bytes, str})


def _check_value(value: object, depth: int) -> str | None:
    """None if ``value`` uses only the plain types within ``MAX_DEPTH``, else what is wrong.

    cbor2 already refused tags; what can still arrive is floats, simple values and ``undefined``. The
    walk tests exact types against a set (subclasses cannot come out of the decoder), which keeps it
    near a microsecond for a message-sized frame.
    """
    if depth > MAX_DEPTH:
        return f"nesting deeper than MAX_DEPTH={MAX_DEPTH}"
    t = type(value)
    if t in _LEAF_TYPES:
        return None
    if t is list:
        assert isinstance(value, list)
        for item in value:
            if type(item) not in _LEAF_TYPES:
                problem = _check_value(item, depth + 1)
                if problem is not None:
                    return problem
        return None
    if t is dict:
        assert isinstance(value, dict)
        for k, v in value.items():
            if type(k) is not int and type(k) is not str:
                return f"map key of type {type(k).__name__} (only int and str keys are allowed)"
            if type(v) not in _LEAF_TYPES:
                problem = _check_value(v, depth + 1)
                if problem is not None:
                    return problem
        return None
    return f"value of type {t.__name__} (floats, tags and simple values are not allowed)"


def _strict_options() -> dict[str, Any]:
    """The strictest options this cbor2 takes. cbor2 >= 6 refuses every tag, indefinite lengths,
    duplicate keys and deep nesting while decoding. cbor2 5.x (Debian bookworm ships 5.4.6) has only
    ``tag_hook``: it still decodes its built-in tags (datetimes, bignums, sets, ...) itself, and
    ``_check_value`` then refuses whatever is not a plain type; indefinite lengths and duplicate keys
    (last one wins) get through there. Frames are not signed, so that is looser but not unsafe;
    signed objects go through ``wave.canonical``, which stays exact with either."""
    strict: dict[str, Any] = {"semantic_decoders": _SEMANTIC_REJECTS, "tag_hook": _reject_tag,
                              "allow_indefinite": False, "allow_duplicate_keys": False,
                              "max_depth": MAX_DEPTH + 1}
    try:
        cbor2.CBORDecoder(io.BytesIO(b""), **strict)
    except TypeError:
        return {"tag_hook": _reject_tag}
    return strict


#: Checked once at import (see :func:`_strict_options`).
_DECODER_OPTIONS: Final = _strict_options()


def _new_cbor_decoder() -> cbor2.CBORDecoder:
    return cbor2.CBORDecoder(io.BytesIO(b""), **_DECODER_OPTIONS)


def decode_body(body: bytes | bytearray | memoryview, offset: int = 0,
                decoder: cbor2.CBORDecoder | None = None) -> Frame:
    """Decode one frame body (without its length prefix). ``offset`` is only used in error messages;
    ``decoder`` lets a ``FrameDecoder`` reuse one cbor2 decoder instead of building one per frame."""
    raw = body if type(body) is bytes else bytes(body)
    stream = io.BytesIO(raw)
    try:
        if decoder is None:
            decoder = _new_cbor_decoder()
        decoder.fp = stream
        item = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, EOFError,
            MemoryError) as exc:  # MemoryError: cbor2 5.x preallocates a declared length
        raise RemoteWireError(
            f"malformed frame at offset {offset}: {exc} (state=body, bytes: {_snippet(raw)})",
            CloseCode.MALFORMED_FRAME,
        ) from None
    if stream.tell() != len(raw):
        raise RemoteWireError(
            f"malformed frame at offset {offset}: {len(raw) - stream.tell()} trailing bytes after the CBOR item "
            f"(state=body, bytes: {_snippet(raw[stream.tell():])})",
            CloseCode.MALFORMED_FRAME,
        )
    problem = _check_value(item, 0)
    if problem is not None:
        raise RemoteWireError(
            f"malformed frame at offset {offset}: {problem} (state=body, bytes: {_snippet(raw)})",
            CloseCode.MALFORMED_FRAME,
        )
    if type(item) is not list or not item or type(item[0]) is not int:  # decoded: exact types, bool apart
        raise RemoteWireError(
            f"frame at offset {offset} is not an array starting with a frame type "
            f"(state=body, bytes: {_snippet(raw)})",
            CloseCode.UNKNOWN_FRAME_TYPE,
        )
    kind = _FRAME_TYPES.get(item[0])
    if kind is None:
        raise RemoteWireError(
            f"frame at offset {offset} has unknown frame type {item[0]} (state=body, bytes: {_snippet(raw)})",
            CloseCode.UNKNOWN_FRAME_TYPE,
        )
    return Frame(kind, tuple(item[1:]))


def encode_frame(kind: FrameType, *fields: object, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> bytes:
    """Encode ``[kind, *fields]`` with its length prefix. Raises ``LocalWireError`` when the body would
    exceed ``max_frame_bytes`` (the peer would refuse it) or a field is not encodable."""
    try:
        body = cbor2.dumps([kind, *fields])  # an IntEnum encodes as its int (cbor2 5.4 and 6 alike)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise LocalWireError(f"cannot encode {kind.name} frame: {exc}", CloseCode.INTERNAL_ERROR) from None
    if len(body) > max_frame_bytes:
        raise LocalWireError(
            f"{kind.name} frame of {len(body)} bytes exceeds max_frame_bytes={max_frame_bytes}",
            CloseCode.FRAME_TOO_LARGE,
        )
    return _PREFIX.pack(len(body)) + body


class FrameDecoder:
    """Incremental decoder; see the module header for the rules."""

    __slots__ = ("_buffer", "_cbor", "_consumed", "_error", "_need", "_pos", "_state", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError(f"max_frame_bytes={max_frame_bytes} must be >= 1")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._pos = 0  # start of unconsumed data in _buffer
        self._state = DecoderState.LENGTH
        self._need = LENGTH_PREFIX_BYTES
        self._consumed = 0  # stream offset of the start of _buffer
        self._error: RemoteWireError | None = None
        self._cbor = _new_cbor_decoder()

    @property
    def state(self) -> DecoderState:
        return self._state

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._pos

    @property
    def offset(self) -> int:
        """Bytes of the stream consumed by whole frames so far."""
        return self._consumed

    def receive_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data

    def next_frame(self) -> Frame | NeedData:
        """The next complete frame, or ``NEED_DATA``. Raises ``RemoteWireError`` on a framing error."""
        if self._error is not None:
            raise self._error
        buf = self._buffer
        pos = self._pos
        if self._state is DecoderState.LENGTH:
            if len(buf) - pos < LENGTH_PREFIX_BYTES:
                self._compact()
                return NEED_DATA
            (length,) = _PREFIX.unpack_from(buf, pos)
            if length > self.max_frame_bytes:
                return self._fail(RemoteWireError(
                    f"frame of {length} bytes at offset {self._consumed} exceeds "
                    f"max_frame_bytes={self.max_frame_bytes} (state=length, bytes: {_snippet(buf[pos:])})",
                    CloseCode.FRAME_TOO_LARGE,
                ))
            if length == 0:
                return self._fail(RemoteWireError(
                    f"empty frame at offset {self._consumed} (state=length, bytes: {_snippet(buf[pos:])})",
                    CloseCode.MALFORMED_FRAME,
                ))
            self._state = DecoderState.BODY
            self._need = length
        end = pos + LENGTH_PREFIX_BYTES + self._need
        if len(buf) < end:
            self._compact()
            return NEED_DATA
        body = bytes(buf[pos + LENGTH_PREFIX_BYTES : end])
        offset = self._consumed
        self._pos = end
        self._consumed += end - pos
        self._state = DecoderState.LENGTH
        self._need = LENGTH_PREFIX_BYTES
        try:
            return decode_body(body, offset, self._cbor)
        except RemoteWireError as exc:
            return self._fail(exc)

    def take_buffered(self) -> bytes:
        """Hand back the bytes received but not yet framed (a protocol switching to another record
        layer mid-stream, like the trunk after its handshake, takes them over)."""
        partial = bytes(self._buffer[self._pos :])
        self._buffer.clear()
        self._pos = 0
        self._state = DecoderState.LENGTH
        self._need = LENGTH_PREFIX_BYTES
        return partial

    def _compact(self) -> None:
        # Drop consumed bytes only when we have to wait anyway: one memmove per read, not per frame.
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0

    def _fail(self, error: RemoteWireError) -> Frame:
        self._state = DecoderState.ERROR
        self._error = error
        self._buffer.clear()
        self._pos = 0
        raise error
