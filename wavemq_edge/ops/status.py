"""One status snapshot, built once per request, rendered three ways.

``build_snapshot`` copies every figure the router reports (the core's counters and store figures, the
uplinks, flush timings, memory and disk, the budget watch, systemd) into a frozen ``StatusSnapshot``.
The three renderers read only the snapshot:

* ``reply``: the STATUS reply (``wavemq-edge status``; keys unchanged since they were first shown);
* ``systemd_line``: the ``STATUS=`` line ``systemctl status`` shows;
* ``metric_families``: the Prometheus families, most of them from the table ``_SCALARS`` of
  (name, kind, help, getter); the labelled families (drops by reason, refusals by code, per queue, per
  directory, per uplink) from one small function each.

A new counter is one field where it is counted and one line in the renderers that show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from .. import __version__
from ..router import CoreStatus, core_reply
from ..router.trunk import UplinkStatus
from ..storage import QueueStats
from ..storage.store_health import SetAside
from .budget import BudgetReading, BudgetStats
from .metrics import MAX_QUEUE_SERIES, Metric, top_queues
from .state import FlushTimes, ServerState, TrunkSummary

__all__ = ["OpsFigures", "StatusSnapshot", "build_snapshot", "metric_families", "reply", "systemd_line"]

P: Final = "wavemq_edge_"
#: Per-queue rows in a STATUS reply: the status frame must stay far below maxFrameBytes.
MAX_STATUS_QUEUES: Final = MAX_QUEUE_SERIES


@dataclass(frozen=True, slots=True)
class OpsFigures:
    """What ops itself knows: the last sample, the budget watch, systemd and the metrics listener."""

    started_wall: float
    reading: BudgetReading | None
    budget: BudgetStats
    memory_budget_bytes: int
    disk_reserve_bytes: int
    shed_items: int
    notify: bool
    watchdog_interval_ms: int | None
    watchdog_pings: int
    watchdog_withheld: int
    metrics_address: str


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    core: CoreStatus
    agents: int
    #: the largest queues first, at most ``MAX_QUEUE_SERIES``
    queues: tuple[QueueStats, ...]
    trunk: TrunkSummary | None
    flush: FlushTimes
    ops: OpsFigures
    #: agent connections refused, evicted and timed out, by reason (``net/slots.py``)
    admission: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: stores LMDB reported damaged at start-up, renamed aside and replaced by fresh ones
    set_aside: tuple[SetAside, ...] = ()


def build_snapshot(state: ServerState, ops: OpsFigures, now: float) -> StatusSnapshot:
    stats = sorted(state.queue_stats(), key=lambda s: (-s.bytes, -s.depth, s.queue_id))
    return StatusSnapshot(core=state.core_status(now), agents=state.agent_connections(),
                          queues=tuple(stats[:MAX_QUEUE_SERIES]), trunk=state.trunk(),
                          flush=replace(state.flush_times), ops=ops, admission=state.agent_admission(),
                          set_aside=tuple(getattr(state, "stores_set_aside", ())))


# ---------------------------------------------------------------------------------- STATUS reply


def _uplink_reply(u: UplinkStatus) -> dict[str, object]:
    st = u.stats
    return {"namespace": u.namespace, "address": u.address, "state": st.state, "since": int(st.since),
            "backlog": u.backlog, "rtt_ms": round(st.rtt_ms), "reconnects": st.reconnects, "sent": st.sent,
            "acked": st.acked, "refused": st.refused, "delivered_down": st.delivered_down,
            "bytes_sent": st.bytes_sent, "bytes_received": st.bytes_received, "live": st.live,
            "last_error": st.last_error}


def _ops_reply(snap: StatusSnapshot) -> dict[str, object]:
    o, r, b = snap.ops, snap.ops.reading, snap.ops.budget
    out: dict[str, object] = {"started_at": int(o.started_wall)}
    if r is not None:
        out["memory"] = {"rss_bytes": r.rss_bytes, "rss_anon_bytes": r.rss_anon_bytes,
                         "budget_bytes": o.memory_budget_bytes, "available_bytes": r.available_memory_bytes,
                         "over_budget": b.memory_pressure}
        out["disk"] = {d: {"free_bytes": free, "reserve_bytes": o.disk_reserve_bytes,
                           "low": b.disk_pressure.get(d, False)} for d, free in r.disk_free.items()}
    out["budget"] = {"samples": b.samples, "early_flushes": b.early_flushes, "cache_shrinks": b.cache_shrinks,
                     "shed_actions": b.shed_actions, "shed_items": o.shed_items,
                     "refusing_durable": b.refusing_durable, "refused_durable": snap.core.counters.refused_durable}
    out["systemd"] = {"notify": o.notify, "watchdog_interval_ms": o.watchdog_interval_ms,
                      "watchdog_pings": o.watchdog_pings, "watchdog_withheld": o.watchdog_withheld}
    if o.metrics_address:
        out["metrics"] = o.metrics_address
    return out


def reply(snap: StatusSnapshot) -> dict[str, object]:
    """The STATUS reply. Frames carry no floats (wire/codec.py): times in integer microseconds."""
    store = snap.core.store
    out = core_reply(snap.core)
    out["connections"] = snap.agents
    out["admission"] = {kind: dict(counts) for kind, counts in snap.admission.items()}
    out.update(_ops_reply(snap))
    out["flush_write_us"] = {"total": int(snap.flush.total_s * 1e6), "last": int(snap.flush.last_s * 1e6),
                             "max": int(snap.flush.max_s * 1e6)}
    out["queue_detail"] = [{"id": s.queue_id, "kind": s.kind.value, "depth": s.depth, "bytes": s.bytes,
                            "drops": {k: v for k, v in s.drops.items() if v}} for s in snap.queues]
    out["failed_flushes"] = store.failed_flushes
    out["journal"] = {"enabled": store.journal_enabled, "ok": store.journal_ok, "on_tmpfs": store.journal_on_tmpfs,
                      "dir": store.journal_dir}
    if snap.set_aside:
        out["stores_set_aside"] = [{"store": a.store, "path": a.path, "moved_to": a.moved_to, "reason": a.reason,
                                    "at": int(a.wall)} for a in snap.set_aside]
    if snap.trunk is not None:
        out["uplinks"] = [_uplink_reply(u) for u in snap.trunk.uplinks]
        out["sites_connected"] = snap.trunk.sites_connected
        out["designated_for"] = list(snap.trunk.designated_for)
    return out


# ---------------------------------------------------------------------------------- systemd STATUS=


def systemd_line(snap: StatusSnapshot) -> str:
    store = snap.core.store
    parts = [f"{snap.agents} agents", f"{snap.core.subscriptions} subscriptions",
             f"{store.items} queued ({store.bytes // 1024} KiB)"]
    for u in snap.trunk.uplinks if snap.trunk is not None else ():
        parts.append(f"uplink {u.namespace[:8]} {u.stats.state} backlog {u.backlog}")
    for a in snap.set_aside:
        parts.append(f"DAMAGED {a.store.upper()} STORE SET ASIDE: {a.moved_to}")
    if snap.ops.budget.memory_pressure:
        parts.append("OVER MEMORY BUDGET")
    if snap.ops.budget.refusing_durable:
        parts.append("DISK LOW: refusing durable subscriptions")
    if _disk_full(snap, "state") == "refusing":
        parts.append("DISK FULL: refusing publishes (STORAGE_FULL)")
    return ", ".join(parts)


def _disk_full(snap: StatusSnapshot, key: str) -> object:
    """A figure of the core's disk check (``router/disk_guard.py``)."""
    return (snap.core.disk or {}).get(key)


