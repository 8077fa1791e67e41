"""Frame types and close codes: the registry of what may travel in a frame.

A frame is ``u32 big-endian length || one CBOR item``; the item is an array whose first element is the
frame type (``FrameType``) followed by positional fields. Integer tags, no string keys: the fields of
each type are documented where the type is defined, and the README lists them.

Only the types the codec itself needs live here so far; the agent and peer protocols add theirs.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

__all__ = ["CloseCode", "Frame", "FrameType"]


class FrameType(IntEnum):
    #: ``[ERROR, code: int, reason: str]``: sent before closing a connection (or, for request-scoped
    #: errors, in place of a reply). ``code`` is a ``CloseCode``.
    ERROR = 0
    #: ``[PING, token: int]`` keepalive; the peer answers ``[PONG, token]``.
    PING = 1
    PONG = 2


class CloseCode(IntEnum):
    """Why a connection (or request) failed. Numbers are stable: clients match on them."""

    NORMAL = 0
    #: the length prefix announced a frame over ``max_frame_bytes``.
    FRAME_TOO_LARGE = 400
    #: the frame body is not exactly one well-formed CBOR item of the allowed types.
    MALFORMED_FRAME = 401
    #: the CBOR item is not an array starting with a known frame type.
    UNKNOWN_FRAME_TYPE = 402
    #: a frame of a known type with fields of the wrong number or type.
    BAD_FIELDS = 403
    #: a frame that is not allowed in the connection's current state.
    PROTOCOL_VIOLATION = 404
    #: the peer stopped sending mid-frame or mid-handshake for too long.
    TIMEOUT = 408
    #: a configured bound was reached (connections, subscriptions, ...).
    LIMIT_EXCEEDED = 429
    #: the router is shutting down.
    GOING_AWAY = 503
    #: an unexpected internal error; the router logged it.
    INTERNAL_ERROR = 500


class Frame(NamedTuple):
    """One decoded frame: its type and its positional fields (CBOR values: int, bytes, str, bool,
    None, list, dict). A NamedTuple rather than a frozen dataclass: it is built once per frame on the
    hot path, and a tuple is built in a third of the time."""

    type: FrameType
    fields: tuple[object, ...]
