"""The ops glue against an in-memory router (no process, no sockets): actions reach the store and the
core, status and metrics carry uplinks when the tiering glue has them, nothing is shed from router:*."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wavemq_edge.config import load_default_config
from wavemq_edge.ops.budget import RefuseDurable, ShedOldest
from wavemq_edge.ops.runtime import OpsRuntime
from wavemq_edge.ops.state import FlushTimes, TrunkSummary
from wavemq_edge.router import CoreStatus, RouterCore, RouterOptions
from wavemq_edge.router.trunk import UplinkStats, UplinkStatus
from wavemq_edge.server import derive
from wavemq_edge.storage import DropReason, MemoryBackend, QueueKind, QueueLimits, QueueStats, QueueStore, StoreOptions
from wavemq_edge.wave import Verifier


class FakeServer:
    """The server as ops sees it (``ServerState`` and ``ServerControls``), over a real core on a memory
    store."""

    def __init__(self, with_uplink: bool = False) -> None:
        self.queues = QueueStore(MemoryBackend(), StoreOptions(path="mem", journal_dir=""), 0.0, 1.7e9)
        self.core = RouterCore(router_id=b"R" * 36, queues=self.queues, verifier=Verifier(),
                               options=RouterOptions(subscription_limits=QueueLimits(1000, 1 << 20, 86400)),
                               now=0.0, wall=1.7e9)
        self.queues.create_queue("sub:big", QueueKind.SUBSCRIPTION, QueueLimits(1000, 1 << 20, 86400), 0.0)
        for _ in range(10):
            self.queues.append("sub:big", b"x" * 100, 0.0)
        self.flush_times = FlushTimes(total_s=0.25, last_s=0.01, max_s=0.1)
        self.flushes_requested = 0
        self.uplinks: tuple[UplinkStatus, ...] = ()
        if with_uplink:
            stats = UplinkStats(state="up", since=1, rtt_ms=12.5, reconnects=2)
            self.uplinks = (UplinkStatus("abcdefghijkl", "dr:4515", stats, 7),)

    def core_status(self, now: float) -> CoreStatus:
        return self.core.status(now)

    def queue_stats(self) -> list[QueueStats]:
        return [self.queues.stats(q) for q in self.queues.queue_ids()]

    def agent_connections(self) -> int:
        return 0

    def agent_admission(self) -> dict[str, dict[str, int]]:
        return {"refused": {"per_address": 2}}

    def trunk(self) -> TrunkSummary | None:
        return TrunkSummary(self.uplinks, 0, ()) if self.uplinks else None

    def request_flush(self) -> bool:
        self.flushes_requested += 1
        return True

    def shed_oldest(self, queue_id: str, max_bytes: int) -> int:
        return self.queues.shed_oldest(queue_id, max_bytes=max_bytes, reason=DropReason.BUDGET)

    def refuse_new_durable(self, reason: str | None) -> None:
        self.core.refuse_new_durable(reason)


def runtime(tmp_path: Path, svc: FakeServer) -> OpsRuntime:
    config = load_default_config(tmp_path)
    ops = OpsRuntime(derive.budget_settings(config),
                     lambda free, avail, cg: derive.fit_inputs(config, disk_free=free, available_memory=avail,
                                                               cgroup_memory_max=cg), env={})
    ops._state = svc
    ops._controls = svc
    return ops


def test_actions_reach_store_and_core(tmp_path: Path) -> None:
    svc = FakeServer()
    ops = runtime(tmp_path, svc)
    ops.apply([ShedOldest("sub:big", 450), RefuseDurable(True, "disk low")])
    assert svc.queues.stats("sub:big").drops["budget"] == 5 and svc.queues.stats("sub:big").depth == 5
    assert ops.shed_items == 5 and svc.flushes_requested == 1
    assert svc.core.status(0.0).refusing_durable == "disk low"
    ops.apply([RefuseDurable(False, "ok")])
    assert svc.core.status(0.0).refusing_durable is None


def test_router_queues_are_never_offered_for_shedding(tmp_path: Path) -> None:
    svc = FakeServer()
    ops = runtime(tmp_path, svc)
    ids = [u.queue_id for u in ops._queue_usage()]
    assert ids == ["sub:big"] and "router:subscriptions" in svc.queues.queue_ids()


def test_status_line_reply_and_metrics_render_one_snapshot(tmp_path: Path) -> None:
    svc = FakeServer(with_uplink=True)
    ops = runtime(tmp_path, svc)
    ops.last_reading = ops.sample(0.0)

    async def render() -> tuple[str, dict[str, object], str]:
        return ops.status_line(), ops.status_reply(0.0), ops.render_metrics()

    line, status, text = asyncio.run(render())
    assert "0 agents" in line and "10 queued" in line and "uplink abcdefgh up backlog 7" in line
    assert status["flush_write_us"] == {"total": 250000, "last": 10000, "max": 100000}
    assert status["queue_detail"][0]["id"] == "sub:big"  # type: ignore[index]
    assert status["uplinks"][0]["backlog"] == 7  # type: ignore[index]
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["wavemq_edge_uplink_up"].samples[0].value == 1
    assert fams["wavemq_edge_uplink_backlog_items"].samples[0].value == 7
    assert fams["wavemq_edge_uplink_rtt_seconds"].samples[0].value == 0.0125
    assert fams["wavemq_edge_queue_depth"].samples[0].labels["queue"] == "sub:big"
    assert fams["wavemq_edge_flush_write_seconds"].samples[0].value == 0.25
    assert status["admission"] == {"refused": {"per_address": 2}}
    refused = fams["wavemq_edge_agent_connections_refused"].samples[0]
    assert refused.labels == {"reason": "per_address"} and refused.value == 2


def test_status_view_groups_known_fields_and_keeps_unknown_ones() -> None:
    from wavemq_edge.ops.status_view import derive, render_status

    status: dict[str, object] = {
        "router_id": "RID", "version": "0.1.0", "uptime_s": 3725, "started_at": 1_700_000_000,
        "verifier_hits": 3, "verifier_misses": 1, "flush_write_us": {"total": 1500, "last": 500, "max": 900},
        "memory": {"rss_bytes": 35 << 20, "rss_anon_bytes": 20 << 20, "budget_bytes": 128 << 20,
                   "available_bytes": 1 << 30, "over_budget": True},
        "uplinks": [{"namespace": "NS", "address": "dr:4515", "state": "down", "since": 0, "backlog": 9,
                     "rtt_ms": 0, "reconnects": 4, "last_error": "refused"}],
        "something_new": {"a": 1},
        "queue_detail": [{"id": "sub:x", "kind": "subscription", "depth": 2, "bytes": 2048, "drops": {"budget": 1}}],
    }
    assert derive(status)["verifier_hit_rate"] == 0.75
    text = render_status(status)
    assert "1h 02m 05s" in text and "verifier hit rate 75.0%" in text and "OVER BUDGET" in text
    assert "NS dr:4515: down" in text and "reconnects 4" in text
    assert "something_new     a=1" in text
    assert "sub:x" in text and "budget=1" in text and "2.0 KiB" in text
