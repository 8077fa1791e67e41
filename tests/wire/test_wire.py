"""wire/: frame codec, fed whole, byte by byte, split anywhere, and fuzzed."""

from __future__ import annotations

import contextlib
import itertools
import struct

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.build_info import is_compiled
from wavemq_edge.wire import (
    NEED_DATA,
    CloseCode,
    DecoderState,
    Frame,
    FrameDecoder,
    FrameType,
    LocalWireError,
    RemoteWireError,
    WireError,
    codec,
    encode_frame,
)
from wavemq_edge.wire.codec import _DECODER_OPTIONS


def body(item: object) -> bytes:
    raw = cbor2.dumps(item)
    return struct.pack(">I", len(raw)) + raw


def drain(decoder: FrameDecoder) -> list[Frame]:
    out: list[Frame] = []
    while True:
        f = decoder.next_frame()
        if f is NEED_DATA:
            return out
        assert isinstance(f, Frame)
        out.append(f)


FRAMES = [encode_frame(FrameType.PING, 1), encode_frame(FrameType.ERROR, 401, "bad"),
          encode_frame(FrameType.PONG, 2**40), encode_frame(FrameType.PING, b"\x00" * 300)]
STREAM = b"".join(FRAMES)
EXPECTED = [Frame(FrameType.PING, (1,)), Frame(FrameType.ERROR, (401, "bad")),
            Frame(FrameType.PONG, (2**40,)), Frame(FrameType.PING, (b"\x00" * 300,))]


def test_whole_stream() -> None:
    d = FrameDecoder()
    d.receive_bytes(STREAM)
    assert drain(d) == EXPECTED
    assert d.buffered_bytes == 0 and d.offset == len(STREAM)


def test_byte_by_byte() -> None:
    d = FrameDecoder()
    got: list[Frame] = []
    for b in STREAM:
        d.receive_bytes(bytes([b]))
        got.extend(drain(d))
    assert got == EXPECTED


@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_any_split(cuts: list[int]) -> None:
    d = FrameDecoder()
    got: list[Frame] = []
    points = sorted(set([0, *cuts, len(STREAM)]))
    for a, b in itertools.pairwise(points):
        d.receive_bytes(STREAM[a:b])
        got.extend(drain(d))
    assert got == EXPECTED


def test_trailing_partial_frame_waits() -> None:
    d = FrameDecoder()
    d.receive_bytes(FRAMES[0] + FRAMES[1][:3])
    assert drain(d) == EXPECTED[:1]
    assert d.state is DecoderState.LENGTH
    d.receive_bytes(FRAMES[1][3:])
    assert drain(d) == EXPECTED[1:2]


def test_oversize_prefix_fails_before_buffering() -> None:
    d = FrameDecoder(max_frame_bytes=1024)
    d.receive_bytes(struct.pack(">I", 70000))
    with pytest.raises(RemoteWireError) as info:
        d.next_frame()
    assert info.value.close_code is CloseCode.FRAME_TOO_LARGE
    assert "frame of 70000 bytes at offset 0 exceeds max_frame_bytes=1024" in str(info.value)
    assert d.state is DecoderState.ERROR and d.buffered_bytes == 0
    with pytest.raises(RemoteWireError):  # stays failed
        d.receive_bytes(b"x")


#: cbor2 5.x (Debian bookworm) cannot refuse indefinite lengths or duplicate keys while decoding.
_NEEDS_CBOR2_6 = pytest.mark.skipif("allow_indefinite" not in _DECODER_OPTIONS,
                                    reason="this cbor2 has no strict decoding options")


