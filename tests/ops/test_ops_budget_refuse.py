"""The budget watch under ``onDiskFull = "refuse"`` (the default): below the disk reserve it refuses new
durable subscriptions and says so, but sheds nothing already accepted (the core refuses new messages it
could not keep instead; tests/router/test_router_disk_guard.py)."""

from __future__ import annotations

from wavemq_edge.config.units import MIB
from wavemq_edge.ops.budget import BudgetPolicy, BudgetReading, Pressure, QueueUsage, RefuseDurable, ShedOldest

Q = "/data/queue"
QUEUES = [QueueUsage("sub:a", 50 * MIB, 500), QueueUsage("sub:b", 10 * MIB, 100)]


def reading(now: float, free: int) -> BudgetReading:
    return BudgetReading(now=now, rss_bytes=60 * MIB, rss_anon_bytes=40 * MIB, available_memory_bytes=500 * MIB,
                         disk_free={Q: free})


def test_below_reserve_refuses_durable_and_sheds_nothing() -> None:
    p = BudgetPolicy(memory_budget_bytes=128 * MIB, disk_reserve_bytes=64 * MIB, queue_dir=Q, shed=False)
    a = p.evaluate(reading(0.0, 60 * MIB), QUEUES)
    assert [type(x).__name__ for x in a] == ["Pressure", "RefuseDurable"]
    assert isinstance(a[0], Pressure) and "refusing publishes that need storing" in a[0].detail
    assert isinstance(a[1], RefuseDurable) and a[1].refuse
    # the disk keeps filling: still nothing shed
    assert not [x for x in p.evaluate(reading(5.0, 10 * MIB), QUEUES) if isinstance(x, ShedOldest)]
    assert p.stats.shed_actions == 0
    a = p.evaluate(reading(10.0, 80 * MIB), QUEUES)
    assert any(isinstance(x, RefuseDurable) and not x.refuse for x in a)
