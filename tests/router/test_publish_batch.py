"""A read's publishes, parsed once and their signatures checked in one batch (router/publish_batch.py),
on a fake clock with a fake batch verifier: order, refusals and counters exactly as one at a time."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from router_helpers import T0, Agent, World, make_core
from test_router_core import dack, subscribe, texts

from wavemq_edge.router import RouterCore
from wavemq_edge.router.errors import ErrorCode
from wavemq_edge.router.ok_frames import publish_ok
from wavemq_edge.wave import EntitySecret, Message, object_id, sign_handshake, sign_message
from wavemq_edge.wave.batch import SignatureCheck, verify_sequential
from wavemq_edge.wire import CloseCode, Frame, FrameType, encode_frame


class FakeBatch:
    """Records each batch; answers with the real results unless told to say False at some indexes."""

    def __init__(self, false_at: frozenset[int] = frozenset()) -> None:
        self.calls: list[int] = []
        self.false_at = false_at

    def __call__(self, checks: Sequence[SignatureCheck]) -> list[bool]:
        base = sum(self.calls)
        self.calls.append(len(checks))
        real = verify_sequential(checks)
        return [ok and (base + i) not in self.false_at for i, ok in enumerate(real)]


def signed(world: World, who: EntitySecret, proof: bytes, n: int, *, start: int = 0) -> list[bytes]:
    return [sign_message(who, namespace=world.ns.id, uri="b/x", payload=[("text", f"m{start + i}".encode())],
                         proof_id=object_id(proof), now=T0, seq=start + i + 1).raw for i in range(n)]


def one_read(agent: Agent, raws: Sequence[bytes], first_req: int = 100) -> list[Frame]:
    data = b"".join(encode_frame(FrameType.PUBLISH, first_req + i, raw) for i, raw in enumerate(raws))
    agent.send_raw(data)
    return agent.recv()


def received(sub: Agent) -> list[str]:
    """Every text delivered to ``sub``, acknowledging as they come (the window is 4)."""
    out: list[str] = []
    frames = sub.recv()
    while frames:
        out += texts(frames)
        dack(sub, frames)
        frames = sub.recv()
    return out


def setup(world: World, verifier: FakeBatch | None = None,
          who: EntitySecret | None = None) -> tuple[RouterCore, Agent, Agent, bytes]:
    core = make_core()
    if verifier is not None:
        core.verify_many = verifier
    pub, sub = Agent(core, who or world.entity()), Agent(core, world.entity())
    subscribe(sub, world, "b/*", "s", ephemeral=True)
    sub.recv()
    proof = world.proof(pub.who, "publish")
    pub.request(FrameType.PROOF, proof)
    return core, pub, sub, proof


def bad_signature(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])  # the signature is the last 64 bytes


def test_a_read_of_publishes_is_one_batch_accepted_in_order(world: World) -> None:
    batch = FakeBatch()
    core, pub, sub, proof = setup(world, batch)
    replies = one_read(pub, signed(world, pub.who, proof, 8))
    assert batch.calls == [8]
    assert [(f.type, f.fields[0], f.fields[1]) for f in replies] == [(FrameType.OK, 100 + i, "accepted")
                                                                      for i in range(8)]
    assert received(sub) == [f"m{i}" for i in range(8)]
    assert core.counters.published == 8 and core.counters.refused == {}


@pytest.mark.parametrize("fake", [False, True])
def test_a_bad_signature_mid_batch_is_refused_603_and_the_others_accepted(world: World, fake: bool) -> None:
    # fake: the signature is good but the batch verifier says False (its answer is what counts, and the
    # message is not verified again); otherwise the signature really is bad.
    batch = FakeBatch(frozenset({3}) if fake else frozenset())
    core, pub, sub, proof = setup(world, batch)
    raws = signed(world, pub.who, proof, 7)
    if not fake:
        raws[3] = bad_signature(raws[3])
    replies = one_read(pub, raws)
    assert batch.calls == [7]
    assert [f.type for f in replies] == [FrameType.OK] * 3 + [FrameType.REFUSED] + [FrameType.OK] * 3
    assert replies[3].fields[:2] == (103, int(ErrorCode.BAD_SIGNATURE))
    assert replies[3].fields[2] == "message: signature does not verify under its source's key"
    assert received(sub) == ["m0", "m1", "m2", "m4", "m5", "m6"]
    assert core.counters.refused == {"BAD_SIGNATURE": 1} and core.counters.published == 6


def test_same_replies_and_counters_as_one_frame_at_a_time(world: World) -> None:
    """A mix (bad signature, wrong source, malformed, duplicate, stale) in one read answers exactly as
    the same frames sent one by one (each read then holds one publish)."""
    other, who = world.entity(), world.entity()
    outcomes = []
    for together in (True, False):
        core, pub, _sub, proof = setup(world, who=who)
        raws = signed(world, pub.who, proof, 4)
        raws[1] = bad_signature(raws[1])
        stale = sign_message(pub.who, namespace=world.ns.id, uri="b/x", payload=[], proof_id=object_id(proof),
                             now=T0 - 3600).raw
        mix = [raws[0], raws[1], signed(world, other, proof, 1)[0], b"\x84garbage", raws[0], stale, raws[2]]
        if together:
            replies = one_read(pub, mix)
        else:
            replies = [f for i, raw in enumerate(mix) for f in one_read(pub, [raw], 100 + i)]
        outcomes.append(([(f.type, f.fields) for f in replies], dict(core.counters.refused),
                         core.counters.published, core.counters.duplicates))
    assert outcomes[0] == outcomes[1]
    codes = [f[1][1] for f in outcomes[0][0] if f[0] is FrameType.REFUSED]
    assert codes == [int(ErrorCode.BAD_SIGNATURE), int(ErrorCode.WRONG_SOURCE), int(ErrorCode.BAD_REQUEST),
                     int(ErrorCode.BAD_TIMESTAMP)]


def test_each_message_is_parsed_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _core, pub, _sub, proof = setup(world)
    raws = signed(world, pub.who, proof, 5)
    parsed: list[bytes] = []
    real = Message.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Message], data: bytes, *args: object) -> Message:
        parsed.append(data)
        return real(cls, data, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(Message, "parse", classmethod(counting))
    assert all(f.type is FrameType.OK for f in one_read(pub, raws))
    assert parsed == raws


def test_publish_in_the_read_that_authenticates_is_checked_one_at_a_time(world: World) -> None:
    batch = FakeBatch()
    core = make_core()
    core.verify_many = batch
    who = world.entity()
    a = Agent(core, who, authenticate=False)
    proof = world.proof(who, "publish")
    assert isinstance(a.challenge, bytes)
    data = (encode_frame(FrameType.AUTH, who.entity.raw, sign_handshake(who, a.challenge))
            + encode_frame(FrameType.PROOF, 1, proof)
            + encode_frame(FrameType.PUBLISH, 2, signed(world, who, proof, 1)[0]))
    a.send_raw(data)
    assert [f.type for f in a.recv()] == [FrameType.WELCOME, FrameType.OK, FrameType.OK]
    assert batch.calls == [] and core.counters.published == 1


def test_frames_before_a_framing_error_are_answered_then_the_connection_closes(world: World) -> None:
    core, pub, _sub, proof = setup(world)
    raws = signed(world, pub.who, proof, 3)
    data = b"".join(encode_frame(FrameType.PUBLISH, 100 + i, raw) for i, raw in enumerate(raws))
    pub.send_raw(data + b"\x00\x00\x00\x00")  # an empty frame: a framing error
    replies = pub.recv()
    assert [f.type for f in replies] == [FrameType.OK] * 3 + [FrameType.ERROR]
    assert replies[-1].fields[0] == CloseCode.MALFORMED_FRAME and pub.session.closing
    assert core.counters.published == 3


def test_a_failing_batch_verifier_falls_back_to_one_at_a_time(world: World) -> None:
    def broken(checks: Sequence[SignatureCheck]) -> list[bool]:
        raise RuntimeError("worker thread gone")

    core, pub, _sub, proof = setup(world)
    core.verify_many = broken
    raws = signed(world, pub.who, proof, 3)
    raws[1] = bad_signature(raws[1])
    replies = one_read(pub, raws)
    assert [f.type for f in replies] == [FrameType.OK, FrameType.REFUSED, FrameType.OK]
    assert core.counters.refused == {"BAD_SIGNATURE": 1}


@pytest.mark.parametrize("req", [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64, -1, -25])
def test_publish_ok_is_the_bytes_encode_frame_makes(req: int) -> None:
    for text in ("accepted", "duplicate"):
        assert publish_ok(req, text) == encode_frame(FrameType.OK, req, text)


def test_remembered_matches_follow_every_subscription_change(world: World) -> None:
    core = make_core()
    pub = Agent(core, world.entity())
    proof = world.proof(pub.who, "publish")
    pub.request(FrameType.PROOF, proof)
    raws = iter(signed(world, pub.who, proof, 4))
    assert one_read(pub, [next(raws)])[0].type is FrameType.OK and core.counters.enqueued == 0
    sub = Agent(core, world.entity())
    subscribe(sub, world, "b/*", "s", ephemeral=True)
    sub.recv()
    one_read(pub, [next(raws)], 200)
    assert received(sub) == ["m1"] and core.counters.enqueued == 1
    sub.session.connection_lost(0.0)  # the ephemeral subscription ends with its connection
    one_read(pub, [next(raws)], 300)
    assert core.counters.enqueued == 1 and core.registry.matching(world.ns.id, ("b", "x")) == []


def test_a_message_whose_parse_fails_unexpectedly_is_answered_699_alone(world: World,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _core, pub, sub, proof = setup(world)
    raws = signed(world, pub.who, proof, 3)
    real = Message.parse.__func__  # type: ignore[attr-defined]

    def flaky(cls: type[Message], data: bytes, *args: object) -> Message:
        if data == raws[1]:
            raise RuntimeError("a bug in parse")
        return real(cls, data, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(Message, "parse", classmethod(flaky))
    replies = one_read(pub, raws)
    assert [f.type for f in replies] == [FrameType.OK, FrameType.REFUSED, FrameType.OK]
    assert replies[1].fields[1] == int(ErrorCode.INTERNAL)
    assert received(sub) == ["m0", "m2"]
