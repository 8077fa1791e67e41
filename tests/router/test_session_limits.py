"""The agent session's deadlines and what it tells whom (router/session.py), on a fake clock:

* a frame that has started must be complete within ``frame_stall_timeout_s`` of its first byte, in
  every state (a partial frame trickled a byte at a time was never timed out after AUTH);
* ``authorised`` turns true only at a request the router accepted (what protects a connection from
  eviction), not at AUTH, PING, PROOF or STATUS;
* STATUS: the whole snapshot for the local operator, a summary without paths or queue ids otherwise.
"""

from __future__ import annotations

from router_helpers import T0, Agent, World, make_core

from wavemq_edge.router import AgentSession
from wavemq_edge.router.session import SUMMARY_KEYS, status_summary
from wavemq_edge.wave import object_id, sign_handshake, sign_message
from wavemq_edge.wire import NEED_DATA, CloseCode, Frame, FrameDecoder, FrameType, encode_frame

STALL_S = 30.0


def stall_agent(world: World, authenticate: bool = True) -> Agent:
    a = Agent(make_core(), world.entity(), authenticate=authenticate)
    assert a.session.frame_stall_timeout_s == STALL_S
    return a


def test_trickled_frame_after_auth_is_timed_out(world: World) -> None:
    a = stall_agent(world)
    assert a.session.next_deadline() is None  # open, nothing pending: no timer at all
    frame = encode_frame(FrameType.PING, 7)
    for i, byte in enumerate(frame[:-1]):  # one byte a second, never the last
        a.send_raw(bytes([byte]), now=100.0 + i)
        assert a.session.next_deadline() == 100.0 + STALL_S  # from the frame's first byte, not the last
    a.session.handle_timer(100.0 + STALL_S - 0.5)
    assert not a.session.closing
    a.session.handle_timer(100.0 + STALL_S)
    err = a.recv()[-1]
    assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.TIMEOUT
    assert "frameStallTimeout=30" in str(err.fields[1]) and a.session.timed_out == "frame_stall"
    assert a.session.closing and a.session.next_deadline() is None


def test_a_completed_frame_clears_the_stall_deadline_and_the_next_one_starts_its_own(world: World) -> None:
    a = stall_agent(world)
    ping = encode_frame(FrameType.PING, 1)
    a.send_raw(ping[:3], now=10.0)
    assert a.session.next_deadline() == 10.0 + STALL_S
    a.send_raw(ping[3:] + ping[:2], now=25.0)  # completes it, and starts another in the same input
    assert a.recv()[-1].type is FrameType.PONG
    assert a.session.next_deadline() == 25.0 + STALL_S
    a.send_raw(ping[2:], now=50.0)
    assert a.session.next_deadline() is None
    a.session.handle_timer(1000.0)
    assert not a.session.closing


def test_steady_stream_split_mid_frame_is_never_stalled(world: World) -> None:
    # Every input ends inside a frame, but each frame completes quickly: the deadline moves on.
    a = stall_agent(world)
    stream = encode_frame(FrameType.PING, 1) * 200
    for i in range(0, len(stream), 7):
        t = i / 7.0
        a.send_raw(stream[i:i + 7], now=t)
        deadline = a.session.next_deadline()
        assert deadline is None or deadline >= t + STALL_S - 1.0
    assert not a.session.closing


def test_trickle_before_auth_hits_the_earlier_deadline(world: World) -> None:
    core = make_core()
    who = world.entity()
    s = AgentSession(core, now=0.0, max_frame_bytes=1 << 18, handshake_timeout_s=5.0, frame_stall_timeout_s=2.0)
    s.bytes_to_send()
    assert s.next_deadline() == 5.0
    s.receive_bytes(encode_frame(FrameType.AUTH, who.entity.raw, b"x" * 64)[:5], 1.0, T0 + 1)
    assert s.next_deadline() == 3.0  # the stalled frame's deadline comes first
    s.handle_timer(3.0)
    assert s.closing and s.timed_out == "frame_stall"
    s2 = AgentSession(core, now=0.0, max_frame_bytes=1 << 18, handshake_timeout_s=5.0, frame_stall_timeout_s=60.0)
    s2.receive_bytes(b"\x00", 1.0, T0 + 1)
    s2.handle_timer(5.0)
    assert s2.closing and s2.timed_out == "handshake"


