"""The router breaking the protocol, one named case each: the client protocol ends the connection with
one ``ConnectionTerminated(protocol_error=True)`` naming the close code and the field or frame, and
ignores whatever follows. Each case is fed whole, byte by byte and followed by a valid frame."""

from __future__ import annotations

import struct

import pytest
from client_helpers import FEEDS, drain, hello, open_alone
from router_helpers import World

from wavemq_edge.client import ClientProtocol, ClientState
from wavemq_edge.client.events import ConnectionTerminated
from wavemq_edge.wire import CloseCode, FrameType, encode_frame

FOLLOWER = encode_frame(FrameType.PING, 9)  # would be answered if it were read
STATUS_REQ = 1  # the open client below has sent one STATUS request

CASES: dict[str, tuple[bytes, CloseCode, str]] = {
    "deliver_seq_not_int": (encode_frame(FrameType.DELIVER, "s", "7", b"m"), CloseCode.BAD_FIELDS,
                            "DELIVER seq must be an integer, got str"),
    "deliver_message_not_bytes": (encode_frame(FrameType.DELIVER, "s", 7, "m"), CloseCode.BAD_FIELDS,
                                  "DELIVER message must be a byte string, got str"),
    "deliver_too_few_fields": (encode_frame(FrameType.DELIVER, "s", 7), CloseCode.BAD_FIELDS,
                               "DELIVER frame has 2 fields, expected 3"),
    "sub_end_code_not_int": (encode_frame(FrameType.SUB_END, "s", None, "x"), CloseCode.BAD_FIELDS,
                             "SUB_END code must be an integer, got null"),
    "status_reply_not_a_map": (encode_frame(FrameType.STATUS_REPLY, STATUS_REQ, [1]), CloseCode.BAD_FIELDS,
                               "STATUS_REPLY status must be a map, got list"),
    "agent_frame_from_router": (encode_frame(FrameType.PUBLISH, 1, b"m"), CloseCode.PROTOCOL_VIOLATION,
                                "PUBLISH frame is not allowed from the router in state open"),
    "hello_after_handshake": (hello(), CloseCode.PROTOCOL_VIOLATION,
                              "HELLO frame is not allowed from the router in state open"),
    "trunk_frame": (encode_frame(FrameType.T_ACK, 1, []), CloseCode.PROTOCOL_VIOLATION,
                    "T_ACK frame is not allowed from the router in state open"),
    "reply_nobody_asked_for": (encode_frame(FrameType.OK, 99, "accepted"), CloseCode.PROTOCOL_VIOLATION,
                               "OK answers request 99, which is not outstanding"),
    "reply_of_the_wrong_kind": (encode_frame(FrameType.SUBSCRIBED, STATUS_REQ, "s", 1, False, 0),
                                CloseCode.PROTOCOL_VIOLATION, "SUBSCRIBED does not answer a STATUS request"),
    "result_for_a_status": (encode_frame(FrameType.RESULT, STATUS_REQ, b"m"), CloseCode.PROTOCOL_VIOLATION,
                            "RESULT does not answer a STATUS request"),
    "not_cbor": (struct.pack(">I", 2) + b"\xff\xff", CloseCode.MALFORMED_FRAME, "malformed frame at offset"),
    "unknown_frame_type": (struct.pack(">I", 3) + b"\x81\x18\xfa", CloseCode.UNKNOWN_FRAME_TYPE,
                           "unknown frame type 250"),
    "frame_over_the_bound": (struct.pack(">I", (1 << 24) + 1), CloseCode.FRAME_TOO_LARGE,
                             "exceeds max_frame_bytes=16777216"),
}


@pytest.mark.parametrize("feed", sorted(FEEDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_violation_ends_the_connection(world: World, case: str, feed: str) -> None:
    proto = open_alone(world.entity())
    assert proto.send_request(FrameType.STATUS)[0] == STATUS_REQ
    proto.send_subscribe("s", b"sub", False)
    drain(proto)
    proto.bytes_to_send()
    data, code, words = CASES[case]
    for piece in FEEDS[feed](data + FOLLOWER):
        proto.receive_bytes(piece, 1.0)
    (event,) = drain(proto)
    assert isinstance(event, ConnectionTerminated) and event.protocol_error
    assert event.code == code and words in event.reason, event.reason
    assert proto.state is ClientState.CLOSED and proto.close_code == code
    assert proto.bytes_to_send() == b""  # the follower was not read: no PONG, and no ERROR frame back
    proto.receive_bytes(FOLLOWER, 2.0)
    assert drain(proto) == []


HANDSHAKE_CASES: dict[str, tuple[bytes, CloseCode, str]] = {
    "welcome_before_hello": (encode_frame(FrameType.WELCOME, b"x"), CloseCode.PROTOCOL_VIOLATION,
                             "WELCOME frame is not allowed from the router in state await-hello"),
    "hello_short": (encode_frame(FrameType.HELLO, 1, b"R", b"c"), CloseCode.BAD_FIELDS,
                    "HELLO frame has 3 fields, expected at least 5"),
    "hello_router_id_not_bytes": (encode_frame(FrameType.HELLO, 1, 5, b"c" * 32, 1, 4), CloseCode.BAD_FIELDS,
                                  "HELLO router id must be a byte string, got int"),
    "deliver_before_welcome": (hello() + encode_frame(FrameType.DELIVER, "s", 1, b"m"),
                               CloseCode.PROTOCOL_VIOLATION,
                               "DELIVER frame is not allowed from the router in state await-welcome"),
}


@pytest.mark.parametrize("feed", sorted(FEEDS))
@pytest.mark.parametrize("case", sorted(HANDSHAKE_CASES))
def test_handshake_violation(world: World, case: str, feed: str) -> None:
    proto = ClientProtocol(world.entity(), now=0.0)
    data, code, words = HANDSHAKE_CASES[case]
    for piece in FEEDS[feed](data + FOLLOWER):
        proto.receive_bytes(piece, 0.0)
    (event,) = drain(proto)
    assert isinstance(event, ConnectionTerminated) and event.protocol_error
    assert event.code == code and words in event.reason, event.reason


def test_hello_may_grow_fields(world: World) -> None:
    proto = ClientProtocol(world.entity(), now=0.0)
    proto.receive_bytes(encode_frame(FrameType.HELLO, 2, b"R" * 36, b"c" * 32, 1 << 18, 4, "future field"), 0.0)
    assert proto.state is ClientState.AWAIT_WELCOME and drain(proto) == []
