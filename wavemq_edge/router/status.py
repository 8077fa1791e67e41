"""What the routing core counts, and the core's part of a status snapshot.

``RouterCore.status(now)`` returns a ``CoreStatus``: a frozen copy of the counters and the figures of
the core and its store, taken once. The process-wide snapshot (``ops/status.py``) adds memory, budget,
uplinks and flush timings to it and renders all of it three ways (the STATUS reply, systemd's
``STATUS=`` line, the Prometheus families).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import __version__
from ..storage import StoreStats
from .errors import ErrorCode

__all__ = ["CoreStatus", "RouterCounters", "core_reply"]


@dataclass(slots=True)
class RouterCounters:
    published: int = 0
    duplicates: int = 0
    #: refusals by error name (``ErrorCode.name``), counted where they are made (``admission.py``).
    refused: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    delivered: int = 0
    redelivered: int = 0
    acked: int = 0
    persisted: int = 0
    subscriptions_ended: int = 0
    queries: int = 0
    #: new durable subscriptions refused while the disk is short (``refuse_new_durable``).
    refused_durable: int = 0

    def refuse(self, code: ErrorCode) -> None:
        self.refused[code.name] = self.refused.get(code.name, 0) + 1


@dataclass(frozen=True, slots=True)
class CoreStatus:
    router_id: str
    uptime_s: float
    subscriptions: int
    designated_for: tuple[str, ...]
    counters: RouterCounters
    store: StoreStats
    verifier_hits: int
    verifier_misses: int
    #: why new durable subscriptions are refused now, or None
    refusing_durable: str | None
    #: the disk check of publishes (``disk_guard.DiskState.reply``): policy, state, free, reserve
    disk: dict[str, object] | None = None


def core_reply(st: CoreStatus) -> dict[str, object]:
    """The core's part of a STATUS reply (the fields ``wavemq-edge status`` has always shown)."""
    c, store = st.counters, st.store
    return {
        "version": __version__,
        "router_id": st.router_id,
        "uptime_s": int(st.uptime_s),
        "subscriptions": st.subscriptions,
        "queues": store.queues,
        "queued_items": store.items,
        "queued_bytes": store.bytes,
        "unflushed_items": store.unflushed_items,
        "flushes": store.flushes,
        "drops": dict(store.drops),
        "published": c.published,
        "duplicates": c.duplicates,
        "delivered": c.delivered,
        "redelivered": c.redelivered,
        "acked": c.acked,
        "refused": dict(c.refused),
        "verifier_hits": st.verifier_hits,
        "verifier_misses": st.verifier_misses,
        **({"disk_full": st.disk} if st.disk is not None else {}),
    }
