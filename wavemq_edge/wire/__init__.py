"""CBOR frames: types, close codes and the sans-I/O codec."""

from .codec import (
    DEFAULT_MAX_FRAME_BYTES,
    LENGTH_PREFIX_BYTES,
    MAX_DEPTH,
    NEED_DATA,
    DecoderState,
    FrameDecoder,
    NeedData,
    decode_body,
    encode_frame,
)
from .errors import LocalWireError, RemoteWireError, WireError
from .frames import CloseCode, Frame, FrameType

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "LENGTH_PREFIX_BYTES",
    "MAX_DEPTH",
    "NEED_DATA",
    "CloseCode",
    "DecoderState",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "LocalWireError",
    "NeedData",
    "RemoteWireError",
    "WireError",
    "decode_body",
    "encode_frame",
]
