"""The routing core's settings, in the units the core works in (``server/derive.py`` makes them from
the configuration file, once)."""

from __future__ import annotations

from dataclasses import dataclass

from ..storage import QueueLimits
from .disk_guard import OnDiskFull

__all__ = ["RouterOptions"]


@dataclass(frozen=True, slots=True)
class RouterOptions:
    #: bounds of each subscription queue (``subscriptionQueueMax*``, ``queueExpiry``).
    subscription_limits: QueueLimits
    max_subscriptions_per_connection: int = 256
    #: unacknowledged deliveries per consumer per subscription.
    inflight_window: int = 64
    #: tolerated clock skew for timestamps and validity windows, seconds.
    skew_s: float = 300.0
    #: oldest accepted timestamp of an agent's publish/subscribe/query/unsubscribe, seconds. Agents sign
    #: right before sending, so five minutes covers retries after a reconnect.
    request_max_age_s: float = 300.0
    #: ids the replay guard remembers (``wave/replay.py``; ~350 bytes of RAM each): the daemon sizes it
    #: from the memory budget (``ops/budget.py`` ``replay_window_entries``).
    replay_window_max: int = 200_000
    #: most persisted messages one query returns before it hands back a continuation.
    query_max_results: int = 1000
    #: ``QueueConfig.onDiskFull`` and ``BudgetConfig.diskReserve`` (bytes): see ``disk_guard.py``.
    on_disk_full: OnDiskFull = OnDiskFull.REFUSE
    disk_reserve_bytes: int = 0
