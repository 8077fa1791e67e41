"""Canonical CBOR: vectors against cbor2, refusal of non-canonical input, and property tests."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from wavemq_edge.wave import EncodingError, Reason, decode, encode
from wavemq_edge.wave.canonical import MAX_DEPTH, CborValue

pytestmark = pytest.mark.timeout(60)

scalars = (
    hs.integers(min_value=-(2**64), max_value=2**64 - 1)
    | hs.binary(max_size=300)
    | hs.text(max_size=50)
    | hs.booleans()
    | hs.none()
)
values: hs.SearchStrategy[CborValue] = hs.recursive(
    scalars,
    lambda children: (
        hs.lists(children, max_size=5)
        | hs.dictionaries(hs.integers(min_value=0, max_value=2**64 - 1), children, max_size=5)
    ),
    max_leaves=20,
)


@given(values)
@settings(max_examples=300, deadline=None)
def test_roundtrip_and_agrees_with_cbor2_canonical(value: CborValue) -> None:
    data = encode(value)
    assert decode(data) == value
    assert data == cbor2.dumps(value, canonical=True)


@given(hs.binary(max_size=64))
@settings(max_examples=500, deadline=None)
def test_any_accepted_bytes_are_the_canonical_encoding(data: bytes) -> None:
    try:
        value = decode(data)
    except EncodingError:
        return
    assert encode(value) == data


@given(values)
@settings(max_examples=200, deadline=None)
def test_cbor2_noncanonical_forms_refused_or_identical(value: CborValue) -> None:
    """cbor2's default (non-canonical) encoding is accepted only when it happens to be canonical."""
    loose = cbor2.dumps(value)
    try:
        decoded = decode(loose)
    except EncodingError:
        return
    assert decoded == value and encode(decoded) == loose


@pytest.mark.parametrize(
    ("data", "reason", "where"),
    [
        (b"\x18\x05", Reason.NON_CANONICAL, "shortest"),  # 5 as a 1-byte argument
        (b"\x19\x00\xff", Reason.NON_CANONICAL, "shortest"),  # 255 as a 2-byte argument
        (b"\x1a\x00\x00\xff\xff", Reason.NON_CANONICAL, "shortest"),
        (b"\x1b\x00\x00\x00\x00\xff\xff\xff\xff", Reason.NON_CANONICAL, "shortest"),
        (b"\x58\x01a", Reason.NON_CANONICAL, "shortest"),  # byte string length in long form
        (b"\xa2\x02\x00\x01\x00", Reason.NON_CANONICAL, "unsorted"),
        (b"\xa2\x01\x00\x01\x00", Reason.NON_CANONICAL, "duplicate"),
        (b"\x9f\x01\xff", Reason.NON_CANONICAL, "indefinite"),
        (b"\x5f\x41a\xff", Reason.NON_CANONICAL, "indefinite"),
        (b"\x01\x00", Reason.NON_CANONICAL, "trailing"),
        (b"\xa1\x61a\x00", Reason.MALFORMED, "not an unsigned"),  # text key
        (b"\xf9\x3c\x00", Reason.MALFORMED, "float"),
        (b"\xf7", Reason.MALFORMED, "simple"),  # undefined
        (b"\xc0\x61a", Reason.MALFORMED, "tags"),
        (b"\x62\xff\xfe", Reason.MALFORMED, "UTF-8"),
        (b"\x5a\xff\xff\xff\xff", Reason.MALFORMED, "remain"),  # length beyond input
        (b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff", Reason.MALFORMED, "longer than the input"),
        (b"\x1c", Reason.MALFORMED, "reserved"),
        (b"", Reason.MALFORMED, "end of input"),
    ],
)
def test_non_canonical_and_malformed_refused(data: bytes, reason: Reason, where: str) -> None:
    with pytest.raises(EncodingError) as info:
        decode(data)
    assert info.value.reason is reason
    assert where in str(info.value)
    assert "at byte" in str(info.value)


def test_depth_bound() -> None:
    deep = b"\x81" * (MAX_DEPTH + 1) + b"\x00"
    with pytest.raises(EncodingError) as info:
        decode(deep)
    assert info.value.reason is Reason.OVERSIZE
    nested: CborValue = 0
    for _ in range(MAX_DEPTH + 1):
        nested = [nested]
    with pytest.raises(EncodingError):
        encode(nested)


def test_encoder_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(EncodingError):
        encode(2**64)
    with pytest.raises(EncodingError):
        encode({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(EncodingError):
        encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(EncodingError):
        encode("\udc80")
