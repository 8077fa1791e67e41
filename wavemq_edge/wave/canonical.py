"""Deterministic CBOR: the one byte encoding every signed or hashed WAVE-lite object uses.

Model
-----
A strict subset of RFC 8949 §4.2.1 "Core Deterministic Encoding" (reference ``wave-security.md`` §7.1):

* unsigned and negative integers (up to 64 bits), byte strings, text strings (valid UTF-8), arrays,
  maps whose keys are unsigned integers, and the simple values ``false``, ``true``, ``null``;
* every head in its shortest form, definite lengths only, map keys strictly increasing (for uint keys the
  bytewise order of RFC 8949 and the length-first order of RFC 7049 agree, so there is one answer), no
  tags, no floats, nesting at most :data:`MAX_DEPTH`, and no bytes after the item.

Why in-house rather than ``cbor2``: a signature is only as good as the uniqueness of the signed bytes. If
two encodings of the same value were accepted, an attacker could change an object's ID (its hash)
without touching its signature, defeating dedup and caches keyed by ID. The decoder therefore *refuses*
anything the encoder would not have produced, so ``encode(decode(b)) == b`` for every accepted ``b``
(property-tested against ``cbor2`` in ``tests/wave``). Every refusal names the byte offset.
"""

from __future__ import annotations

from typing import Any, Final, Union

import cbor2

from .errors import EncodingError, Reason

__all__ = ["MAX_DEPTH", "CborValue", "decode", "decode_reference", "encode"]

CborValue = Union[int, bytes, str, bool, None, "list[CborValue]", "tuple[CborValue, ...]", "dict[int, CborValue]"]

#: Deepest nesting of arrays/maps. Our objects nest at most 5 deep (proof -> paths -> path); 16 leaves
#: room and stops a 1 MB run of ``0x81`` from exhausting the Python stack.
MAX_DEPTH: Final = 16

_UINT64_MAX: Final = (1 << 64) - 1

_FALSE: Final = 0xF4
_TRUE: Final = 0xF5
_NULL: Final = 0xF6


def _head(major: int, n: int, out: bytearray) -> None:
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(mt | 25)
        out += n.to_bytes(2, "big")
    elif n < 0x100000000:
        out.append(mt | 26)
        out += n.to_bytes(4, "big")
    elif n <= _UINT64_MAX:
        out.append(mt | 27)
        out += n.to_bytes(8, "big")
    else:
        raise EncodingError(Reason.OVERSIZE, f"integer or length {n} does not fit in 64 bits")


def _encode(value: object, out: bytearray, depth: int) -> None:
    # bool before int: bool is a subclass of int.
    if value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif value is None:
        out.append(_NULL)
    elif isinstance(value, int):
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, bytes):
        _head(2, len(value), out)
        out += value
    elif isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodingError(Reason.MALFORMED, f"text string is not valid UTF-8: {exc}") from None
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise EncodingError(Reason.OVERSIZE, f"nesting deeper than MAX_DEPTH={MAX_DEPTH}")
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise EncodingError(Reason.OVERSIZE, f"nesting deeper than MAX_DEPTH={MAX_DEPTH}")
        for key in value:
            if type(key) is not int or key < 0:
                raise EncodingError(Reason.MALFORMED, f"map key {key!r} is not an unsigned integer")
        _head(5, len(value), out)
        for key in sorted(value):
            _head(0, key, out)
            _encode(value[key], out, depth + 1)
    else:
        raise EncodingError(Reason.MALFORMED, f"cannot encode a {type(value).__name__} in canonical CBOR")


