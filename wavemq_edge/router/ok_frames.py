"""The ``OK`` frame every publish is answered with, built from pre-encoded pieces.

The protocol answers each ``PUBLISH`` with its own ``OK req "accepted"`` (or ``"duplicate"``). Only the
request number differs between two of them, so the frame is the pre-encoded head (length prefix, array
header, frame type), the request number as a CBOR unsigned integer, and the pre-encoded text: the same
bytes ``encode_frame`` makes (tests/router/test_publish_batch.py compares them), in a fraction of its time.
"""

from __future__ import annotations

import struct
from typing import Final

from ..wire import FrameType, encode_frame

__all__ = ["publish_ok"]

_PREFIX: Final = struct.Struct(">I")
_UINT_HEADS: Final = ((0x100, b"\x18", 1), (0x10000, b"\x19", 2), (0x100000000, b"\x1a", 4),
                      (0x10000000000000000, b"\x1b", 8))


def _text(text: str) -> bytes:
    body = encode_frame(FrameType.OK, 0, text)[_PREFIX.size:]
    return body[3:]  # array header, frame type and request 0 are one byte each


_HEAD: Final = encode_frame(FrameType.OK, 0, "")[_PREFIX.size:][:2]  # array header and frame type
_TEXTS: Final = {text: _text(text) for text in ("accepted", "duplicate")}


def _uint(n: int) -> bytes:
    if n < 24:
        return bytes((n,))
    for bound, head, size in _UINT_HEADS:
        if n < bound:
            return head + n.to_bytes(size, "big")
    raise ValueError(n)


def publish_ok(req: int, text: str) -> bytes:
    """``encode_frame(FrameType.OK, req, text)`` for ``text`` "accepted" or "duplicate"."""
    tail = _TEXTS.get(text)
    if tail is None or req < 0 or req >= 0x10000000000000000:
        return encode_frame(FrameType.OK, req, text)
    body = _HEAD + _uint(req) + tail
    return _PREFIX.pack(len(body)) + body
