"""Frame types: the registry of what may travel in a frame.

A frame is ``u32 big-endian length || one CBOR item``; the item is an array whose first element is the
frame type (``FrameType``) followed by positional fields. Integer tags, no string keys: the fields of
each type are documented where the type is defined, and the README lists them.

The numbered codes that travel in ``ERROR``, ``REFUSED`` and ``SUB_END`` frames live in ``codes.py``;
``CloseCode`` is re-exported here because the codec's callers have always imported it from here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from .codes import CloseCode

__all__ = ["CloseCode", "Frame", "FrameType"]


class FrameType(IntEnum):
    """Every frame type. Fields follow the type, positionally; ``req`` is a client-chosen request
    number echoed in the reply (``OK``/``REFUSED``/...), so requests can be pipelined."""

    #: ``[ERROR, code: int, reason: str]``: sent before closing a connection. ``code`` is a ``CloseCode``.
    ERROR = 0
    #: ``[PING, token: int]`` keepalive; the peer answers ``[PONG, token]``.
    PING = 1
    PONG = 2

    # -- agent API (router/session.py) ---------------------------------------------------------------
    #: router -> agent on connect: ``[HELLO, version, router_id: bytes, challenge: bytes(32),
    #: max_frame_bytes, inflight_window]``.
    HELLO = 10
    #: agent -> router: ``[AUTH, entity: bytes (public entity object), signature: bytes(64)]``; the
    #: signature answers HELLO's challenge (``wave.sign_handshake``), proving possession of the key.
    AUTH = 11
    #: router -> agent: ``[WELCOME, entity_id: bytes]``: authenticated.
    WELCOME = 12
    #: agent -> router: ``[PROOF, req, proof: bytes]``: a proof, referred to by its id afterwards.
    PROOF = 13
    #: agent -> router: ``[PUBLISH, req, message: bytes (signed message object)]``.
    PUBLISH = 20
    #: router -> agent: ``[OK, req, detail]``: the request succeeded (detail depends on the request).
    OK = 21
    #: router -> agent: ``[REFUSED, req, code: int, reason: str]``: the request failed; the connection
    #: stays open. ``code`` is a ``wire.ErrorCode``.
    REFUSED = 22
    #: agent -> router: ``[SUBSCRIBE, req, subscribe: bytes, ephemeral: bool]``; ephemeral
    #: subscriptions end when the last connection attached to them closes.
    SUBSCRIBE = 30
    #: router -> agent: ``[SUBSCRIBED, req, sub_id: str, expiry: int (epoch s), resumed: bool,
    #: backlog: int]``.
    SUBSCRIBED = 31
    #: router -> agent: ``[DELIVER, sub_id: str, seq: int, message: bytes]``.
    DELIVER = 32
    #: agent -> router: ``[DACK, sub_id: str, seqs: [int]]``: these deliveries were processed.
    DACK = 33
    #: agent -> router: ``[UNSUBSCRIBE, req, unsubscribe: bytes]``.
    UNSUBSCRIBE = 34
    #: router -> agent: ``[SUB_END, sub_id: str, code: int, reason: str]``: the subscription ended.
    SUB_END = 35
    #: agent -> router: ``[QUERY, req, query: bytes, after_uri: str | None, limit: int]``.
    QUERY = 40
    #: router -> agent: ``[RESULT, req, message: bytes]``, once per persisted message that matches.
    RESULT = 41
    #: router -> agent: ``[QUERY_END, req, count: int, continuation: str | None, source: str]``.
    QUERY_END = 42
    #: agent -> router: ``[STATUS, req]``; router -> agent: ``[STATUS_REPLY, req, status: map]``.
    STATUS = 50
    STATUS_REPLY = 51

    # -- trunk handshake (router/channel.py), plaintext -----------------------------------------------
    #: site -> DR: ``[CH_HELLO, version, ephemeral_pk(32), nonce(32), namespace_id]``.
    CH_HELLO = 70
    #: DR -> site: ``[CH_ACCEPT, ephemeral_pk(32), nonce(32), dr_entity, route_proof, signature]``;
    #: the signature covers the transcript so far (channel binding).
    CH_ACCEPT = 71
    #: site -> DR: ``[CH_AUTH, site_entity, signature]`` over the transcript including the DR's signature.
    CH_AUTH = 72

    # -- trunk (router/trunk.py), inside the encrypted channel ----------------------------------------
    #: site -> DR: ``[T_PUB, first_seq, defs, base_ts, blob, skipped_seqs, live]``: a batch of compact
    #: messages (``live``: sent ahead of a draining backlog, acknowledged later with the in-order ones).
    T_PUB = 80
    #: DR -> site: ``[T_ACK, upto_seq, refused: [[seq, code, reason]...]]``.
    T_ACK = 81
    #: site -> DR: ``[T_SUB, req, subscribe, proof]``: forward a local subscription.
    T_SUB = 82
    #: DR -> site: ``[T_SUBSCRIBED, req, sub_ref: str, expiry]`` or ``[T_REFUSED, req, code, reason]``.
    T_SUBSCRIBED = 83
    T_REFUSED = 84
    #: DR -> site: ``[T_DELIVER, sub_ref, seqs, defs, base_ts, blob]``.
    T_DELIVER = 85
    #: site -> DR: ``[T_DACK, sub_ref, seqs]``.
    T_DACK = 86
    #: site -> DR: ``[T_UNSUB, req, unsubscribe]``; DR -> site ``[T_SUB_END, sub_ref, code, reason]``.
    T_UNSUB = 87
    T_SUB_END = 88
    #: site -> DR: ``[T_QUERY, req, query, proof, after_uri, limit]``; DR -> site ``[T_RESULT, req,
    #: message]`` ... ``[T_QUERY_END, req, count, continuation]``.
    T_QUERY = 89
    T_RESULT = 90
    T_QUERY_END = 91
    #: both ways: ``[T_REVOKE, [revocation...]]``: revocation objects either side knows.
    T_REVOKE = 92
    #: DR -> site: ``[T_OK, req]`` (unsubscribe done).
    T_OK = 93


class Frame(NamedTuple):
    """One decoded frame: its type and its positional fields (CBOR values: int, bytes, str, bool,
    None, list, dict). A NamedTuple rather than a frozen dataclass: it is built once per frame on the
    hot path, and a tuple is built in a third of the time."""

    type: FrameType
    fields: tuple[object, ...]
