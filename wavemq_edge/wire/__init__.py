"""Protocol vocabulary both ends share: frame types, close and refusal codes, field validators, and the
sans-I/O codec. Imports nothing of the package outside ``wire``."""

from .codec import (
    AGENT_MAX_FRAME_BYTES,
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
from .codes import CloseCode, ErrorCode
from .errors import FieldError, LocalWireError, RemoteWireError, WireError
from .fields import (
    expect_bool,
    expect_bytes,
    expect_fields,
    expect_int,
    expect_int_list,
    expect_list,
    expect_map,
    expect_optional_str,
    expect_str,
)
from .frames import Frame, FrameType

__all__ = [
    "AGENT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "LENGTH_PREFIX_BYTES",
    "MAX_DEPTH",
    "NEED_DATA",
    "CloseCode",
    "DecoderState",
    "ErrorCode",
    "FieldError",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "LocalWireError",
    "NeedData",
    "RemoteWireError",
    "WireError",
    "decode_body",
    "encode_frame",
    "expect_bool",
    "expect_bytes",
    "expect_fields",
    "expect_int",
    "expect_int_list",
    "expect_list",
    "expect_map",
    "expect_optional_str",
    "expect_str",
]