# ---------------------------------------------------------------------------------- Prometheus

_Getter = Callable[[StatusSnapshot], float]

#: (name without prefix, kind, help, getter) of every unlabelled family.
_SCALARS: Final[tuple[tuple[str, Literal["counter", "gauge"], str, _Getter], ...]] = (
    ("uptime_seconds", "gauge", "Seconds since the router started.", lambda s: s.core.uptime_s),
    ("agent_connections", "gauge", "Open agent connections.", lambda s: s.agents),
    ("subscriptions", "gauge", "Live subscriptions.", lambda s: s.core.subscriptions),
    ("queues", "gauge", "Queues in the store.", lambda s: s.core.store.queues),
    ("queued_items", "gauge", "Items queued in all queues.", lambda s: s.core.store.items),
    ("queued_bytes", "gauge", "Payload bytes queued in all queues.", lambda s: s.core.store.bytes),
    ("unflushed_items", "gauge", "Items waiting for the next flush.", lambda s: s.core.store.unflushed_items),
    ("published_total", "counter", "Messages accepted from publishers.", lambda s: s.core.counters.published),
    ("duplicates_total", "counter", "Duplicate messages suppressed.", lambda s: s.core.counters.duplicates),
    ("delivered_total", "counter", "Messages delivered to consumers.", lambda s: s.core.counters.delivered),
    ("redelivered_total", "counter", "Messages delivered again.", lambda s: s.core.counters.redelivered),
    ("acked_total", "counter", "Deliveries acknowledged.", lambda s: s.core.counters.acked),
    ("flushes_total", "counter", "Flushes (one synced LMDB transaction each).", lambda s: s.core.store.flushes),
    ("flushes_failed_total", "counter", "Flushes that failed.", lambda s: s.core.store.failed_flushes),
    ("flush_write_seconds_total", "counter", "Time in flush writes (transaction + fdatasync).",
     lambda s: s.flush.total_s),
    ("flush_write_seconds_last", "gauge", "Duration of the last flush write.", lambda s: s.flush.last_s),
    ("verifier_cache_hits_total", "counter", "Proof verification cache hits.", lambda s: s.core.verifier_hits),
    ("verifier_cache_misses_total", "counter", "Proof verification cache misses.",
     lambda s: s.core.verifier_misses),
    ("memory_budget_bytes", "gauge", "BudgetConfig.memoryBudget.", lambda s: s.ops.memory_budget_bytes),
    ("disk_reserve_bytes", "gauge", "BudgetConfig.diskReserve.", lambda s: s.ops.disk_reserve_bytes),
    ("budget_memory_over", "gauge", "1 while RssAnon is over the budget.",
     lambda s: 1 if s.ops.budget.memory_pressure else 0),
    ("budget_refusing_durable", "gauge", "1 while new durable subscriptions are refused.",
     lambda s: 1 if s.ops.budget.refusing_durable else 0),
    ("budget_early_flushes_total", "counter", "Flushes started early for memory.",
     lambda s: s.ops.budget.early_flushes),
    ("budget_shed_items_total", "counter", "Items shed for disk space.", lambda s: s.ops.shed_items),
    ("disk_full_refusing", "gauge", "1 while publishes that need storing are refused (onDiskFull = refuse).",
     lambda s: 1 if _disk_full(s, "state") == "refusing" else 0),
    ("disk_full_refused_total", "counter", "Publishes refused with STORAGE_FULL.",
     lambda s: refused if isinstance(refused := _disk_full(s, "refused"), int) else 0),
    ("watchdog_pings_total", "counter", "WATCHDOG=1 sent to systemd.", lambda s: s.ops.watchdog_pings),
    ("watchdog_withheld_total", "counter", "Watchdog pings withheld because unhealthy.",
     lambda s: s.ops.watchdog_withheld),
    ("stores_set_aside_total", "counter", "Stores LMDB reported damaged at start-up, set aside for fresh ones.",
     lambda s: len(s.set_aside)),
)


