"""The cbor2 fast path of wave.canonical must agree with the in-house reference codec everywhere."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.wave import EncodingError, Reason
from wavemq_edge.wave.canonical import _encode_reference, decode, decode_reference, encode

leaves = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40)
          | st.text(max_size=20))
values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.integers(0, 2**64 - 1), kids, max_size=5),
    max_leaves=25,
)


@given(values)
def test_encode_matches_reference(value: object) -> None:
    assert encode(value) == _encode_reference(value)  # type: ignore[arg-type]
    assert decode(encode(value)) == value  # type: ignore[arg-type]


def _outcome(fn: object, data: bytes) -> object:
    try:
        return ("ok", fn(data))  # type: ignore[operator]
    except EncodingError as exc:
        return ("error", exc.reason)


@given(st.binary(max_size=64))
def test_decode_agrees_with_reference_on_random_bytes(data: bytes) -> None:
    assert _outcome(decode, data) == _outcome(decode_reference, data)


@given(values, st.sampled_from(["trailing", "float", "tag", "long-int", "indefinite", "unsorted"]))
def test_decode_agrees_on_near_misses(value: object, mutation: str) -> None:
    raw = encode(value)  # type: ignore[arg-type]
    if mutation == "trailing":
        data = raw + b"\x00"
    elif mutation == "float":
        data = cbor2.dumps([value, 1.5])
    elif mutation == "tag":
        data = cbor2.dumps(cbor2.CBORTag(1, 5))
    elif mutation == "long-int":
        data = b"\x18\x05"  # 5 in a one-byte argument: not the shortest form
    elif mutation == "indefinite":
        data = b"\x9f" + raw + b"\xff"
    else:
        data = b"\xa2\x02\x00\x01\x00"  # {2: 0, 1: 0}
    assert _outcome(decode, data) == _outcome(decode_reference, data)
    assert _outcome(decode, data)[0] == "error"


@pytest.mark.parametrize("bad", [1.5, {"k": 1}, {-1: 0}, 2**64, [set()]])
def test_encode_refuses_outside_the_subset(bad: object) -> None:
    with pytest.raises(EncodingError):
        encode(bad)  # type: ignore[arg-type]


def _encode_widened(value: object, target: int) -> tuple[bytes, int]:
    """The canonical encoding of ``value`` except that head number ``target`` (in encoding order) takes
    the next wider argument form. Returns the bytes and how many heads there were."""
    out = bytearray()
    count = 0

    def head(major: int, n: int) -> None:
        nonlocal count
        width = 0 if n < 24 else 1 if n < 0x100 else 2 if n < 0x10000 else 4 if n < 0x100000000 else 8
        if count == target and width < 8:
            width = 1 if width == 0 else width * 2
        count += 1
        if width == 0:
            out.append(major << 5 | n)
        else:
            out.append(major << 5 | {1: 24, 2: 25, 4: 26, 8: 27}[width])
            out.extend(n.to_bytes(width, "big"))

    def item(v: object) -> None:
        if v is True or v is False or v is None:
            out.append({False: 0xF4, True: 0xF5, None: 0xF6}[v])  # type: ignore[index]
        elif isinstance(v, int):
            head(0, v) if v >= 0 else head(1, -1 - v)
        elif isinstance(v, bytes):
            head(2, len(v))
            out.extend(v)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            head(3, len(raw))
            out.extend(raw)
        elif isinstance(v, list):
            head(4, len(v))
            for x in v:
                item(x)
        else:
            assert isinstance(v, dict)
            head(5, len(v))
            for k in sorted(v):
                head(0, k)
                item(v[k])

    item(value)
    return bytes(out), count


@given(values, st.integers(0, 60))
def test_any_widened_head_is_refused_like_the_reference(value: object, which: int) -> None:
    """The one-pass check compares lengths: every head in a wider form than needed must still be caught,
    wherever it is (a map key, a length, a nested integer)."""
    canonical, heads = _encode_widened(value, -1)
    assert canonical == encode(value)  # type: ignore[arg-type]
    data, _ = _encode_widened(value, which % max(heads, 1))
    if data == canonical:  # the value had no head (true/false/null) or the head was 8 bytes wide already
        return
    assert _outcome(decode, data) == ("error", _outcome(decode_reference, data)[1])
    assert _outcome(decode, data)[1] is Reason.NON_CANONICAL


@given(values)
def test_canonical_bytes_take_the_fast_path(value: object) -> None:
    """Accepted input never falls back to the slow reference decoder (the fast path stays the path)."""
    import wavemq_edge.wave.canonical as canonical

    raw = encode(value)  # type: ignore[arg-type]
    original = canonical.decode_reference
    canonical.decode_reference = lambda data: pytest.fail(f"fell back to the reference for {data.hex()}")
    try:
        assert decode(raw) == value
    finally:
        canonical.decode_reference = original


@pytest.mark.parametrize(("data", "reason"), [
    (b"\xa2\x01\x00\x01\x01", Reason.NON_CANONICAL),  # duplicate key, same length as a valid map
    (b"\xa2\x18\x18\x00\x17\x00", Reason.NON_CANONICAL),  # keys 24 then 23: unsorted, equal total length
    (b"\x82\x00\xf8\x14", Reason.MALFORMED),  # false as a two-byte simple value
    (b"\x82\x00\xf7", Reason.MALFORMED),  # undefined
    (b"\x81\x78\x01a", Reason.NON_CANONICAL),  # text length in a one-byte argument
    (b"\x5f\x41a\xff", Reason.NON_CANONICAL),  # indefinite byte string
    (b"\x7f\x61a\xff", Reason.NON_CANONICAL),  # indefinite text string
    (b"\xa1\x20\x00", Reason.MALFORMED),  # negative map key
    (b"\xa1\x41a\x00", Reason.MALFORMED),  # byte-string map key
    (b"\x81\xc1\x00", Reason.MALFORMED),  # a tag inside an array
])
def test_near_miss_vectors(data: bytes, reason: Reason) -> None:
    assert _outcome(decode, data) == ("error", reason)
    assert _outcome(decode_reference, data) == ("error", reason)


def test_encode_sorts_maps_built_out_of_order() -> None:
    assert encode({2: 1, 1: {3: 0, 0: [True, None]}}) == b"\xa2\x01\xa2\x00\x82\xf5\xf6\x03\x00\x02\x01"


def test_cbor2_without_strict_options_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    import wavemq_edge.wave.canonical as canonical

    real = cbor2.loads

    def old_loads(data: bytes, *, tag_hook: object = None, **kwargs: object) -> object:
        if kwargs:
            raise TypeError(f"{next(iter(kwargs))!r} is an invalid keyword argument for this function")
        return real(data, tag_hook=tag_hook)  # type: ignore[arg-type]

    monkeypatch.setattr(cbor2, "loads", old_loads)
    assert canonical._strict_loads_options() is None


@given(values, st.sampled_from(["as-is", "trailing", "long-int", "indefinite", "unsorted", "duplicate"]))
def test_decode_without_strict_cbor2_options_is_as_exact(value: object, mutation: str) -> None:
    """The cbor2 5.x path (re-encode and compare) agrees with the reference like the one-pass path."""
    import wavemq_edge.wave.canonical as canonical

    raw = encode(value)  # type: ignore[arg-type]
    data = {"as-is": raw, "trailing": raw + b"\x00", "long-int": b"\x82\x18\x05" + raw,
            "indefinite": b"\x9f" + raw + b"\xff", "unsorted": b"\xa2\x02\x00\x01" + raw,
            "duplicate": b"\xa2\x01\x00\x01" + raw}[mutation]
    saved = canonical._STRICT_LOADS
    canonical._STRICT_LOADS = None  # type: ignore[misc]
    try:
        assert _outcome(decode, data) == _outcome(decode_reference, data)
    finally:
        canonical._STRICT_LOADS = saved  # type: ignore[misc]
    assert (_outcome(decode, data)[0] == "ok") == (mutation == "as-is")
