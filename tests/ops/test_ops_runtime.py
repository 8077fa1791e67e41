"""The ops glue against an in-memory router (no process, no sockets): actions reach the store and the
core, status and metrics carry uplinks when the tiering glue has them, nothing is shed from router:*."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wavemq_edge.config import load_default_config
from wavemq_edge.ops.budget import RefuseDurable, ShedOldest
from wavemq_edge.ops.durable_gate import DurableGateRouterCore
from wavemq_edge.ops.runtime import OpsRuntime
from wavemq_edge.router import RouterOptions
from wavemq_edge.storage import MemoryBackend, QueueKind, QueueLimits, QueueStore, StoreOptions
from wavemq_edge.wave import Verifier


@dataclass
class FakeStats:
    flush_seconds_total: float = 0.25
    flush_seconds_last: float = 0.01
    flush_seconds_max: float = 0.1
    flush_started: float | None = None


class FakeTrunk:
    def status(self) -> dict[str, object]:
        return {"uplinks": [{"namespace": "abcdefghijkl", "address": "dr:4515", "state": "up", "since": 1,
                             "backlog": 7, "rtt_ms": 12.5, "reconnects": 2}]}


@dataclass
class FakeService:
    core: DurableGateRouterCore
    queues: QueueStore
    stats: FakeStats = field(default_factory=FakeStats)
    trunk: FakeTrunk | None = None
    flushes_requested: int = 0

    def request_flush(self) -> bool:
        self.flushes_requested += 1
        return True


def service() -> FakeService:
    queues = QueueStore(MemoryBackend(), StoreOptions(path="mem", journal_dir=""), 0.0, 1.7e9)
    core = DurableGateRouterCore(router_id=b"R" * 36, queues=queues, verifier=Verifier(),
                                 options=RouterOptions(subscription_limits=QueueLimits(1000, 1 << 20, 86400)),
                                 now=0.0, wall_offset=1.7e9)
    queues.create_queue("sub:big", QueueKind.SUBSCRIPTION, QueueLimits(1000, 1 << 20, 86400), 0.0)
    for _ in range(10):
        queues.append("sub:big", b"x" * 100, 0.0)
    return FakeService(core, queues)


def runtime(tmp_path: Path, svc: FakeService) -> OpsRuntime:
    ops = OpsRuntime(load_default_config(tmp_path), env={})
    ops._service = svc  # type: ignore[assignment]
    return ops


def test_actions_reach_store_and_core(tmp_path: Path) -> None:
    svc = service()
    ops = runtime(tmp_path, svc)
    ops.apply([ShedOldest("sub:big", 450), ShedOldest("router:subscriptions", 10), RefuseDurable(True, "disk low")])
    assert svc.queues.stats("sub:big").drops["budget"] == 5 and svc.queues.stats("sub:big").depth == 5
    assert ops.shed_items == 5 and svc.flushes_requested == 1
    assert svc.core.refuse_durable_reason == "disk low"
    ops.apply([RefuseDurable(False, "ok")])
    assert svc.core.refuse_durable_reason is None


def test_router_queues_are_never_offered_for_shedding(tmp_path: Path) -> None:
    svc = service()
    ops = runtime(tmp_path, svc)
    ids = [u.queue_id for u in ops._queue_usage(svc.queues)]
    assert ids == ["sub:big"] and "router:subscriptions" in svc.queues.queue_ids()


def test_status_line_status_extra_and_metrics_with_uplinks(tmp_path: Path) -> None:
    svc = service()
    svc.trunk = FakeTrunk()
    ops = runtime(tmp_path, svc)
    ops.last_reading = ops.sample(0.0)
    line = ops.status_line()
    assert "0 agents" in line and "10 queued" in line and "uplink abcdefgh up backlog 7" in line
    extra = ops.status_extra(0.0)
    assert extra["flush_write_us"] == {"total": 250000, "last": 10000, "max": 100000}
    assert extra["queue_detail"][0]["id"] == "sub:big"  # type: ignore[index]

    async def scrape() -> str:
        return ops.render_metrics()

    text = asyncio.run(scrape())
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["wavemq_edge_uplink_up"].samples[0].value == 1
    assert fams["wavemq_edge_uplink_backlog_items"].samples[0].value == 7
    assert fams["wavemq_edge_uplink_rtt_seconds"].samples[0].value == 0.0125
    assert fams["wavemq_edge_queue_depth"].samples[0].labels["queue"] == "sub:big"
    assert fams["wavemq_edge_flush_write_seconds"].samples[0].value == 0.25


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
