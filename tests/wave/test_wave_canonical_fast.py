"""The cbor2 fast path of wave.canonical must agree with the in-house reference codec everywhere."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.wave import EncodingError
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