@pytest.mark.parametrize(
    ("raw", "code", "fragment"),
    [
        (b"\x00\x00\x00\x00", CloseCode.MALFORMED_FRAME, "empty frame"),
        (b"\x00\x00\x00\x02\x01\x02", CloseCode.MALFORMED_FRAME, "1 trailing bytes"),
        (b"\x00\x00\x00\x01\xff", CloseCode.MALFORMED_FRAME, "malformed frame"),
        pytest.param(b"\x00\x00\x00\x02\x9f\xff", CloseCode.MALFORMED_FRAME, "indefinite", marks=_NEEDS_CBOR2_6),
        pytest.param(b"\x00\x00\x00\x05\xa2\x01\x01\x01\x02", CloseCode.MALFORMED_FRAME, "Duplicate",
                     marks=_NEEDS_CBOR2_6),
        (body(cbor2.CBORTag(1, 1363896240)), CloseCode.MALFORMED_FRAME, "tag"),
        (body(cbor2.CBORTag(9999, 1)), CloseCode.MALFORMED_FRAME, "tag"),
        (body([1, 1.5]), CloseCode.MALFORMED_FRAME, "float"),
        (body({"a": 1}), CloseCode.UNKNOWN_FRAME_TYPE, "not an array"),
        (body([]), CloseCode.UNKNOWN_FRAME_TYPE, "not an array"),
        (body(["PING"]), CloseCode.UNKNOWN_FRAME_TYPE, "not an array"),
        (body([True]), CloseCode.UNKNOWN_FRAME_TYPE, "not an array"),
        (body([9999]), CloseCode.UNKNOWN_FRAME_TYPE, "unknown frame type 9999"),
        (body([1, {b"k": 1}]), CloseCode.MALFORMED_FRAME, "map key of type bytes"),
        (body([1, [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]), CloseCode.MALFORMED_FRAME, "depth"),
    ],
)
def test_malformed_frames_fail_with_a_close_code(raw: bytes, code: CloseCode, fragment: str) -> None:
    d = FrameDecoder()
    d.receive_bytes(raw)
    with pytest.raises(RemoteWireError) as info:
        d.next_frame()
    assert info.value.close_code is code
    assert fragment.lower() in str(info.value).lower()
    assert "offset 0" in str(info.value)


def test_good_frame_before_bad_one_is_delivered() -> None:
    d = FrameDecoder()
    d.receive_bytes(FRAMES[0] + b"\x00\x00\x00\x01\xff")
    assert d.next_frame() == EXPECTED[0]
    with pytest.raises(RemoteWireError, match="offset 7"):
        d.next_frame()


def test_encoder_refuses_oversize_and_unencodable() -> None:
    with pytest.raises(LocalWireError, match="exceeds max_frame_bytes=1024") as info:
        encode_frame(FrameType.PING, b"x" * 2000, max_frame_bytes=1024)
    assert info.value.close_code is CloseCode.FRAME_TOO_LARGE
    with pytest.raises(LocalWireError, match="cannot encode"):
        encode_frame(FrameType.PING, object())


def test_bad_limit() -> None:
    with pytest.raises(ValueError, match="max_frame_bytes=0"):
        FrameDecoder(0)


# --- fuzz: never an exception other than the codec's own --------------------------------------------

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=20) | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.integers(0, 50) | st.text(max_size=4), kids,
                                                             max_size=4),
    max_leaves=12,
)


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_fuzz_random_bytes(data: bytes, cuts: list[int]) -> None:
    d = FrameDecoder(max_frame_bytes=256)
    points = sorted({0, len(data), *[c for c in cuts if c <= len(data)]})
    try:
        for a, b in itertools.pairwise(points):
            d.receive_bytes(data[a:b])
            drain(d)
    except WireError:
        assert d.state is DecoderState.ERROR


@given(st.lists(values, min_size=1, max_size=5), st.integers(0, 50))
def test_fuzz_truncated_valid_frames(fields: list[object], cut: int) -> None:
    frame = encode_frame(FrameType.PING, *fields)
    d = FrameDecoder()
    d.receive_bytes(frame[: max(0, len(frame) - cut)])
    try:
        got = drain(d)
    except WireError:  # pragma: no cover - a truncated frame only ever waits
        raise AssertionError("a truncated frame must wait for more data") from None
    assert got == ([Frame(FrameType.PING, tuple(fields))] if cut == 0 else [])


@given(values, st.binary(min_size=1, max_size=8))
def test_fuzz_corrupted_bodies(value: object, noise: bytes) -> None:
    frame = bytearray(encode_frame(FrameType.PING, value))
    for i, b in enumerate(noise):
        frame[(4 + i * 7) % len(frame)] ^= b
    d = FrameDecoder()
    d.receive_bytes(bytes(frame))
    with contextlib.suppress(WireError):
        drain(d)


def test_cbor2_without_strict_options_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """cbor2 5.x (Debian bookworm's 5.4.6) takes only ``tag_hook``: detected once, not a crash per frame."""
    real = cbor2.CBORDecoder

    def old_cbor2(fp: object, *, tag_hook: object = None, **kwargs: object) -> object:
        if kwargs:
            raise TypeError(f"{next(iter(kwargs))!r} is an invalid keyword argument for this function")
        return real(fp, tag_hook=tag_hook)  # type: ignore[arg-type]

    monkeypatch.setattr(cbor2, "CBORDecoder", old_cbor2)
    assert set(codec._strict_options()) == {"tag_hook"}


@pytest.mark.skipif(is_compiled(codec), reason="patches a Final constant: the pure-Python run covers it")
def test_frames_with_only_a_tag_hook_still_refuse_what_decodes_to_non_plain_types(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What a 5.x decoder does with a built-in tag (a datetime here) is refused by the type walk."""
    monkeypatch.setattr(codec, "_DECODER_OPTIONS", {"tag_hook": codec._reject_tag})
    d = FrameDecoder()
    d.receive_bytes(encode_frame(FrameType.PING, 7) + body([1, cbor2.CBORTag(1, 1363896240)]))
    assert d.next_frame() == Frame(FrameType.PING, (7,))
    with pytest.raises(RemoteWireError, match="datetime"):
        d.next_frame()