def _labelled(snap: StatusSnapshot) -> list[Metric]:
    drops = Metric(P + "dropped_items_total", "counter", "Items dropped without delivery, by reason.")
    for reason, n in sorted(snap.core.store.drops.items()):
        drops.add(n, {"reason": reason})
    refused = Metric(P + "refused_total", "counter", "Requests refused, by error code.")
    for code, n in sorted(snap.core.counters.refused.items()):
        refused.add(n, {"code": code})
    depth = Metric(P + "queue_depth", "gauge", f"Items per queue (the {MAX_QUEUE_SERIES} largest).")
    qbytes = Metric(P + "queue_bytes", "gauge", f"Payload bytes per queue (the {MAX_QUEUE_SERIES} largest).")
    for qid, kind, n_items, n_bytes in top_queues([(q.queue_id, q.kind.value, q.depth, q.bytes) for q in snap.queues]):
        depth.add(n_items, {"queue": qid, "kind": kind})
        qbytes.add(n_bytes, {"queue": qid, "kind": kind})
    return [drops, refused, depth, qbytes, *_admission(snap)]


def _admission(snap: StatusSnapshot) -> list[Metric]:
    out = []
    for kind, text in (("refused", "New agent connections refused, by reason."),
                       ("evicted", "Never-authorised agent connections evicted for a newcomer, by the pool short."),
                       ("timed_out", "Agent connections closed by the handshake or stalled-frame deadline.")):
        m = Metric(P + f"agent_connections_{kind}_total", "counter", text)
        for reason, n in sorted(snap.admission.get(kind, {}).items()):
            m.add(n, {"reason": reason})
        out.append(m)
    return out


