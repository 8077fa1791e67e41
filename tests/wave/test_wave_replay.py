"""ReplayGuard: the bounded dedup window (fake clock: ``now`` is passed in, nothing reads the time)."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavemq_edge.wave import Reason, ReplayGuard, VerificationError
from wavemq_edge.wave.replay import REPLAY_WINDOW_MAX

pytestmark = pytest.mark.timeout(120)

T0 = 1_700_000_000.0
T0_MS = int(T0 * 1000)


def replayed(guard: ReplayGuard, src: bytes, ident: bytes, ts_ms: int, now: float) -> bool:
    try:
        guard.accept(src, ident, ts_ms, now)
    except VerificationError as exc:
        assert exc.reason is Reason.REPLAYED
        return True
    return False


def test_replay_within_the_window_refused_then_forgotten_after_it() -> None:
    guard = ReplayGuard(max_age_s=300)
    guard.accept(b"src", b"id-1", T0_MS, T0)
    assert replayed(guard, b"src", b"id-1", T0_MS, T0 + 299)
    assert len(guard) == 1
    # Past max_age_s plus at most one bucket (300 s / 64) the id is forgotten: the timestamp check
    # refuses it by then.
    guard.accept(b"src", b"other", T0_MS + 299_000, T0 + 299)
    assert len(guard) == 2
    guard.accept(b"src", b"more", T0_MS + 306_000, T0 + 306)
    assert len(guard) == 2
    assert not replayed(guard, b"src", b"id-1", T0_MS, T0 + 306)


def test_id_is_per_source_and_the_pair_is_not_a_concatenation() -> None:
    guard = ReplayGuard(max_age_s=300)
    guard.accept(b"a", b"same", T0_MS, T0)
    assert not replayed(guard, b"b", b"same", T0_MS, T0)
    assert replayed(guard, b"a", b"same", T0_MS, T0)
    # Two keys of the same guard see each other; a second guard (another random key) does not.
    assert not replayed(ReplayGuard(max_age_s=300), b"a", b"same", T0_MS, T0)


def test_bound_drops_the_oldest_timestamp_not_the_oldest_arrival() -> None:
    guard = ReplayGuard(max_age_s=600, max_entries=2)
    guard.accept(b"s", b"late", T0_MS + 5, T0)
    guard.accept(b"s", b"early", T0_MS + 1, T0)
    guard.accept(b"s", b"mid", T0_MS + 3, T0)
    assert len(guard) == 2 and guard.dropped == 1
    assert replayed(guard, b"s", b"early", T0_MS + 1, T0)  # below the floor now
    assert replayed(guard, b"s", b"new-but-old", T0_MS + 1, T0)  # ... as is anything that old
    assert replayed(guard, b"s", b"late", T0_MS + 5, T0)
    assert replayed(guard, b"s", b"mid", T0_MS + 3, T0)
    guard.accept(b"s", b"fresh", T0_MS + 4, T0)  # at the floor or above: accepted (mid is dropped)
    assert replayed(guard, b"s", b"mid", T0_MS + 3, T0)


def test_out_of_order_arrival_after_an_eviction_keeps_the_oldest_first() -> None:
    guard = ReplayGuard(max_age_s=600, max_entries=2)  # one 9.4-s bucket holds everything here
    for ident, ms in ((b"a", 5), (b"b", 1), (b"c", 3)):
        guard.accept(b"s", ident, T0_MS + ms, T0)
    assert guard.dropped == 1  # b (1 ms): the floor is 2 ms now
    guard.accept(b"s", b"d", T0_MS + 2, T0)  # arrives after c and a, older than both: dropped next
    assert guard.dropped == 2
    guard.accept(b"s", b"e", T0_MS + 3, T0)  # the floor is 3 ms: accepted, and c (3 ms) goes
    assert replayed(guard, b"s", b"d", T0_MS + 2, T0)
    assert replayed(guard, b"s", b"c", T0_MS + 3, T0) and replayed(guard, b"s", b"a", T0_MS + 5, T0)
    guard.accept(b"s", b"f", T0_MS + 4, T0)  # c and e had 3 ms: the floor is 4 ms


def test_many_distinct_ids_all_accepted_remembered_and_expired() -> None:
    guard = ReplayGuard(max_age_s=600, max_entries=6000)
    ids = [os.urandom(16) for _ in range(6000)]
    for k, ident in enumerate(ids):
        guard.accept(b"src", ident, T0_MS + k, T0 + k / 1000)
    assert len(guard) == 6000 and guard.dropped == 0
    assert all(replayed(guard, b"src", ident, T0_MS + k, T0 + 6) for k, ident in enumerate(ids))
    # The table grew from 4096 slots on the way; expiry still finds and removes every id.
    guard.accept(b"src", b"last", T0_MS + 700_000, T0 + 700)
    assert len(guard) == 1
    assert not replayed(guard, b"src", ids[0], T0_MS, T0 + 700)


class _Model:
    """The semantics spelled out with a dict: remembered while the id's bucket (``bucket`` ms) ends after
    ``now - max_age``; at the bound the oldest timestamp goes and the floor rises above it."""

    def __init__(self, max_age_ms: int, max_entries: int, bucket: int) -> None:
        self.max_age_ms, self.max_entries, self.bucket = max_age_ms, max_entries, bucket
        self.seen: dict[tuple[bytes, bytes], int] = {}
        self.floor = 0

    def accept(self, key: tuple[bytes, bytes], ts: int, now_ms: int) -> bool:
        horizon = now_ms - self.max_age_ms
        b = self.bucket
        self.seen = {k: t for k, t in self.seen.items() if (t // b + 1) * b > horizon}
        if ts < self.floor or key in self.seen:
            return False
        if (ts // b + 1) * b > horizon:
            self.seen[key] = ts
        while len(self.seen) > self.max_entries:
            oldest = min(self.seen, key=self.seen.__getitem__)
            self.floor = max(self.floor, self.seen.pop(oldest) + 1)
        return True


ops = st.lists(st.tuples(st.sampled_from([b"a", b"b"]), st.integers(0, 40), st.integers(-3000, 3000),
                         st.integers(0, 1500)), max_size=120)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(1, 12), st.sampled_from([(5, 1000, 100), (192, 3000, 11400), (600, 9375, 1)]))
def test_guard_agrees_with_the_model(steps: list[tuple[bytes, int, int, int]], max_entries: int,
                                     window: tuple[int, int, int]) -> None:
    """Small tables (8-16 slots) so probe runs wrap and collide, and deletions shift entries back; a
    5-s window has 1-s buckets, a 192-s one 3-s buckets (1/64 of it), and in a 600-s one time hardly
    moves, so evictions and out-of-order arrivals meet in one 9.4-s bucket."""
    max_age_s, bucket, pace = window
    guard, model = ReplayGuard(max_age_s=max_age_s, max_entries=max_entries), _Model(max_age_s * 1000, max_entries,
                                                                                      bucket)
    now_ms = T0_MS
    for src, n, skew_ms, advance_ms in steps:
        now_ms += advance_ms * pace // 100
        ident, ts = n.to_bytes(2, "big"), now_ms + skew_ms
        assert (not replayed(guard, src, ident, ts, now_ms / 1000)) == model.accept((src, ident), ts, now_ms)
        assert len(guard) == len(model.seen)


def test_bytes_per_entry_at_the_bound() -> None:
    """At most 32 bytes per remembered id when the guard is full (tracemalloc counts the table too)."""
    cap = 24_576  # a 32768-slot table at its 3/4 load
    ids = [os.urandom(16) for _ in range(cap + 5000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        guard = ReplayGuard(max_age_s=600, max_entries=cap)
        for k, ident in enumerate(ids):  # 100 ids per second: the bound is reached after ~4 minutes
            guard.accept(b"s" * 36, ident, T0_MS + k * 10, T0 + k / 100)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(guard) == cap and guard.dropped == 5000
    assert used / cap <= 32, f"{used / cap:.1f} bytes per entry"


def test_default_bound_fits_the_default_window_at_600_messages_a_second() -> None:
    assert REPLAY_WINDOW_MAX >= 600 * 600
    with pytest.raises(ValueError, match="max_entries"):
        ReplayGuard(max_age_s=1, max_entries=0)
