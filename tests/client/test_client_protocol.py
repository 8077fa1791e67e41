"""client/protocol.py alone: paired with the router's real AgentSession in memory, and fed crafted
router frames, each whole, byte by byte and with trailing bytes. Fixed clock; no sockets."""

from __future__ import annotations

import pytest
from client_helpers import FEEDS, ROUTER_ID, WINDOW, Link, drain, hello, open_alone
from router_helpers import T0, World

from wavemq_edge.client import ClientProtocol, ClientState, LocalProtocolError
from wavemq_edge.client.events import (
    Accepted,
    ConnectionTerminated,
    HandshakeCompleted,
    MessageDelivered,
    QueryAnswered,
    Refused,
    StatusReported,
    Subscribed,
    SubscriptionClosed,
)
from wavemq_edge.wave import object_id, sign_message, sign_subscribe, sign_unsubscribe
from wavemq_edge.wire import CloseCode, ErrorCode, FrameType, encode_frame

FEED_NAMES = sorted(FEEDS)


def opened(world: World, feed: str) -> Link:
    link = Link(world.entity(), feed)
    assert link.pump() == [HandshakeCompleted(ROUTER_ID, link.client.entity.id, WINDOW)]
    assert link.client.state is ClientState.OPEN and link.client.next_deadline() is None
    return link


def send_proof(link: Link, world: World, perm: str) -> bytes:
    proof = world.proof(link.client.entity, perm)
    req, _ = link.client.send_request(FrameType.PROOF, proof)
    assert link.pump() == [Accepted(req, object_id(proof))]
    return object_id(proof)


def publish(link: Link, ns: bytes, proof_id: bytes, uri: str, text: str) -> list[object]:
    msg = sign_message(link.client.entity, namespace=ns, uri=uri, payload=[("t", text.encode())],
                       proof_id=proof_id, now=T0)
    req, _ = link.client.send_request(FrameType.PUBLISH, msg.raw)
    return [req, *link.pump()]


@pytest.mark.parametrize("feed", FEED_NAMES)
def test_handshake_with_the_router_session(world: World, feed: str) -> None:
    link = opened(world, feed)
    assert link.session.entity is not None and link.session.entity.id == link.client.entity.id
    assert link.client.router_id == ROUTER_ID and link.client.inflight_window == WINDOW


@pytest.mark.parametrize("feed", FEED_NAMES)
def test_publish_subscribe_deliver_and_credit(world: World, feed: str) -> None:
    link = opened(world, feed)
    ns = world.ns.id
    pub_proof = send_proof(link, world, "publish")
    sub_proof = send_proof(link, world, "subscribe")
    sub = sign_subscribe(link.client.entity, namespace=ns, uri="a/*", sub_id="s1", router_id=ROUTER_ID,
                         proof_id=sub_proof, now=T0)
    req, _ = link.client.send_subscribe("s1", sub.raw, True)
    (reply,) = link.pump()
    assert isinstance(reply, Subscribed) and (reply.req, reply.sub_id, reply.resumed) == (req, "s1", False)
    for i in range(WINDOW + 2):
        msg = sign_message(link.client.entity, namespace=ns, uri=f"a/{i}", payload=[("t", b"x")],
                           proof_id=pub_proof, now=T0, seq=i)
        preq, _ = link.client.send_request(FrameType.PUBLISH, msg.raw)
        link.pump()
        assert Accepted(preq, "accepted") in link.events
    delivered = [e for e in link.events if isinstance(e, MessageDelivered)]
    assert len(delivered) == WINDOW and link.client.credit("s1") == 0  # the router's window is used up
    for d in delivered[:2]:
        link.client.ack("s1", d.seq)
    assert link.client.credit("s1") == 2
    link.client.send_acks()
    more = [e for e in link.pump() if isinstance(e, MessageDelivered)]
    assert len(more) == 2 and link.client.credit("s1") == 0
    unsub = sign_unsubscribe(link.client.entity, sub_id="s1", now=T0)
    ureq, _ = link.client.send_request(FrameType.UNSUBSCRIBE, unsub.raw)
    events = link.pump()
    assert Accepted(ureq, 1) in events
    assert next(e for e in events if isinstance(e, SubscriptionClosed)).sub_id == "s1"


@pytest.mark.parametrize("feed", FEED_NAMES)
def test_refusals_status_and_query(world: World, feed: str) -> None:
    link = opened(world, feed)
    req, *events = publish(link, world.ns.id, b"\x00" * 36, "a/b", "x")
    (refused,) = events
    assert isinstance(refused, Refused) and (refused.req, refused.code) == (req, int(ErrorCode.NO_PROOF))
    sreq, _ = link.client.send_request(FrameType.STATUS)
    (status,) = link.pump()
    assert isinstance(status, StatusReported) and status.req == sreq and status.status["refused"] == {"NO_PROOF": 1}
    qreq, _ = link.client.send_request(FrameType.QUERY, b"\x00", None, 0)
    (answer,) = link.pump()
    assert isinstance(answer, Refused) and answer.req == qreq  # malformed query object
    assert link.client.state is ClientState.OPEN