def _memory_and_disk(snap: StatusSnapshot) -> list[Metric]:
    r = snap.ops.reading
    if r is None:
        return []
    free = Metric(P + "disk_free_bytes", "gauge", "Free bytes on each data directory's filesystem.")
    low = Metric(P + "budget_disk_low", "gauge", "1 while a data directory is below diskReserve.")
    for d, f in sorted(r.disk_free.items()):
        free.add(f, {"dir": d})
        low.add(1 if snap.ops.budget.disk_pressure.get(d) else 0, {"dir": d})
    return [
        Metric(P + "resident_memory_bytes", "gauge", "Process RSS.").add(r.rss_bytes),
        Metric(P + "anon_memory_bytes", "gauge", "Process RssAnon (what the budget applies to).").add(r.rss_anon_bytes),
        Metric(P + "available_memory_bytes", "gauge", "System memory available.").add(r.available_memory_bytes),
        free, low,
    ]


def _uplinks(snap: StatusSnapshot) -> list[Metric]:
    if snap.trunk is None or not snap.trunk.uplinks:
        return []
    up_m = Metric(P + "uplink_up", "gauge", "1 while the uplink to the designated router is up.")
    backlog = Metric(P + "uplink_backlog_items", "gauge", "Items queued for the uplink.")
    rtt = Metric(P + "uplink_rtt_seconds", "gauge", "Last measured round-trip time of the uplink.")
    reconnects = Metric(P + "uplink_reconnects_total", "counter", "Reconnections of the uplink.")
    for u in snap.trunk.uplinks:
        labels = {"namespace": u.namespace, "address": u.address}
        up_m.add(1 if u.stats.state == "up" else 0, labels)
        backlog.add(u.backlog, labels)
        rtt.add(u.stats.rtt_ms / 1000.0, labels)
        reconnects.add(u.stats.reconnects, labels)
    return [up_m, backlog, rtt, reconnects]


def metric_families(snap: StatusSnapshot | None) -> list[Metric]:
    """Every family; only ``info`` before the server has started."""
    out = [Metric(P + "info", "gauge", "Version of the running router.").add(1, {"version": __version__})]
    if snap is None:
        return out
    out += [Metric(P + name, kind, text).add(get(snap)) for name, kind, text, get in _SCALARS]
    return out + _labelled(snap) + _memory_and_disk(snap) + _uplinks(snap)
