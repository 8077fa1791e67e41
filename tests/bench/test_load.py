"""The load generator's pure parts: pre-signed messages, frames encoded once into one buffer, and the
reply counter that reads a stream split anywhere."""

from __future__ import annotations

import time

import pytest

from wavemq_edge.bench.load import LoadError, ReplyCounter, encode_publish_frames, presign
from wavemq_edge.wave import Message, create_entity, object_id
from wavemq_edge.wire import FrameDecoder, FrameType, encode_frame

pytestmark = pytest.mark.timeout(60)


def _messages(n: int, stamps: list[float] | None = None) -> list[bytes]:
    now = time.time()
    src, ns = create_entity(now - 60, 3600), create_entity(now - 60, 3600)
    return presign(src, namespace=ns.id, proof_id=b"p" * 36, router_id=b"", uris=["a/b", "a/c"],
                   payload=b"x" * 64, stamps=stamps or [now] * n)


def test_presigned_messages_are_distinct_and_carry_their_stamps() -> None:
    base = time.time()
    stamps = [base + i / 1000 for i in range(5)]
    raws = _messages(5, stamps)
    parsed = [Message.parse(r) for r in raws]
    assert [m.timestamp_ms for m in parsed] == [int(s * 1000) for s in stamps]
    assert [m.uri for m in parsed] == ["a/b", "a/c", "a/b", "a/c", "a/b"]
    same_stamp = _messages(50)
    assert len({object_id(r) for r in same_stamp}) == 50  # seq keeps ids apart within a millisecond


def test_publish_frames_are_one_buffer_sliced_by_offsets() -> None:
    raws = _messages(20)
    buf, offsets = encode_publish_frames(raws, first_req=7)
    assert offsets[0] == 0 and offsets[-1] == len(buf) and len(offsets) == 21
    dec = FrameDecoder()
    for i, raw in enumerate(raws):
        dec.receive_bytes(buf[offsets[i]:offsets[i + 1]])
        frame = dec.next_frame()
        assert frame.type is FrameType.PUBLISH  # type: ignore[union-attr]
        assert frame.fields == (7 + i, raw)  # type: ignore[union-attr]


def test_reply_counter_counts_ok_and_refused_across_any_split() -> None:
    stream = b"".join([encode_frame(FrameType.OK, i, "accepted") for i in range(300)]
                      + [encode_frame(FrameType.REFUSED, 301, 603, "bad signature")]
                      + [encode_frame(FrameType.OK, 302, "duplicate")])
    for step in (1, 3, 7, 64, len(stream)):
        counter = ReplyCounter()
        total = sum(counter.feed(stream[i:i + step]) for i in range(0, len(stream), step))
        assert (counter.ok, counter.refused, total) == (301, 1, 302)
        assert "603" in counter.first_refusal


def test_reply_counter_refuses_a_frame_a_publisher_never_gets() -> None:
    with pytest.raises(LoadError, match="unexpected frame"):
        ReplyCounter().feed(encode_frame(FrameType.DELIVER, "s", 1, b"m"))