def _encode_reference(value: object) -> bytes:
    """The in-house encoder: the definition of the encoding, and the source of precise errors."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


_LEAVES: Final = frozenset({bytes, str, type(None), bool})


def _plain(value: object, depth: int) -> bool:
    """True if ``value`` is within the subset (types, int range, uint map keys, depth) *and* every map's
    keys are already in increasing order, so cbor2's C encoder in its default (insertion-order) mode
    produces exactly the canonical bytes. Explicit loops and exact-type tests: generator-based ``all()``
    doubled its cost."""
    t = type(value)
    if t in _LEAVES:
        return True
    if t is int:
        return -(1 << 64) <= value <= _UINT64_MAX  # type: ignore[operator]
    if depth >= MAX_DEPTH:
        return False
    if t is list or t is tuple:
        for v in value:  # type: ignore[attr-defined]
            if type(v) in _LEAVES:
                continue
            if not _plain(v, depth + 1):
                return False
        return True
    if t is dict:
        previous = -1
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not int or k <= previous:
                return False
            previous = k
            if type(v) not in _LEAVES and not _plain(v, depth + 1):
                return False
        return previous <= _UINT64_MAX
    return False


def encode(value: object) -> bytes:
    """The canonical encoding of ``value`` (tuples encode as arrays). Takes any object: one outside the
    subset is an ``EncodingError`` (typed ``object`` so that holds when compiled, too).

    Hot path (signing, handshakes, compact trunk records): a value inside the subset whose maps were
    built in key order goes through cbor2's C encoder in its plain mode, which uses shortest heads and
    keeps insertion order, so its output is the canonical encoding (cross-checked against the reference
    encoder by property tests). Maps in another order take cbor2's canonical mode (which sorts); anything
    outside the subset goes to the reference encoder, which raises the precise error.
    """
    try:
        if _plain(value, 0):
            return cbor2.dumps(value)
        if _in_subset(value, 0):
            return cbor2.dumps(value, canonical=True)
    except (UnicodeEncodeError, ValueError, TypeError, cbor2.CBOREncodeError):
        pass
    return _encode_reference(value)


def _in_subset(value: object, depth: int) -> bool:
    """Like :func:`_plain` but map keys in any order (cbor2's canonical mode sorts them)."""
    t = type(value)
    if t in _LEAVES:
        return True
    if t is int:
        return -(1 << 64) <= value <= _UINT64_MAX  # type: ignore[operator]
    if depth >= MAX_DEPTH:
        return False
    if t is list or t is tuple:
        return all(_in_subset(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    if t is dict:
        return all(type(k) is int and 0 <= k <= _UINT64_MAX and _in_subset(v, depth + 1)
                   for k, v in value.items())  # type: ignore[attr-defined]
    return False


class _Decoder:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, reason: Reason, at: int, what: str) -> EncodingError:
        snippet = self.data[at : at + 8].hex()
        return EncodingError(reason, f"{what} at byte {at} (bytes {snippet}...)")

    def take(self, n: int, at: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise self.fail(Reason.MALFORMED, at, f"item needs {n} bytes but only {len(self.data) - self.pos} remain")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int]:
        """(major type, argument, offset of the head)."""
        at = self.pos
        if at >= len(self.data):
            raise self.fail(Reason.MALFORMED, at, "unexpected end of input")
        initial = self.data[at]
        self.pos += 1
        major = initial >> 5
        info = initial & 0x1F
        if major == 7:
            return major, info, at
        if info < 24:
            return major, info, at
        if info == 31:
            raise self.fail(Reason.NON_CANONICAL, at, "indefinite-length item")
        if info > 27:
            raise self.fail(Reason.MALFORMED, at, f"reserved additional information {info}")
        size = 1 << (info - 24)
        n = int.from_bytes(self.take(size, at), "big")
        minimum = 24 if size == 1 else 1 << (4 * size)  # 1-byte form needs >= 24, 2-byte >= 256, ...
        if n < minimum:
            raise self.fail(Reason.NON_CANONICAL, at, f"value {n} encoded in {size} bytes, not in its shortest form")
        return major, n, at

    def item(self, depth: int) -> CborValue:
        major, n, at = self.head()
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self.take(n, at)
        if major == 3:
            raw = self.take(n, at)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail(Reason.MALFORMED, at, "text string is not valid UTF-8") from None
        if major == 4 or major == 5:
            if depth >= MAX_DEPTH:
                raise self.fail(Reason.OVERSIZE, at, f"nesting deeper than MAX_DEPTH={MAX_DEPTH}")
            # Each element needs at least one byte: refuse absurd counts before allocating anything.
            if n > len(self.data) - self.pos:
                raise self.fail(Reason.MALFORMED, at, f"container of {n} items is longer than the input")
            if major == 4:
                return [self.item(depth + 1) for _ in range(n)]
            out: dict[int, CborValue] = {}
            previous = -1
            for _ in range(n):
                key_major, key, key_at = self.head()
                if key_major != 0:
                    raise self.fail(Reason.MALFORMED, key_at, "map key is not an unsigned integer")
                if key == previous:
                    raise self.fail(Reason.NON_CANONICAL, key_at, f"duplicate map key {key}")
                if key < previous:
                    raise self.fail(Reason.NON_CANONICAL, key_at, f"map key {key} after {previous}: keys unsorted")
                previous = key
                out[key] = self.item(depth + 1)
            return out
        if major == 6:
            raise self.fail(Reason.MALFORMED, at, "tags are not allowed")
        # major 7: only false/true/null; floats, undefined and other simple values are refused.
        if n == 20:
            return False
        if n == 21:
            return True
        if n == 22:
            return None
        raise self.fail(Reason.MALFORMED, at, f"simple value or float (additional information {n}) not allowed")


def _reject_tag(*_args: object) -> object:
    raise ValueError("tags are not allowed")


_NO_TAGS: Final = {tag: _reject_tag for tag in (*range(0, 64), 256, 258, 260, 261, 262, 263, 1004, 1040, 55799)}


def _strict_loads_options() -> dict[str, Any] | None:
    """cbor2 >= 6 refuses indefinite lengths, duplicate keys and every tag while decoding (the options
    below); cbor2 5.x (Debian bookworm ships 5.4.6) has none of them: None then."""
    options: dict[str, Any] = {"semantic_decoders": _NO_TAGS, "tag_hook": _reject_tag,
                                  "allow_indefinite": False, "allow_duplicate_keys": False,
                                  "max_depth": MAX_DEPTH + 1}
    try:
        cbor2.loads(b"\x80", **options)
    except TypeError:
        return None
    return options


#: The strict cbor2 decoding options when this cbor2 has them (see :func:`_strict_loads_options`).
_STRICT_LOADS: Final = _strict_loads_options()


def _head_size(n: int) -> int:
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9


def _canonical_size(value: object, depth: int) -> int:
    """The length of the canonical encoding of ``value`` as cbor2 decoded it, or -1 if ``value`` is
    outside the subset (type, int range, depth) or one of its maps has keys out of increasing order
    (cbor2 keeps a map's keys in the order they arrived, so that is the order on the wire).

    Why that is the whole canonical check: cbor2 (strict options) refused tags, indefinite lengths and
    duplicate keys, so the input is a definite-length encoding of ``value``; it differs from the
    canonical one only in head widths (never narrower than the shortest), key order (checked here) and
    trailing bytes. So the input is canonical exactly when its length equals this size. Leaves are
    handled inline: a call per leaf would double the cost of this walk, which runs on every message."""
    t = type(value)
    if t is list:
        items: object = value
        size = _head_size(len(value))  # type: ignore[arg-type]
    elif t is dict:
        size = _head_size(len(value))  # type: ignore[arg-type]
        previous = -1
        for k in value:  # type: ignore[attr-defined]
            if type(k) is not int or k <= previous:
                return -1
            previous = k
            size += 1 if k < 24 else 2 if k < 0x100 else 3 if k < 0x10000 else 5 if k < 0x100000000 else 9
        if previous > _UINT64_MAX:
            return -1
        items = value.values()  # type: ignore[attr-defined]
    else:
        return _canonical_size([value], 0) - 1  # a bare leaf (only ever at the top)
    if depth >= MAX_DEPTH:
        return -1
    for v in items:  # type: ignore[attr-defined]
        tv = type(v)
        if tv is bytes:
            n = len(v)
        elif tv is str:
            n = len(v) if v.isascii() else len(v.encode("utf-8"))
        elif tv is int:
            n = v if v >= 0 else -1 - v
            if n > _UINT64_MAX:
                return -1
            size += 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9
            continue
        elif tv is bool or v is None:
            size += 1
            continue
        elif tv is list or tv is dict:
            inner = _canonical_size(v, depth + 1)
            if inner < 0:
                return -1
            size += inner
            continue
        else:
            return -1
        size += n + (1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 0x100000000 else 9)
    return size


def decode(data: bytes) -> CborValue:
    """Decode exactly one canonical item; raise :class:`EncodingError` for anything else.

    Fast path, one pass: cbor2's C decoder with tags, indefinite lengths and duplicate keys refused,
    then one walk (:func:`_canonical_size`) that checks the subset and the key order and adds up the
    canonical length; equal to the input's length means non-shortest heads and trailing bytes are
    absent too. No re-encoding. With a cbor2 without the strict options (5.x) the value is re-encoded
    and compared instead. Whatever fails goes through the reference decoder, which names the offending
    byte.
    """
    raw = bytes(data)
    try:
        if _STRICT_LOADS is not None:
            value = cbor2.loads(raw, **_STRICT_LOADS)
            if _canonical_size(value, 0) == len(raw):
                return value  # type: ignore[no-any-return]
        else:
            value = cbor2.loads(raw, tag_hook=_reject_tag)
            if _in_subset(value, 0) and cbor2.dumps(value, canonical=True) == raw:
                return value  # type: ignore[no-any-return]
    except Exception:  # any refusal: the reference decoder says precisely what is wrong
        pass
    return decode_reference(raw)




def decode_reference(data: bytes) -> CborValue:
    """The in-house strict decoder (the definition the fast path is checked against)."""
    decoder = _Decoder(bytes(data))
    value = decoder.item(0)
    if decoder.pos != len(decoder.data):
        raise decoder.fail(
            Reason.NON_CANONICAL, decoder.pos, f"{len(decoder.data) - decoder.pos} trailing bytes after the item"
        )
    return value
