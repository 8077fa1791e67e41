"""The disk check of a publish (``onDiskFull``), with fake free-space probes: a message the stores could
not keep within the reserve is refused ``STORAGE_FULL`` before it is answered OK, nothing of it is
queued, and the same message is accepted once there is room (it was never recorded as seen)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from router_helpers import T0, Agent, World, make_core
from test_router_core import subscribe

from wavemq_edge.router import DiskGuard, ErrorCode, OnDiskFull
from wavemq_edge.router.disk_guard import COMMIT_SLACK_BYTES, SAMPLE_S
from wavemq_edge.storage import DiskSpace, stored_bytes
from wavemq_edge.wave import object_id, sign_message
from wavemq_edge.wire import FrameType

MB = 1024 * 1024
_TICK = [0.0]


def clock() -> float:
    """A fake monotonic clock that moves past the guard's sampling interval at every reading, so each
    check reads the (fake) filesystem again."""
    _TICK[0] += 1.0
    return _TICK[0]


@dataclass
class FakeRoom:
    """A store as the guard sees it (unflushed bytes, last flush failure, flush count, directory), and the
    filesystem it lives on (free bytes, device) as a fake free-space probe reports it."""

    free: int | None = 100 * MB
    device: int = 1
    unflushed_bytes: int = 0
    flush_failure: str | None = None
    flushes: int = 0
    failed_flushes: int = 0
    statvfs_calls: int = 0

    def __post_init__(self) -> None:
        self.options = SimpleNamespace(path=f"/fake/{id(self)}")
        _ROOMS[self.options.path] = self


_ROOMS: dict[str, FakeRoom] = {}


def fake_probe(path: str) -> DiskSpace | None:
    room = _ROOMS[path]
    room.statvfs_calls += 1
    return None if room.free is None else DiskSpace(room.device, room.free)


def make_guard(reserve: int, policy: OnDiskFull, queues: FakeRoom, persist: FakeRoom | None = None) -> DiskGuard:
    return DiskGuard(reserve, policy, queues, persist, probe=fake_probe)


def test_room_is_free_space_minus_reserve_pending_and_the_message_per_copy() -> None:
    queues = FakeRoom(free=10 * MB)
    guard = make_guard(4 * MB, OnDiskFull.REFUSE, queues)
    item = stored_bytes(2048)
    assert 4096 < item < 4096 + 128  # a 2 KiB message takes an overflow page, not 2 KiB
    room = 10 * MB - 4 * MB - COMMIT_SLACK_BYTES
    assert guard.check(2048, room // item, persist=False, now=clock()) is None
    reason = guard.check(2048, room // item + 1, persist=False, now=clock())
    assert reason is not None and "diskReserve 4 MB" in reason
    # status says refusing while the refused message would still not fit (though an empty one would)
    assert guard.state().state == "refusing" and guard.state().reason == reason
    queues.free += item
    assert guard.state().state == "ok"
    queues.free -= item
    # what is accepted but not flushed yet is charged too (at the stored/payload ratio)
    queues.unflushed_bytes = 2 * MB
    assert guard.check(2048, room // item - 1, persist=False, now=clock()) is not None
    assert guard.refused == 2


def test_no_copy_no_persist_needs_no_room_and_drop_oldest_never_refuses() -> None:
    full = FakeRoom(free=0)
    assert make_guard(MB, OnDiskFull.REFUSE, full).check(100, 0, persist=True, now=clock()) is None  # no persist store
    assert make_guard(MB, OnDiskFull.REFUSE, full, FakeRoom(free=0)).check(100, 0, persist=False, now=clock()) is None
    assert make_guard(MB, OnDiskFull.DROP_OLDEST, full).check(100, 5, persist=False, now=clock()) is None
    state = make_guard(MB, OnDiskFull.DROP_OLDEST, full).state()
    assert (state.policy, state.state, state.free_bytes) == ("drop-oldest", "low", 0)


def test_stores_on_one_filesystem_share_its_free_space() -> None:
    queues, persist = FakeRoom(free=20 * MB, unflushed_bytes=5 * MB), FakeRoom(free=20 * MB, unflushed_bytes=5 * MB)
    guard = make_guard(MB, OnDiskFull.REFUSE, queues, persist)
    # 2 x 5 MB pending at ~2x stored = 20 MB: nothing more fits on one 20 MB filesystem
    assert guard.check(2048, 1, persist=True, now=clock()) is not None
    persist.device = 2  # the persist store on another filesystem: each has room for its own share
    assert guard.check(2048, 1, persist=True, now=clock()) is None


def test_a_failed_flush_refuses_what_needs_that_store_until_one_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    queues, persist = FakeRoom(), FakeRoom()
    guard = make_guard(MB, OnDiskFull.REFUSE, queues, persist)
    persist.flush_failure = "LMDB store is full"
    with caplog.at_level(logging.INFO, logger="wavemq_edge.router"):
        assert guard.check(100, 1, persist=False, now=clock()) is None  # the queue store is fine
        reason = guard.check(100, 1, persist=True, now=clock())
        assert reason is not None and "persist store" in reason and "kept" in reason
        assert guard.check(100, 0, persist=True, now=clock()) is not None
        assert guard.state().state == "refusing"
        persist.flush_failure = None
        assert guard.check(100, 1, persist=True, now=clock()) is None
    assert guard.state().state == "ok"
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["event=disk_full_refusing", "event=disk_full_accepting"]
    assert "refused=2" in caplog.records[-1].getMessage()


def _signed(agent: Agent, world: World, uri: str) -> bytes:
    proof = world.proof(agent.who, "publish")
    agent.request(FrameType.PROOF, proof)
    return sign_message(agent.who, namespace=world.ns.id, uri=uri, payload=[("text", b"x" * 2000)],
                        proof_id=object_id(proof), now=T0).raw


def test_core_refuses_before_ok_and_accepts_the_same_message_once_there_is_room(world: World) -> None:
    core = make_core()
    room = FakeRoom(free=100 * MB)
    core.disk = make_guard(MB, OnDiskFull.REFUSE, room)
    pub, sub = world.entity(), world.entity()
    a, b = Agent(core, pub), Agent(core, sub)
    subscribe(b, world, "d/*", "keeper")
    queue = next(s.queue_id for s in core.subscriptions())
    first = a.request(FrameType.PUBLISH, _signed(a, world, "d/1"))[-1]
    assert first.type is FrameType.OK and first.fields[1] == "accepted"
    room.free = MB  # the disk fills up (someone else's files): seen at the next sample
    raw = _signed(a, world, "d/2")
    refused = a.request(FrameType.PUBLISH, raw, now=1.0)[-1]
    assert refused.type is FrameType.REFUSED and refused.fields[1] == ErrorCode.STORAGE_FULL == 633
    assert "disk is full" in str(refused.fields[2])
    assert core.queues.stats(queue).depth <= 1  # nothing of the refused message was queued
    assert core.counters.refused.get("STORAGE_FULL") == 1
    st = core.status(0.0).disk
    assert st is not None and st["state"] == "refusing" and st["refused"] == 1
    # an unrelated URI nobody subscribed to needs no room
    assert a.request(FrameType.PUBLISH, _signed(a, world, "elsewhere/1"), now=1.0)[-1].type is FrameType.OK
    room.free = 100 * MB
    again = a.request(FrameType.PUBLISH, raw, now=2.0)[-1]
    assert again.type is FrameType.OK and again.fields[1] == "accepted"  # not "duplicate": it was never kept
    assert core.status(0.0).disk == {**st, "state": "ok", "free_bytes": 100 * MB, "reason": None}


def test_free_space_is_read_again_after_a_flush_or_the_sample_interval() -> None:
    room = FakeRoom(free=100 * MB)
    guard = make_guard(MB, OnDiskFull.REFUSE, room)
    for i in range(100):
        assert guard.check(200, 1, persist=False, now=10.0 + i * 0.001) is None
    assert room.statvfs_calls == 1  # a hundred publishes in 0.1 s: one statvfs
    room.free = MB  # someone fills the disk ...
    room.flushes += 1  # ... and our flush completes: read again at once
    assert guard.check(200, 1, persist=False, now=10.2) is not None
    room.free = 100 * MB
    assert guard.check(200, 1, persist=False, now=10.2 + SAMPLE_S) is None  # the interval passed
    assert room.statvfs_calls == 3
