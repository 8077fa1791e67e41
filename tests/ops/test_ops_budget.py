"""The budget policy driven by injected readings (no psutil, no clock), the shed planner, the start-up
fit check, and the durable-subscription gate's decision."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wavemq_edge.ops.budget import (
    MIB,
    BudgetPolicy,
    BudgetReading,
    FitInputs,
    FlushEarly,
    HoldPublishers,
    Pressure,
    QueueUsage,
    RefuseDurable,
    ShedOldest,
    ShrinkCaches,
    check_fit,
    plan_shed,
)

Q = "/data/queue"
W = "/data/wave"
GB = 1024 * MIB


def reading(now: float, anon_mb: int = 40, free: dict[str, int] | None = None, unflushed: int = 0) -> BudgetReading:
    return BudgetReading(now=now, rss_bytes=(anon_mb + 20) * MIB, rss_anon_bytes=anon_mb * MIB,
                         available_memory_bytes=500 * MIB,
                         disk_free=free if free is not None else {Q: 10 * GB, W: 10 * GB},
                         unflushed_bytes=unflushed)


def policy() -> BudgetPolicy:
    return BudgetPolicy(memory_budget_bytes=128 * MIB, disk_reserve_bytes=64 * MIB, queue_dir=Q,
                        protected=frozenset({"router:subscriptions"}))


QUEUES = [QueueUsage("sub:a", 50 * MIB, 500), QueueUsage("sub:b", 10 * MIB, 100),
          QueueUsage("router:subscriptions", 90 * MIB, 3), QueueUsage("sub:c", 30 * MIB, 300)]


def kinds(actions: list[object]) -> list[str]:
    return [type(a).__name__ for a in actions]


# ------------------------------------------------------------------ memory


def test_within_budget_does_nothing() -> None:
    p = policy()
    assert p.evaluate(reading(0.0), QUEUES) == []
    assert p.stats.samples == 1


def test_over_memory_budget_holds_publishers_flushes_early_and_shrinks_once_per_burst() -> None:
    p = policy()
    a = p.evaluate(reading(0.0, anon_mb=150, unflushed=3 * MIB), QUEUES)
    assert kinds(a) == ["Pressure", "HoldPublishers", "FlushEarly", "ShrinkCaches"]
    assert isinstance(a[0], Pressure) and a[0].active and "memoryBudget 128 MB" in a[0].detail
    assert isinstance(a[1], HoldPublishers) and a[1].hold and p.stats.publishers_held
    # still over 5 s later: flush again if there is something to flush, no new Pressure, no new shrink
    a = p.evaluate(reading(5.0, anon_mb=150, unflushed=1 * MIB), QUEUES)
    assert kinds(a) == ["FlushEarly"]
    # nothing left unflushed: holding frees nothing more, so publishers go (slowed, never stopped)
    a = p.evaluate(reading(10.0, anon_mb=150, unflushed=0), QUEUES)
    assert a == [HoldPublishers(False, "nothing left unflushed: waiting frees no more")]
    # a minute later caches are shrunk again
    assert kinds(p.evaluate(reading(61.0, anon_mb=150), QUEUES)) == ["ShrinkCaches"]
    # back at 120 MB: inside the budget but not below 90% of it -> still in the burst (hysteresis)
    assert p.evaluate(reading(70.0, anon_mb=120), QUEUES) == []
    assert p.stats.memory_pressure
    a = p.evaluate(reading(75.0, anon_mb=100), QUEUES)
    assert len(a) == 1 and isinstance(a[0], Pressure) and not a[0].active and a[0].actions == 5
    assert not p.stats.memory_pressure and p.stats.early_flushes == 2 and p.stats.cache_shrinks == 2
    assert p.stats.publisher_holds == 1


def test_publishers_held_again_while_over_with_new_payloads_and_let_go_when_memory_recovers() -> None:
    p = policy()
    assert kinds(p.evaluate(reading(0.0, anon_mb=140, unflushed=0), QUEUES)) == [
        "Pressure", "HoldPublishers", "ShrinkCaches"]  # the first sample over budget always holds
    assert kinds(p.evaluate(reading(0.1, anon_mb=140, unflushed=0), QUEUES)) == ["HoldPublishers"]
    assert not p.stats.publishers_held
    assert kinds(p.evaluate(reading(0.2, anon_mb=140, unflushed=MIB), QUEUES)) == ["HoldPublishers", "FlushEarly"]
    assert p.stats.publishers_held and p.stats.publisher_holds == 2
    a = p.evaluate(reading(0.3, anon_mb=110, unflushed=MIB), QUEUES)
    assert kinds(a) == ["HoldPublishers", "Pressure"] and a[0] == HoldPublishers(
        False, "RssAnon 110 MB back under 90% of the budget")
    assert not p.stats.publishers_held and not p.stats.memory_pressure


# ------------------------------------------------------------------ disk


def test_disk_below_reserve_sheds_largest_first_and_refuses_durable() -> None:
    p = policy()
    free = 60 * MIB  # 4 MB short of the 64 MB reserve; margin max(1 MB, 6.4 MB)
    a = p.evaluate(reading(0.0, free={Q: free, W: 10 * GB}), QUEUES)
    assert isinstance(a[0], Pressure) and a[0].active and "diskReserve 64 MB" in a[0].detail
    sheds = [x for x in a if isinstance(x, ShedOldest)]
    assert [s.queue_id for s in sheds] == ["sub:a"]  # the largest queue pays; records are protected
    assert sum(s.max_bytes for s in sheds) >= 4 * MIB + int(6.4 * MIB)
    assert any(isinstance(x, RefuseDurable) and x.refuse for x in a)
    assert p.stats.refusing_durable


def test_disk_pressure_sheds_again_only_when_free_space_keeps_falling() -> None:
    p = policy()
    p.evaluate(reading(0.0, free={Q: 60 * MIB}), QUEUES)
    # no further consumption: shedding again would only empty queues (LMDB reuses pages, the file does
    # not shrink, so free space does not come back from shedding)
    assert p.evaluate(reading(5.0, free={Q: 60 * MIB}), QUEUES) == []
    # drift smaller than the margin (6.4 MB) sheds nothing; a real fall sheds what was lost
    assert p.evaluate(reading(7.0, free={Q: 55 * MIB}), QUEUES) == []
    a = p.evaluate(reading(10.0, free={Q: 50 * MIB}), QUEUES)
    assert [type(x) for x in a] == [ShedOldest] and sum(x.max_bytes for x in a if isinstance(x, ShedOldest)) == 10 * MIB
    # recovery needs reserve + margin
    assert p.evaluate(reading(15.0, free={Q: 66 * MIB}), QUEUES) == []
    a = p.evaluate(reading(20.0, free={Q: 80 * MIB}), QUEUES)
    assert kinds(a) == ["Pressure", "RefuseDurable"]
    assert isinstance(a[1], RefuseDurable) and not a[1].refuse
    assert not p.stats.refusing_durable


def test_other_data_dir_low_is_reported_but_nothing_is_shed() -> None:
    p = policy()
    a = p.evaluate(reading(0.0, free={Q: 10 * GB, W: 1 * MIB}), QUEUES)
    assert len(a) == 1 and isinstance(a[0], Pressure) and "no queues live here" in a[0].detail
    assert not p.stats.refusing_durable


def test_memory_and_disk_pressure_together() -> None:
    p = policy()
    a = p.evaluate(reading(0.0, anon_mb=200, free={Q: 1 * MIB}, unflushed=1), QUEUES)
    assert {FlushEarly, ShrinkCaches, ShedOldest, RefuseDurable, Pressure} <= {type(x) for x in a}


# ------------------------------------------------------------------ shed planner


def test_plan_shed_levels_the_largest_queues() -> None:
    qs = [QueueUsage("a", 100, 1), QueueUsage("b", 80, 1), QueueUsage("c", 10, 1)]
    plan = {s.queue_id: s.max_bytes for s in plan_shed(qs, 30)}
    assert plan == {"a": 25, "b": 5}  # both cut to 75
    assert plan_shed(qs, 0) == []
    assert {s.queue_id: s.max_bytes for s in plan_shed(qs, 10_000)} == {"a": 100, "b": 80, "c": 10}
    assert plan_shed(qs, 5, protected=frozenset({"a", "b", "c"})) == []


@given(st.lists(st.integers(0, 10_000), max_size=20), st.integers(1, 200_000))
def test_plan_shed_frees_enough_never_more_than_held_and_keeps_order(sizes: list[int], need: int) -> None:
    qs = [QueueUsage(f"q{i}", b, 1) for i, b in enumerate(sizes)]
    plan = plan_shed(qs, need)
    by_id = {q.queue_id: q.bytes for q in qs}
    freed = sum(s.max_bytes for s in plan)
    assert freed >= min(need, sum(sizes))
    assert freed < need + len(qs) + 1 or freed == sum(sizes)  # at most rounding beyond the need
    for s in plan:
        assert 0 < s.max_bytes <= by_id[s.queue_id]
    # water-filling: no queue left larger than one that was cut
    left = {q: by_id[q] - next((s.max_bytes for s in plan if s.queue_id == q), 0) for q in by_id}
    cut = [q for q in by_id if any(s.queue_id == q for s in plan)]
    if cut and freed < sum(sizes):
        level = max(left[q] for q in cut)
        assert all(left[q] <= level for q in by_id)


# ------------------------------------------------------------------ start-up fit


def fit(**kw: object) -> FitInputs:
    base: dict[str, object] = dict(
        memory_budget=128 * MIB, disk_reserve=64 * MIB, queue_dir=Q, subscription_max_bytes=100 * MIB,
        subscription_max_length=10_000, trunk_max_bytes=1000 * MIB, trunk_max_length=100_000, trunk_queues=1,
        max_map_bytes=8 * GB, flush_bytes=4 * MIB, journal_max_bytes=16 * MIB,
        disk_free={Q: 20 * GB, W: 20 * GB}, available_memory=700 * MIB)
    base.update(kw)
    return FitInputs(**base)  # type: ignore[arg-type]


def test_fit_defaults_on_a_roomy_card() -> None:
    r = check_fit(fit())
    assert r.fits, r.problems
    assert any("room for" in n for n in r.notes)


def test_fit_says_what_does_not_fit_and_what_to_change() -> None:
    r = check_fit(fit(disk_free={Q: 800 * MIB, W: 800 * MIB}))
    assert not r.fits
    msg = " ".join(r.problems)
    assert "trunkingQueueMaxSize" in msg and "at most 6" in msg  # (800-64)/1.2 = 613 MB
    r = check_fit(fit(memory_budget=32 * MIB))
    assert any("raise memoryBudget" in p for p in r.problems)
    r = check_fit(fit(available_memory=100 * MIB))
    assert any("exceeds the 100 MB of memory available" in p for p in r.problems)
    r = check_fit(fit(cgroup_memory_max=128 * MIB))
    assert any("MemoryMax" in p and "256 MB" in p for p in r.problems)
    r = check_fit(fit(disk_free={Q: 10 * MIB, W: 10 * GB}))
    assert any("not more than BudgetConfig.diskReserve" in p for p in r.problems)
    r = check_fit(fit(trunk_queues=0, disk_free={Q: 100 * MIB, W: 10 * GB}))
    assert any("subscriptionQueueMaxSize to at most 30" in p for p in r.problems)
