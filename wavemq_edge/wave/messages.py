"""Signed WAVEMQ-lite objects: message, subscribe, query, unsubscribe, and the handshake signature.

Field layout (reference §7.7), every one signed by its source entity under its own domain tag:

* message ``{1: src, 2: ns, 3: uri, 4: [[schema, content]...], 5: origin_router, 6: ts_ms, 8: proof_id,
  9: persist, 10: e2ee header?, 11: seq?}``. The message id is *not sent*: every receiver derives it as
  BLAKE2b-128 of the signed canonical TBS bytes (a slice of what arrived: no re-encoding), so a sender
  cannot give two different messages one id to get one suppressed by dedup, and the 18 bytes stay off
  the wire. ``seq`` (optional uint) lets one publisher sign identical content twice within a millisecond
  as two messages. Key 7 is retired (it carried the id in an earlier draft) and refused. Payload objects
  are a CBOR array of pairs, so ``("ab", "c")`` and ``("a", "bc")`` are different bytes (WAVEMQ's digest
  let them collide).
  Router-mutable fields (hop timestamps, drop counters) live outside the TBS, in the wire frame.
* subscribe ``{1: src, 2: ns, 3: uri pattern, 4: sub_id, 5: router_id, 6: expiry_s, 7: abs_expiry,
  8: ts_ms, 9: nonce(16), 10: proof_id}``; query ``{1: src, 2: ns, 3: uri pattern, 4: ts_ms, 5: nonce,
  6: proof_id}``; unsubscribe ``{1: src, 2: sub_id, 3: ts_ms, 4: nonce}`` -- all bind the source, a
  timestamp and a nonce (WAVEMQ's query bound neither and its unsubscribe was unsigned).
* handshake: the agent or peer signs ``{1: challenge, 2: entity_id}`` (challenge = the router's nonce or
  the secure channel's transcript hash), so a signature cannot be replayed on another channel.

Checks on receipt, in the order of reference §7.7: size bound -> strict decode -> timestamp within
``[now - max_age_s, now + skew_s]`` -> (dedup: :class:`.replay.ReplayGuard`, by the caller) -> source
entity -> signature -> derived id -> publish URI has no wildcard. The proof is checked by the caller with
:meth:`.proof_cache.Verifier.check` (subject = ``src``).

Timestamps here are milliseconds (ordering within a second matters to dedup and queues); ``now`` is
still seconds as everywhere in this package.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from nacl.exceptions import BadSignatureError

from ..lru import LRU
from ..uri import Pattern, UriError, parse_pattern, parse_uri
from .canonical import CborValue, encode
from .entity import Entity, EntitySecret
from .envelope import ObjectType, Opened, domain, open_envelope, seal_envelope, verify_signature
from .errors import Reason, VerificationError
from .fields import check_keys, get_bool, get_bytes, get_list, get_map, get_text, get_uint
from .ids import ID_BYTES, format_id

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PAYLOAD_OBJECTS",
    "MAX_REQUEST_BYTES",
    "Message",
    "Query",
    "Subscribe",
    "Unsubscribe",
    "sign_handshake",
    "sign_message",
    "sign_query",
    "sign_subscribe",
    "sign_unsubscribe",
    "verify_handshake",
]

#: Largest signed message (payload included). The wire frame bound is the real limit; this one stops a
#: verifier from hashing arbitrarily large input handed to it directly.
MAX_MESSAGE_BYTES: Final = 1024 * 1024
#: Payload objects per message (WAVEMQ messages typically carry one or two).
MAX_PAYLOAD_OBJECTS: Final = 64
MAX_SCHEMA_BYTES: Final = 256
MAX_URI_TEXT_BYTES: Final = 1024
#: Subscribe, query and unsubscribe objects are small.
MAX_REQUEST_BYTES: Final = 4096
MSG_ID_BYTES: Final = 16
NONCE_BYTES: Final = 16
#: Default accepted age of a message timestamp: the router passes its ``queueExpiry`` (README: 1 day).
DEFAULT_MAX_AGE_S: Final = 86400.0
_MSG_ID_PERSON: Final = b"wl-msg-id"
#: Keys a message TBS may carry (7, the id of an earlier draft, is refused: the id is derived).
_MESSAGE_KEYS: Final = frozenset({1, 2, 3, 4, 5, 6, 8, 9, 10, 11})
_SUBSCRIBE_KEYS: Final = frozenset(range(1, 11))
_QUERY_KEYS: Final = frozenset(range(1, 7))
_UNSUBSCRIBE_KEYS: Final = frozenset(range(1, 5))


def _what(kind: str, src: bytes) -> str:
    return f"{kind} from {format_id(src)}"


def _check_time(kind: str, src: bytes, ts_ms: int, now: float, skew_s: float, max_age_s: float) -> None:
    """Error texts (and the printable source id in them) are built only on a refusal: on success this
    runs for every message."""
    ts = ts_ms / 1000.0
    if ts > now + skew_s:
        raise VerificationError(
            Reason.FUTURE_TIMESTAMP,
            f"{_what(kind, src)}: timestamp {ts:.3f} is {ts - now:.0f} s ahead (skew {skew_s:.0f} s)",
        )
    if ts < now - max_age_s:
        raise VerificationError(
            Reason.STALE_TIMESTAMP,
            f"{_what(kind, src)}: timestamp {ts:.3f} is {now - ts:.0f} s old (max {max_age_s:.0f} s)",
        )


def _check_source(kind: str, src: bytes, source: Entity) -> None:
    if source.id != src:
        raise VerificationError(
            Reason.ID_MISMATCH,
            f"{_what(kind, src)}: names source {format_id(src)}, verified against {format_id(source.id)}",
        )


def _pattern(kind: str, src: bytes, text: str) -> Pattern:
    try:
        return parse_pattern(text)
    except UriError as exc:
        raise VerificationError(Reason.MALFORMED, f"{_what(kind, src)}: {exc}") from None


#: Publish URIs already found free of wildcards and well formed: a sensor publishes to the same few
#: URIs again and again, and parsing one costs about a microsecond.
_CHECKED_URIS: Final[LRU[str, bool]] = LRU(1024)


def _check_publish_uri(src: bytes, uri: str) -> None:
    if _CHECKED_URIS.get(uri):
        return
    try:
        parse_uri(uri)
    except UriError as exc:
        cells = uri.split("/")
        reason = Reason.WILDCARD_URI if ("*" in cells or "+" in cells) else Reason.MALFORMED
        raise VerificationError(reason, f"{_what('message', src)}: {exc}") from None
    _CHECKED_URIS.put(uri, True)


def _payload(tbs: dict[int, CborValue]) -> tuple[tuple[str, bytes], ...]:
    out: list[tuple[str, bytes]] = []
    for item in get_list(tbs, 4, "payload", "message", MAX_PAYLOAD_OBJECTS):
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str or type(item[1]) is not bytes:
            raise VerificationError(Reason.MALFORMED, "message: a payload object is not [schema, content]")
        schema = item[0]
        # UTF-8 takes at most 4 bytes a character: encode only a schema that might be too long.
        if len(schema) * 4 > MAX_SCHEMA_BYTES and len(schema.encode("utf-8")) > MAX_SCHEMA_BYTES:
            raise VerificationError(Reason.OVERSIZE, f"message: payload schema longer than {MAX_SCHEMA_BYTES}")
        out.append((schema, item[1]))
    return tuple(out)


_MESSAGE_DOMAIN: Final = domain(ObjectType.MESSAGE)


def _derive_msg_id(tbs_bytes: bytes) -> bytes:
    return hashlib.blake2b(tbs_bytes, digest_size=MSG_ID_BYTES, person=_MSG_ID_PERSON).digest()


@dataclass(frozen=True, slots=True)
class Message:
    src: bytes
    namespace: bytes
    uri: str
    payload: tuple[tuple[str, bytes], ...]
    origin_router: bytes
    timestamp_ms: int
    msg_id: bytes
    proof_id: bytes
    persist: bool
    e2ee: dict[int, CborValue] | None
    seq: int
    raw: bytes
    opened: Opened

    @classmethod
    def parse(cls, data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
        """Strict decode and shape check, no signature: read ``src`` to find the source entity."""
        what = "message"
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.MESSAGE, max_bytes)
        tbs = opened.tbs
        check_keys(tbs, _MESSAGE_KEYS, what)
        return cls(
            src=get_bytes(tbs, 1, "src", what, ID_BYTES),
            namespace=get_bytes(tbs, 2, "namespace", what, ID_BYTES),
            uri=get_text(tbs, 3, "uri", what, MAX_URI_TEXT_BYTES),
            payload=_payload(tbs),
            origin_router=get_bytes(tbs, 5, "origin_router", what),
            timestamp_ms=get_uint(tbs, 6, "ts_ms", what),
            msg_id=_derive_msg_id(opened.tbs_bytes),
            proof_id=get_bytes(tbs, 8, "proof_id", what, ID_BYTES),
            persist=get_bool(tbs, 9, "persist", what),
            e2ee=get_map(tbs, 10, "e2ee", what) if 10 in tbs else None,
            seq=get_uint(tbs, 11, "seq", what) if 11 in tbs else 0,
            raw=raw,
            opened=opened,
        )

    def verify(
        self, source: Entity, *, now: float, skew_s: float = 300.0, max_age_s: float = DEFAULT_MAX_AGE_S,
        signature_ok: bool | None = None,
    ) -> None:
        """Every check, in the reference order. ``signature_ok`` is the result of checking
        ``signed_bytes`` against ``opened.signature`` under ``source``'s key elsewhere (a batch verified in
        another thread); None checks it here. A False is refused at the same step, with the same error."""
        _check_time("message", self.src, self.timestamp_ms, now, skew_s, max_age_s)
        _check_source("message", self.src, source)
        if signature_ok is None:
            verify_signature(source.verify_key, self.opened, "its source")
        elif not signature_ok:
            raise VerificationError(Reason.BAD_SIGNATURE, "message: signature does not verify under its source's key")
        _check_publish_uri(self.src, self.uri)

    @property
    def signed_bytes(self) -> bytes:
        """What the signature covers: the message domain tag and the TBS bytes."""
        return _MESSAGE_DOMAIN + self.opened.tbs_bytes

    @property
    def resource(self) -> Pattern:
        return tuple(self.uri.split("/"))


def sign_message(
    source: EntitySecret,
    *,
    namespace: bytes,
    uri: str,
    payload: Sequence[tuple[str, bytes]],
    proof_id: bytes,
    now: float,
    origin_router: bytes = b"",
    persist: bool = False,
    e2ee: dict[int, CborValue] | None = None,
    seq: int = 0,
) -> Message:
    """Sign a publish. A URI with ``*`` or ``+`` is refused: a message names one resource. ``seq``
    (when non-zero) distinguishes identical content signed within one millisecond."""
    parse_uri(uri)  # raises UriError, naming the wildcard segment
    tbs: dict[int, CborValue] = {
        1: source.id,
        2: namespace,
        3: uri,
        4: [[schema, content] for schema, content in payload],
        5: origin_router,
        6: int(now * 1000),
        8: proof_id,
        9: persist,
    }
    if e2ee is not None:
        tbs[10] = e2ee
    if seq:
        tbs[11] = seq
    return Message.parse(seal_envelope(ObjectType.MESSAGE, tbs, source.signing_key))


@dataclass(frozen=True, slots=True)
class Subscribe:
    src: bytes
    namespace: bytes
    uri: str
    sub_id: str
    router_id: bytes
    expiry_s: int
    abs_expiry: int
    timestamp_ms: int
    nonce: bytes
    proof_id: bytes
    raw: bytes
    opened: Opened

    @classmethod
    def parse(cls, data: bytes) -> Subscribe:
        what = "subscribe"
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.SUBSCRIBE, MAX_REQUEST_BYTES)
        tbs = opened.tbs
        check_keys(tbs, _SUBSCRIBE_KEYS, what)
        return cls(
            src=get_bytes(tbs, 1, "src", what, ID_BYTES),
            namespace=get_bytes(tbs, 2, "namespace", what, ID_BYTES),
            uri=get_text(tbs, 3, "uri", what, MAX_URI_TEXT_BYTES),
            sub_id=get_text(tbs, 4, "sub_id", what, 128),
            router_id=get_bytes(tbs, 5, "router_id", what),
            expiry_s=get_uint(tbs, 6, "expiry_s", what),
            abs_expiry=get_uint(tbs, 7, "abs_expiry", what),
            timestamp_ms=get_uint(tbs, 8, "ts_ms", what),
            nonce=get_bytes(tbs, 9, "nonce", what, NONCE_BYTES),
            proof_id=get_bytes(tbs, 10, "proof_id", what, ID_BYTES),
            raw=raw,
            opened=opened,
        )

    def verify(self, source: Entity, *, now: float, skew_s: float = 300.0, max_age_s: float = 300.0) -> None:
        _check_time("subscribe", self.src, self.timestamp_ms, now, skew_s, max_age_s)
        _check_source("subscribe", self.src, source)
        verify_signature(source.verify_key, self.opened, "its source")
        _pattern("subscribe", self.src, self.uri)

    @property
    def resource(self) -> Pattern:
        return tuple(self.uri.split("/"))


def sign_subscribe(
    source: EntitySecret,
    *,
    namespace: bytes,
    uri: str,
    sub_id: str,
    router_id: bytes,
    proof_id: bytes,
    now: float,
    expiry_s: int = 0,
    abs_expiry: int = 0,
) -> Subscribe:
    parse_pattern(uri)
    tbs: dict[int, CborValue] = {
        1: source.id,
        2: namespace,
        3: uri,
        4: sub_id,
        5: router_id,
        6: expiry_s,
        7: abs_expiry,
        8: int(now * 1000),
        9: os.urandom(NONCE_BYTES),
        10: proof_id,
    }
    return Subscribe.parse(seal_envelope(ObjectType.SUBSCRIBE, tbs, source.signing_key))


@dataclass(frozen=True, slots=True)
class Query:
    src: bytes
    namespace: bytes
    uri: str
    timestamp_ms: int
    nonce: bytes
    proof_id: bytes
    raw: bytes
    opened: Opened

    @classmethod
    def parse(cls, data: bytes) -> Query:
        what = "query"
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.QUERY, MAX_REQUEST_BYTES)
        tbs = opened.tbs
        check_keys(tbs, _QUERY_KEYS, what)
        return cls(
            src=get_bytes(tbs, 1, "src", what, ID_BYTES),
            namespace=get_bytes(tbs, 2, "namespace", what, ID_BYTES),
            uri=get_text(tbs, 3, "uri", what, MAX_URI_TEXT_BYTES),
            timestamp_ms=get_uint(tbs, 4, "ts_ms", what),
            nonce=get_bytes(tbs, 5, "nonce", what, NONCE_BYTES),
            proof_id=get_bytes(tbs, 6, "proof_id", what, ID_BYTES),
            raw=raw,
            opened=opened,
        )

    def verify(self, source: Entity, *, now: float, skew_s: float = 300.0, max_age_s: float = 300.0) -> None:
        _check_time("query", self.src, self.timestamp_ms, now, skew_s, max_age_s)
        _check_source("query", self.src, source)
        verify_signature(source.verify_key, self.opened, "its source")
        _pattern("query", self.src, self.uri)

    @property
    def resource(self) -> Pattern:
        return tuple(self.uri.split("/"))


def sign_query(source: EntitySecret, *, namespace: bytes, uri: str, proof_id: bytes, now: float) -> Query:
    parse_pattern(uri)
    tbs: dict[int, CborValue] = {
        1: source.id,
        2: namespace,
        3: uri,
        4: int(now * 1000),
        5: os.urandom(NONCE_BYTES),
        6: proof_id,
    }
    return Query.parse(seal_envelope(ObjectType.QUERY, tbs, source.signing_key))


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    src: bytes
    sub_id: str
    timestamp_ms: int
    nonce: bytes
    raw: bytes
    opened: Opened

    @classmethod
    def parse(cls, data: bytes) -> Unsubscribe:
        what = "unsubscribe"
        raw = bytes(data)
        opened = open_envelope(raw, ObjectType.UNSUBSCRIBE, MAX_REQUEST_BYTES)
        tbs = opened.tbs
        check_keys(tbs, _UNSUBSCRIBE_KEYS, what)
        return cls(
            src=get_bytes(tbs, 1, "src", what, ID_BYTES),
            sub_id=get_text(tbs, 2, "sub_id", what, 128),
            timestamp_ms=get_uint(tbs, 3, "ts_ms", what),
            nonce=get_bytes(tbs, 4, "nonce", what, NONCE_BYTES),
            raw=raw,
            opened=opened,
        )

    def verify(self, source: Entity, *, now: float, skew_s: float = 300.0, max_age_s: float = 300.0) -> None:
        """The router must also check ``src`` owns ``sub_id`` (only the subscriber may unsubscribe)."""
        _check_time("unsubscribe", self.src, self.timestamp_ms, now, skew_s, max_age_s)
        _check_source("unsubscribe", self.src, source)
        verify_signature(source.verify_key, self.opened, "its source")


def sign_unsubscribe(source: EntitySecret, *, sub_id: str, now: float) -> Unsubscribe:
    tbs: dict[int, CborValue] = {1: source.id, 2: sub_id, 3: int(now * 1000), 4: os.urandom(NONCE_BYTES)}
    return Unsubscribe.parse(seal_envelope(ObjectType.UNSUBSCRIBE, tbs, source.signing_key))


def _handshake_bytes(challenge: bytes, entity_id: bytes) -> bytes:
    return domain(ObjectType.HANDSHAKE) + encode({1: challenge, 2: entity_id})


def sign_handshake(secret: EntitySecret, challenge: bytes) -> bytes:
    """Sign a router's challenge (or a channel transcript hash) as ``secret``; returns 64 bytes."""
    return bytes(secret.signing_key.sign(_handshake_bytes(challenge, secret.id)).signature)


def verify_handshake(entity: Entity, challenge: bytes, signature: bytes) -> None:
    """Raise BAD_SIGNATURE unless ``signature`` is ``entity``'s answer to *this* ``challenge``."""
    if len(signature) != 64:
        raise VerificationError(Reason.MALFORMED, f"handshake signature is {len(signature)} bytes, not 64")
    try:
        entity.verify_key.verify(_handshake_bytes(challenge, entity.id), signature)
    except BadSignatureError:
        raise VerificationError(
            Reason.BAD_SIGNATURE, f"handshake: signature is not {format_id(entity.id)}'s answer to this challenge"
        ) from None
