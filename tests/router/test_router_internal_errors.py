"""Refusal codes are total, and an unexpected exception costs one request, not the connection.

Every WAVE ``Reason`` has its own code (a query sent as PUBLISH is a bad request, not an internal
error). A handler that raises (a bug, or a store whose pages are damaged underneath: LMDB raises on the
read) answers that request ``REFUSED 699 INTERNAL``, logs the traceback once per site, counts it, and
the connection keeps working."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from router_helpers import T0, Agent, World, make_core

from wavemq_edge.router import ErrorCode, code_for_reason
from wavemq_edge.router.internal_errors import InternalErrorLog
from wavemq_edge.storage import PersistOptions, PersistStore
from wavemq_edge.wave import Reason, object_id, sign_handshake, sign_message, sign_query
from wavemq_edge.wire import CloseCode, Frame, FrameType


def test_every_reason_maps_to_its_own_code() -> None:
    unmapped = [r for r in Reason if code_for_reason(r) is ErrorCode.INTERNAL]
    assert unmapped == []
    assert code_for_reason(Reason.WRONG_KIND) is ErrorCode.BAD_REQUEST


def _query_raw(world: World, agent: Agent) -> bytes:
    proof = world.proof(agent.who, "query")
    agent.request(FrameType.PROOF, proof)
    return sign_query(agent.who, namespace=world.ns.id, uri="p/*", proof_id=object_id(proof), now=T0).raw


@pytest.mark.parametrize("kind", [FrameType.PUBLISH, FrameType.SUBSCRIBE, FrameType.UNSUBSCRIBE],
                         ids=lambda k: str(k.name))
def test_object_of_the_wrong_kind_is_a_bad_request(world: World, kind: FrameType,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    core = make_core()
    a = Agent(core, world.entity())
    raw = _query_raw(world, a)
    fields: tuple[object, ...] = (raw, False) if kind is FrameType.SUBSCRIBE else (raw,)
    with caplog.at_level(logging.WARNING):
        frame = a.request(kind, *fields)[-1]
    assert frame.type is FrameType.REFUSED and frame.fields[1] == ErrorCode.BAD_REQUEST, frame
    assert "wrong_kind" in str(frame.fields[2]) or "expected a" in str(frame.fields[2])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _damaged_persist(tmp_path: Path) -> PersistStore:
    """A real persist store whose file is overwritten after the open: every read raises an LMDB error."""
    store = PersistStore.open(PersistOptions(path=str(tmp_path / "persist"), journal_dir=""), 0.0)
    store.put("ns", "p/a", b"x" * 100)
    store.flush(0.0)
    data = tmp_path / "persist" / "data.mdb"
    size = data.stat().st_size
    with open(data, "r+b") as f:  # everything but the two meta pages
        f.seek(2 * 4096)
        f.write(b"\xff" * (size - 2 * 4096))
        f.flush()
        os.fsync(f.fileno())
    return store


def _refused(frames: list[Frame]) -> Frame:
    assert frames and frames[-1].type is FrameType.REFUSED, frames
    return frames[-1]


def test_a_failing_store_refuses_the_request_with_699_and_keeps_the_connection(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    persist = _damaged_persist(tmp_path)
    try:
        core = make_core(persist=persist)  # type: ignore[arg-type]
        a = Agent(core, world.entity())
        raw = _query_raw(world, a)
        with caplog.at_level(logging.ERROR, logger="wavemq_edge.router.session"):
            first = _refused(a.request(FrameType.QUERY, raw, None, 100))
            # a new query object (fresh nonce) fails at the same place: counted, not logged again
            second = _refused(a.request(FrameType.QUERY, _query_raw(world, a), None, 100))
        assert first.fields[1] == ErrorCode.INTERNAL and second.fields[1] == ErrorCode.INTERNAL
        assert "QUERY" in str(first.fields[2]) and "Error" in str(first.fields[2])
        logged = [r for r in caplog.records if "request_internal_error" in r.getMessage()]
        assert len(logged) == 1 and logged[0].exc_info is not None, caplog.text
        assert "lmdb" in caplog.text
        assert core.counters.refused.get("INTERNAL") == 2
        # the connection is open and still serves requests
        assert not a.session.closing
        proof = world.proof(a.who, "publish")
        a.request(FrameType.PROOF, proof)
        msg = sign_message(a.who, namespace=world.ns.id, uri="q/1", payload=[("text", b"hi")],
                           proof_id=object_id(proof), now=T0)
        ok = a.request(FrameType.PUBLISH, msg.raw)[-1]
        assert ok.type is FrameType.OK, ok
        status = a.request(FrameType.STATUS)[-1]
        assert status.type is FrameType.STATUS_REPLY
    finally:
        persist.abandon()


def test_a_bug_in_a_handler_refuses_only_that_request(world: World, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    core = make_core()
    a = Agent(core, world.entity())

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(core, "unsubscribe", broken)
    with caplog.at_level(logging.ERROR):
        frame = _refused(a.request(FrameType.UNSUBSCRIBE, b"anything"))
        a.send(FrameType.DACK, "nope", [1])  # no request number: nothing to answer, still open
    assert frame.fields[1] == ErrorCode.INTERNAL and "RuntimeError" in str(frame.fields[2])
    assert not a.session.closing
    assert a.request(FrameType.STATUS)[-1].type is FrameType.STATUS_REPLY


def test_internal_error_log_is_rate_limited_per_site(caplog: pytest.LogCaptureFixture) -> None:
    errors = InternalErrorLog(logging.getLogger("test.internal"), window_s=60.0)

    def fail(n: int) -> Exception:
        try:
            if n:
                raise ValueError("site one")
            raise KeyError("site two")
        except Exception as exc:  # the exception is the test's input
            return exc

    with caplog.at_level(logging.ERROR, logger="test.internal"):
        assert errors.report(fail(1), "QUERY", "p", 0.0)  # first at this site: traceback
        assert not errors.report(fail(1), "QUERY", "p", 1.0)
        assert errors.report(fail(0), "QUERY", "p", 2.0)  # another site
        assert not errors.report(fail(1), "QUERY", "p", 30.0)
        assert errors.report(fail(1), "QUERY", "p", 61.0)  # a summary line, no traceback
    lines = [r for r in caplog.records if r.name == "test.internal"]
    assert [r.exc_info is not None for r in lines] == [True, True, False]
    assert "repeated=3" in lines[-1].getMessage()
    assert errors.total == 5


def test_a_bug_during_the_handshake_closes_with_internal_error(world: World, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    core = make_core()
    who = world.entity()
    a = Agent(core, who, authenticate=False)

    def broken(*_args: object) -> bool:
        raise RuntimeError("revocation lookup exploded")

    monkeypatch.setattr(core.verifier, "is_revoked", broken)
    assert isinstance(a.challenge, bytes)
    with caplog.at_level(logging.ERROR):
        a.send(FrameType.AUTH, who.entity.raw, sign_handshake(who, a.challenge))
    frame = a.recv()[-1]
    assert frame.type is FrameType.ERROR and frame.fields[0] == CloseCode.INTERNAL_ERROR
    assert a.session.closing and "request_internal_error" in caplog.text