def test_authorised_only_after_an_accepted_request(world: World) -> None:
    a = stall_agent(world)
    assert not a.session.authorised
    a.request(FrameType.STATUS)
    a.send(FrameType.PING, 1)
    proof = world.proof(a.who, "publish")
    a.request(FrameType.PROOF, proof)
    assert not a.session.authorised  # none of these needs a grant
    stranger = Agent(a.core, world.entity(grants=None))
    msg = sign_message(stranger.who, namespace=world.ns.id, uri="x/y", payload=[("text", b"hi")],
                       proof_id=object_id(proof), now=T0)
    stranger.request(FrameType.PROOF, proof)
    assert stranger.request(FrameType.PUBLISH, msg.raw)[-1].type is FrameType.REFUSED
    assert not stranger.session.authorised  # refused: still evictable
    msg = sign_message(a.who, namespace=world.ns.id, uri="x/y", payload=[("text", b"hi")],
                       proof_id=object_id(proof), now=T0)
    assert a.request(FrameType.PUBLISH, msg.raw)[-1].type is FrameType.OK
    assert a.session.authorised


def test_status_before_auth_is_refused(world: World) -> None:
    a = Agent(make_core(), world.entity(), authenticate=False)
    a.send(FrameType.STATUS, 1)
    err = a.recv()[-1]
    assert err.type is FrameType.ERROR and err.fields[0] == CloseCode.PROTOCOL_VIOLATION
    assert "STATUS before AUTH" in str(err.fields[1])


FULL = {
    "version": "1", "router_id": "R", "subscriptions": 2, "connections": 3,
    "queue_detail": [{"id": "sub/ns/secret-queue", "depth": 1}],
    "journal": {"enabled": True, "dir": "/run/wavemq-edge"},
    "disk": {"/var/lib/wavemq-edge/queue": {"free_bytes": 1}},
    "memory": {"rss_bytes": 1}, "designated_for": ["ns"], "metrics": "127.0.0.1:6060",
    "uplinks": [{"namespace": "ns", "address": "dr.example:4515", "state": "up", "reconnects": 2,
                 "last_error": "x"}],
    "admission": {"refused": {"per_address": 1}},
}


def test_summary_hides_paths_queue_ids_and_addresses() -> None:
    summary = status_summary(FULL)
    assert summary == {"version": "1", "router_id": "R", "subscriptions": 2, "connections": 3,
                       "uplinks": [{"state": "up", "reconnects": 2}], "admission": {"refused": {"per_address": 1}},
                       "memory": {"rss_bytes": 1},
                       "detail": "summary"}
    assert "queue_detail" not in SUMMARY_KEYS and "journal" not in SUMMARY_KEYS


def _frames(session: AgentSession, decoder: FrameDecoder) -> list[Frame]:
    decoder.receive_bytes(session.bytes_to_send())
    out: list[Frame] = []
    while (f := decoder.next_frame()) is not NEED_DATA:
        assert isinstance(f, Frame)
        out.append(f)
    return out


def test_operator_gets_the_full_status_others_the_summary(world: World) -> None:
    core = make_core()
    who = world.entity()
    for operator in (True, False):
        s = AgentSession(core, now=0.0, max_frame_bytes=1 << 18, handshake_timeout_s=5.0,
                         status_source=lambda _now: FULL, operator=operator)
        decoder = FrameDecoder(1 << 20)
        challenge = _frames(s, decoder)[0].fields[2]
        assert isinstance(challenge, bytes)
        s.receive_bytes(encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, challenge)), 0.0, T0)
        s.receive_bytes(encode_frame(FrameType.STATUS, 1), 0.0, T0)
        reply = _frames(s, decoder)[-1]
        assert reply.type is FrameType.STATUS_REPLY
        status = reply.fields[1]
        assert isinstance(status, dict)
        if operator:
            assert status["detail"] == "full" and status["queue_detail"] == FULL["queue_detail"]
        else:
            assert status["detail"] == "summary" and "queue_detail" not in status and "journal" not in status
