"""The MQTT bytes of ``bench --compare``: what the load sends and the counter that reads the replies."""

from __future__ import annotations

import pytest

from wavemq_edge.bench.mqtt import (
    CONNACK,
    SUBACK,
    MqttCounter,
    encode_connect,
    encode_publish_qos1,
    encode_remaining_length,
    encode_subscribe,
)

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(("n", "encoded"), [
    (0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"), (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"),
])
def test_remaining_length_matches_the_spec_table(n: int, encoded: bytes) -> None:
    assert encode_remaining_length(n) == encoded


def test_remaining_length_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode_remaining_length(268435456)


def test_packets_the_load_sends() -> None:
    assert encode_connect("c") == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    assert encode_subscribe(1, "b/#") == b"\x82\x08\x00\x01\x00\x03b/#\x01"
    assert encode_publish_qos1("t", 258, b"xy") == b"\x32\x07\x00\x01t\x01\x02xy"


def test_counter_reads_a_stream_split_anywhere() -> None:
    publishes = [encode_publish_qos1(f"bench/p0/m{i}", i + 1, b"z" * 200) for i in range(50)]
    stream = (b"\x20\x02\x00\x00" + b"\x90\x03\x00\x01\x01" + b"".join(b"\x40\x02\x00" + bytes((i,)) for i in range(40))
              + b"".join(publishes))
    for step in (1, 2, 5, 133, len(stream)):
        c = MqttCounter()
        for i in range(0, len(stream), step):
            c.feed(stream[i:i + step])
        assert c.pubacks == 40
        assert c.published_ids == list(range(1, 51))
        assert c.other == [CONNACK, SUBACK]
