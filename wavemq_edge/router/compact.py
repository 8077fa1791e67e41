"""Compact message batches for the trunk: signed messages in ~150 bytes each, rebuilt bit-exactly.

Why: a signed message as an agent sends it is ~300 bytes (three 36-byte ids, a 64-byte signature, CBOR
keys). On a site's uplink that doubles the traffic of a Mosquitto bridge. Because the signed bytes are
*canonical* CBOR, a receiver can rebuild them exactly from the fields, so the trunk sends only what
varies and refers to the rest by small per-connection indexes:

* ids (source, namespace, origin router) and proofs travel once per connection as *definitions*
  ``[kind, index, value]`` and are then referred to by index; payload schemas likewise;
* entries are packed bytes, not CBOR: flags, the index tuple (or "same as the previous entry"),
  the timestamp as a zig-zag varint delta, the URI as (bytes shared with the previous URI, suffix),
  the payload, and the raw 64-byte signature;
* the message id is not sent: the receiver derives it from the rebuilt bytes (``wave.messages``).

An entry the format cannot express (an end-to-end encryption header) travels as the full signed
message (flag ``RAW``). The receiver rebuilds ``[10, 1, tbs, sig]`` and parses it strictly, so a
corrupted or forged entry fails signature verification like any other message.

Tables are bounded (``MAX_TABLE`` entries per kind); the sender reuses indexes round-robin and the
receiver simply overwrites, so both sides' memory is bounded whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..wave import EncodingError, Message, VerificationError, encode, object_id

__all__ = [
    "KIND_ID",
    "KIND_PROOF",
    "KIND_SCHEMA",
    "MAX_TABLE",
    "CompactDecoder",
    "CompactEncoder",
    "CompactError",
]

KIND_ID: Final = 1
KIND_PROOF: Final = 2
KIND_SCHEMA: Final = 3
#: Entries per table kind. A site forwards for tens of services and namespaces: 1024 distinct ids or
#: proofs per connection is plenty, and bounds what a peer can make us hold (1024 x 64 KiB proofs).
MAX_TABLE: Final = 1024

_PERSIST: Final = 0x01
_SAME_IDS: Final = 0x02
_HAS_SEQ: Final = 0x04
_RAW: Final = 0x08
_SAME_SCHEMA: Final = 0x10
_SIG_BYTES: Final = 64
#: Envelope prefix of a signed message: array(4), type 10 (message), version 1.
_MESSAGE_PREFIX: Final = b"\x84\x0a\x01"


class CompactError(Exception):
    """A compact batch is malformed (the peer broke the trunk protocol)."""


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int) -> int:
    return (n << 1) if n >= 0 else ((-n) << 1) - 1


def _unzigzag(n: int) -> int:
    return (n >> 1) if not n & 1 else -((n + 1) >> 1)


@dataclass(slots=True)
class _Table:
    index: dict[object, int]
    values: list[object]
    next: int = 0

    def lookup(self, value: object, defs: list[list[object]], kind: int) -> int:
        idx = self.index.get(value)
        if idx is not None:
            return idx
        if len(self.values) < MAX_TABLE:
            idx = len(self.values)
            self.values.append(value)
        else:  # round-robin reuse: the receiver overwrites the index with the new definition
            idx = self.next
            self.next = (self.next + 1) % MAX_TABLE
            del self.index[self.values[idx]]
            self.values[idx] = value
        self.index[value] = idx
        defs.append([kind, idx, value])
        return idx


class CompactEncoder:
    """Sender side of one connection. ``encode_batch(messages, proofs)`` -> (defs, base_ts, blob)."""

    def __init__(self) -> None:
        self._tables = {KIND_ID: _Table({}, []), KIND_PROOF: _Table({}, []), KIND_SCHEMA: _Table({}, [])}

    def encode_batch(self, messages: list[tuple[Message, bytes | None]]) -> tuple[list[list[object]], int, bytes]:
        """``messages``: (message, its proof bytes or None). Without the proof a message goes RAW (the
        receiver then needs the proof some other way and will refuse it with UNKNOWN_PROOF)."""
        defs: list[list[object]] = []
        out = bytearray()
        base_ts = messages[0][0].timestamp_ms if messages else 0
        prev_ts = base_ts
        prev_ids: tuple[int, int, int, int] | None = None
        prev_uri = b""
        prev_schema: int | None = None
        ids, proofs, schemas = self._tables[KIND_ID], self._tables[KIND_PROOF], self._tables[KIND_SCHEMA]
        for msg, proof in messages:
            if msg.e2ee is not None or proof is None:
                out.append(_RAW)
                _varint(len(msg.raw), out)
                out += msg.raw
                continue
            idx = (
                ids.lookup(msg.src, defs, KIND_ID),
                ids.lookup(msg.namespace, defs, KIND_ID),
                proofs.lookup(proof, defs, KIND_PROOF),
                ids.lookup(msg.origin_router, defs, KIND_ID),
            )
            flags = 0
            if msg.persist:
                flags |= _PERSIST
            if idx == prev_ids:
                flags |= _SAME_IDS
            if msg.seq:
                flags |= _HAS_SEQ
            single = len(msg.payload) == 1
            schema_idx = schemas.lookup(msg.payload[0][0], defs, KIND_SCHEMA) if single else None
            if single and schema_idx == prev_schema:
                flags |= _SAME_SCHEMA
            out.append(flags)
            if not flags & _SAME_IDS:
                for i in idx:
                    _varint(i, out)
            _varint(_zigzag(msg.timestamp_ms - prev_ts), out)
            uri = msg.uri.encode("utf-8")
            shared = 0
            limit = min(len(uri), len(prev_uri))
            while shared < limit and uri[shared] == prev_uri[shared]:
                shared += 1
            _varint(shared, out)
            _varint(len(uri) - shared, out)
            out += uri[shared:]
            if msg.seq:
                _varint(msg.seq, out)
            if flags & _SAME_SCHEMA:
                content = msg.payload[0][1]
                _varint(len(content), out)
                out += content
            else:
                _varint(len(msg.payload), out)
                for schema, content in msg.payload:
                    _varint(schemas.lookup(schema, defs, KIND_SCHEMA), out)
                    _varint(len(content), out)
                    out += content
            out += msg.opened.signature
            prev_ts, prev_ids, prev_uri = msg.timestamp_ms, idx, uri
            prev_schema = schema_idx
        return defs, base_ts, bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        n = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise CompactError(f"truncated varint at byte {self.pos}")
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 63:
                raise CompactError(f"varint longer than 64 bits at byte {self.pos}")

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise CompactError(f"entry needs {n} bytes at byte {self.pos}, {len(self.data) - self.pos} remain")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk


class CompactDecoder:
    """Receiver side of one connection: applies definitions, rebuilds the signed messages."""

    def __init__(self) -> None:
        self._tables: dict[int, dict[int, object]] = {KIND_ID: {}, KIND_PROOF: {}, KIND_SCHEMA: {}}
        #: each proof's id, computed once per definition instead of once per message
        self._proof_ids: dict[int, bytes] = {}

    def apply_defs(self, defs: object) -> None:
        if not isinstance(defs, list):
            raise CompactError("definitions are not a list")
        for d in defs:
            if not (isinstance(d, list) and len(d) == 3 and isinstance(d[0], int) and isinstance(d[1], int)):
                raise CompactError("a definition is not [kind, index, value]")
            kind, idx, value = d
            if kind not in self._tables or not 0 <= idx < MAX_TABLE:
                raise CompactError(f"definition kind {kind} index {idx} is out of range")
            if kind == KIND_SCHEMA and not isinstance(value, str):
                raise CompactError("a schema definition is not text")
            if kind != KIND_SCHEMA and not isinstance(value, bytes):
                raise CompactError("an id or proof definition is not bytes")
            self._tables[kind][idx] = value
            if kind == KIND_PROOF:
                assert isinstance(value, bytes)
                self._proof_ids[idx] = object_id(value)

    def _get(self, kind: int, idx: int) -> object:
        value = self._tables[kind].get(idx)
        if value is None:
            raise CompactError(f"reference to undefined index {idx} of kind {kind}")
        return value

    def decode_batch(self, base_ts: int, blob: bytes) -> list[tuple[Message, bytes | None]]:
        """Rebuild every message of a batch (strictly parsed, not yet verified) with its proof bytes."""
        r = _Reader(blob)
        out: list[tuple[Message, bytes | None]] = []
        prev_ts = base_ts
        prev_ids: tuple[int, int, int, int] | None = None
        prev_uri = b""
        prev_schema: str | None = None
        while r.pos < len(blob):
            flags = r.take(1)[0]
            try:
                if flags & _RAW:
                    out.append((Message.parse(r.take(r.varint())), None))
                    continue
                if flags & _SAME_IDS:
                    if prev_ids is None:
                        raise CompactError("first entry of a batch says 'same ids as previous'")
                    ids = prev_ids
                else:
                    ids = (r.varint(), r.varint(), r.varint(), r.varint())
                ts = prev_ts + _unzigzag(r.varint())
                shared = r.varint()
                if shared > len(prev_uri):
                    raise CompactError(f"URI shares {shared} bytes with a previous URI of {len(prev_uri)}")
                uri_bytes = prev_uri[:shared] + r.take(r.varint())
                seq = r.varint() if flags & _HAS_SEQ else 0
                payload: list[list[object]] = []
                if flags & _SAME_SCHEMA:
                    if prev_schema is None:
                        raise CompactError("'same schema' without a previous single-object payload")
                    payload.append([prev_schema, r.take(r.varint())])
                else:
                    for _ in range(r.varint()):
                        schema = self._get(KIND_SCHEMA, r.varint())
                        payload.append([schema, r.take(r.varint())])
                sig = r.take(_SIG_BYTES)
                src, ns = self._get(KIND_ID, ids[0]), self._get(KIND_ID, ids[1])
                proof, origin = self._get(KIND_PROOF, ids[2]), self._get(KIND_ID, ids[3])
                assert isinstance(proof, bytes)
                tbs: dict[int, object] = {1: src, 2: ns, 3: uri_bytes.decode("utf-8"), 4: payload, 5: origin, 6: ts,
                                          8: self._proof_ids[ids[2]], 9: bool(flags & _PERSIST)}
                if seq:
                    tbs[11] = seq
                raw = _MESSAGE_PREFIX + encode(tbs) + b"\x58\x40" + sig
                out.append((Message.parse(raw), proof))
                prev_ts, prev_ids, prev_uri = ts, ids, uri_bytes
                prev_schema = payload[0][0] if len(payload) == 1 else None  # type: ignore[assignment]
            except (VerificationError, EncodingError, UnicodeDecodeError) as exc:
                raise CompactError(f"entry {len(out)}: {exc}") from None
        return out