def test_router_error_frame_ends_the_connection_without_blame(world: World) -> None:
    link = opened(world, "whole")
    link.client.receive_bytes(encode_frame(FrameType.ERROR, int(CloseCode.GOING_AWAY), "shutting down"), 1.0)
    assert drain(link.client) == [ConnectionTerminated(
        int(CloseCode.GOING_AWAY), "router closed the connection: (503) shutting down", False)]


def test_authentication_refused(world: World) -> None:
    proto = ClientProtocol(world.entity(), now=0.0)
    proto.receive_bytes(hello() + encode_frame(FrameType.ERROR, 404, "authentication failed: revoked"), 0.0)
    (event,) = drain(proto)
    assert event == ConnectionTerminated(404, "router refused authentication: authentication failed: revoked", False)


def test_handshake_deadline_on_the_fixed_clock(world: World) -> None:
    proto = ClientProtocol(world.entity(), now=100.0, handshake_timeout_s=10.0)
    assert proto.next_deadline() == 110.0
    proto.handle_timer(109.9)
    assert drain(proto) == []
    proto.receive_bytes(hello(), 105.0)
    proto.handle_timer(110.0)
    (event,) = drain(proto)
    assert isinstance(event, ConnectionTerminated) and event.code == CloseCode.TIMEOUT and not event.protocol_error
    assert proto.closed and proto.next_deadline() is None


def test_end_of_stream(world: World) -> None:
    proto = open_alone(world.entity())
    drain(proto)
    proto.connection_lost(1.0)
    assert drain(proto) == [ConnectionTerminated(0, "router closed the connection", False)]
    proto.connection_lost(2.0)
    assert drain(proto) == []


def test_requests_before_the_handshake_are_local_errors(world: World) -> None:
    proto = ClientProtocol(world.entity(), now=0.0)
    with pytest.raises(LocalProtocolError, match="cannot send STATUS in state await-hello"):
        proto.send_request(FrameType.STATUS)
    opened_proto = open_alone(world.entity())
    with pytest.raises(LocalProtocolError, match="DACK is not a request"):
        opened_proto.send_request(FrameType.DACK, "s", [1])
    with pytest.raises(LocalProtocolError, match="send_subscribe"):
        opened_proto.send_request(FrameType.SUBSCRIBE, b"", True)


@pytest.mark.parametrize("feed", FEED_NAMES)
def test_ping_is_answered(world: World, feed: str) -> None:
    proto = open_alone(world.entity(), feed)
    drain(proto)
    for piece in FEEDS[feed](encode_frame(FrameType.PING, 7) + encode_frame(FrameType.PONG, 1)):
        proto.receive_bytes(piece, 0.0)
    assert proto.bytes_to_send() == encode_frame(FrameType.PONG, 7)
    assert drain(proto) == [] and proto.state is ClientState.OPEN


@pytest.mark.parametrize("feed", FEED_NAMES)
def test_request_numbers_continue_and_resend_keeps_its_number(world: World, feed: str) -> None:
    proto = open_alone(world.entity(), feed)
    req, frame = proto.send_request(FrameType.STATUS)
    nxt = ClientProtocol(proto.entity, now=0.0, first_request=proto.last_request)
    for piece in FEEDS[feed](hello() + encode_frame(FrameType.WELCOME, proto.entity.id)):
        nxt.receive_bytes(piece, 0.0)
    nxt.bytes_to_send()
    nxt.resend_request(req, FrameType.STATUS, frame)
    assert nxt.bytes_to_send() == frame
    assert nxt.send_request(FrameType.STATUS)[0] == req + 1
    for piece in FEEDS[feed](encode_frame(FrameType.STATUS_REPLY, req, {"a": 1})):
        nxt.receive_bytes(piece, 0.0)
    assert drain(nxt)[-1] == StatusReported(req, {"a": 1})


def test_query_results_come_with_the_end(world: World) -> None:
    proto = open_alone(world.entity())
    req, _ = proto.send_request(FrameType.QUERY, b"q", None, 0)
    proto.receive_bytes(encode_frame(FrameType.RESULT, req, b"m1") + encode_frame(FrameType.RESULT, req, b"m2")
                        + encode_frame(FrameType.QUERY_END, req, 2, "a/b", "local"), 0.0)
    assert drain(proto)[-1] == QueryAnswered(req, (b"m1", b"m2"), 2, "a/b", "local")


def test_unacked_deliveries_and_acks_carry_over(world: World) -> None:
    proto = open_alone(world.entity())
    proto.send_subscribe("s", b"sub", False)
    proto.receive_bytes(encode_frame(FrameType.DELIVER, "s", 5, b"m")
                        + encode_frame(FrameType.DELIVER, "gone", 6, b"m"), 0.0)
    assert drain(proto)[-1] == MessageDelivered("s", 5, b"m")  # "gone" is not ours: dropped
    proto.connection_lost(0.0)
    proto.ack("s", 5)
    proto.send_acks()
    assert proto.bytes_to_send().endswith(encode_frame(FrameType.SUBSCRIBE, 1, b"sub", False))
    assert proto.take_unsent_acks() == {"s": [5]} and proto.take_unsent_acks() == {}
