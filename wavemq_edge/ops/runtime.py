"""The operations glue of a running router: budget sampling, systemd notify and watchdog, status
fields, metrics. The decisions live in the pure modules (``budget.py``, ``systemd.py``, ``metrics.py``);
this module reads psutil and the clock, sends datagrams and runs three small asyncio tasks.

``RouterService`` (``net/service.py``) calls, in order: ``extend_startup`` before opening the stores,
``start`` once the listeners are up (it sends ``READY=1``), ``stopping`` first thing in shutdown
(``STOPPING=1``) and ``close`` last. Everything here is best effort: a failure to sample or to notify
is logged (rate-limited) and never stops the router.

Test hook: with ``WAVEMQ_EDGE_DEBUG_STALL_S=<seconds>`` in the environment, ``SIGUSR2`` blocks the event
loop for that long (a deliberately stalled router, to show the watchdog stops petting systemd). Without
the variable SIGUSR2 keeps its default action.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import psutil

from .. import __version__
from ..config import Config
from ..config.units import MIB
from ..router.core import SUBSCRIPTION_RECORDS
from ..storage import DropReason, QueueStore
from ..storage.options import DEFAULT_MAX_MAP_SIZE, StoreOptions
from .budget import (
    Action,
    BudgetPolicy,
    BudgetReading,
    FitInputs,
    FlushEarly,
    Pressure,
    QueueUsage,
    RefuseDurable,
    ShedOldest,
    ShrinkCaches,
    check_fit,
)
from .durable_gate import DurableGateRouterCore
from .logging import RateLimitedLog
from .metrics import MAX_QUEUE_SERIES, Metric, render, top_queues
from .systemd import Notifier, WatchdogPolicy, watchdog_interval_s

if TYPE_CHECKING:
    from ..net.metrics_server import MetricsServer
    from ..net.service import RouterService

__all__ = ["DEBUG_STALL_ENV", "OpsRuntime", "recovery_extend_usec"]

log = logging.getLogger("wavemq_edge.ops")

DEBUG_STALL_ENV: Final = "WAVEMQ_EDGE_DEBUG_STALL_S"
#: Store queues whose id starts with this hold the router's own state (``router:subscriptions``, ...),
#: not messages: shedding them would forget durable subscriptions, so the budget watch never does.
ROUTER_QUEUE_PREFIX: Final = "router:"
#: ``STATUS=`` is refreshed this often when it changed (systemctl status shows it).
STATUS_INTERVAL_S: Final = 10.0
#: Recovery reads the whole store once (storage README: the open scans every item's header). Assume a
#: slow SD card (10 MB/s) plus a fixed 30 s, so the extension covers the worst case we measured on x86
#: scaled by ~10x for a Pi.
RECOVERY_READ_BYTES_PER_S: Final = 10 * MIB
RECOVERY_BASE_S: Final = 30.0
#: Per-queue rows in a STATUS reply: the status frame must stay far below maxFrameBytes.
MAX_STATUS_QUEUES: Final = MAX_QUEUE_SERIES


def recovery_extend_usec(data_bytes: int) -> int:
    """``EXTEND_TIMEOUT_USEC`` for opening stores of ``data_bytes`` on disk."""
    return int((RECOVERY_BASE_S + data_bytes / RECOVERY_READ_BYTES_PER_S) * 1e6)


def _dir_bytes(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def cgroup_memory_max(proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The cgroup v2 ``memory.max`` of this process (systemd's ``MemoryMax=``), or None."""
    try:
        lines = (proc_root / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            try:
                value = (cgroup_root / line[3:].lstrip("/") / "memory.max").read_text().strip()
            except OSError:
                return None
            return None if value == "max" else int(value) if value.isdigit() else None
    return None


def _malloc_trim() -> bool:
    """Give free heap pages back to the kernel (glibc); Python's allocator keeps arenas otherwise."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


class OpsRuntime:
    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.notifier = Notifier(self.env)
        interval = watchdog_interval_s(self.env, os.getpid())
        self.watchdog = WatchdogPolicy(interval) if interval is not None else None
        b = config.budget
        self.data_dirs = [str(config.queue.queue_data_store), str(config.routing.persist_data_store),
                          str(config.wave.database)]
        self.policy = BudgetPolicy(b.memory_budget_mb * MIB, b.disk_reserve_mb * MIB,
                                   queue_dir=self.data_dirs[0], protected=frozenset({SUBSCRIPTION_RECORDS}))
        self.last_reading: BudgetReading | None = None
        self.rate_log = RateLimitedLog(log)
        self.metrics_server: MetricsServer | None = None
        self.metrics_address = ""
        self.shed_items = 0
        self.started_wall = time.time()
        self._service: RouterService | None = None
        self._proc = psutil.Process()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status = ""
        self._stall_s = 0.0

    # ------------------------------------------------------------------ lifecycle

    def extend_startup(self) -> None:
        """Before the (synchronous) store recovery: ask systemd for time in proportion to the data."""
        if not self.notifier.enabled:
            return
        data = sum(_dir_bytes(Path(d)) for d in self.data_dirs[:2])
        usec = recovery_extend_usec(data)
        self.notifier.send({"EXTEND_TIMEOUT_USEC": usec, "STATUS": f"recovering {data // MIB} MB of queues"})

    async def start(self, service: RouterService) -> None:
        self._service = service
        loop = asyncio.get_running_loop()
        assert service.core is not None
        service.core.status_extra = self.status_extra
        self._fit_check()
        self._sample_and_act(loop.time())
        mc = self.config.metrics
        if mc.enabled:
            from ..net.metrics_server import MetricsServer

            self.metrics_server = MetricsServer(self.render_metrics)
            try:
                self.metrics_address = await self.metrics_server.start(mc.listen_addr.host, mc.listen_addr.port)
            except OSError as exc:
                # Metrics are an aid, not the service: a port clash must not keep the router down.
                log.warning("event=metrics_listen_failed addr=%s error=%r", mc.listen_addr, exc.strerror)
                self.metrics_server = None
        self._tasks.append(asyncio.create_task(self._budget_loop(), name="wavemq-budget"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="wavemq-sd-status"))
        if self.watchdog is not None:
            self._tasks.append(asyncio.create_task(self._watchdog_loop(), name="wavemq-watchdog"))
        stall = self.env.get(DEBUG_STALL_ENV, "")
        if stall:
            self._stall_s = float(stall)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGUSR2, self._debug_stall)
            log.warning("event=debug_stall_hook_enabled seconds=%s signal=SIGUSR2", stall)
        self.notifier.send({"READY": 1, "STATUS": self.status_line()})
        log.info("event=ops_started notify=%s watchdog_interval_s=%s metrics=%s", self.notifier.enabled,
                 self.watchdog.interval_s if self.watchdog else None, self.metrics_address or "off")

    def stopping(self) -> None:
        self.notifier.send({"STOPPING": 1, "STATUS": "stopping: final flush"})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=1.0)
        self._tasks.clear()
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None
        self.notifier.close()

    def _debug_stall(self) -> None:
        log.warning("event=debug_stall seconds=%.1f", self._stall_s)
        time.sleep(self._stall_s)  # deliberately blocks the loop (test hook, see the module docstring)

    # ------------------------------------------------------------------ tasks

    async def _watchdog_loop(self) -> None:
        assert self.watchdog is not None and self._service is not None
        loop = asyncio.get_running_loop()
        interval = self.watchdog.interval_s
        scheduled = loop.time()
        while True:
            now = loop.time()
            health = self.watchdog.check(now, scheduled, self._service.stats.flush_started)
            if health.healthy:
                self.notifier.send({"WATCHDOG": 1})
            else:
                self.rate_log.warning("watchdog", now, "event=watchdog_withheld reason=%r", health.reason)
            scheduled = now + interval
            await asyncio.sleep(max(0.0, scheduled - loop.time()))

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            line = self.status_line()
            if line != self._last_status:
                self.notifier.send({"STATUS": line})
                self._last_status = line

    async def _budget_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.budget.sample_interval_s)
            try:
                self._sample_and_act(loop.time())
            except Exception:  # a sampling bug must not end the watch silently
                self.rate_log.log(logging.ERROR, "budget_loop", loop.time(), "event=budget_sample_failed")
                log.debug("budget sample failed", exc_info=True)

    # ------------------------------------------------------------------ budget glue

    def sample(self, now: float) -> BudgetReading:
        mi = self._proc.memory_info()
        rss = int(mi.rss)
        # psutil's `shared` on Linux is RssFile + RssShmem, so the rest is RssAnon (DESIGN.md: budgets
        # apply to anonymous memory; LMDB's file-backed pages are reclaimable).
        anon = max(0, rss - int(getattr(mi, "shared", 0)))
        available = int(psutil.virtual_memory().available)
        disk: dict[str, int] = {}
        for d in self.data_dirs:
            try:
                disk[d] = int(psutil.disk_usage(d).free)
            except OSError as exc:
                self.rate_log.warning(f"statvfs:{d}", now, "event=disk_sample_failed dir=%s error=%r", d,
                                      exc.strerror)
        svc = self._service
        unflushed = svc.queues.store_stats().unflushed_bytes if svc is not None and svc.queues is not None else 0
        return BudgetReading(now, rss, anon, available, disk, unflushed)

    def _queue_usage(self, queues: QueueStore) -> list[QueueUsage]:
        out = []
        for qid in queues.queue_ids():
            if qid.startswith(ROUTER_QUEUE_PREFIX):
                continue  # the router's own records (subscriptions, proofs): never shed
            st = queues.stats(qid)
            out.append(QueueUsage(qid, st.bytes, st.depth))
        return out

    def _sample_and_act(self, now: float) -> list[Action]:
        reading = self.sample(now)
        self.last_reading = reading
        svc = self._service
        queues = svc.queues if svc is not None else None
        # Listing every queue costs O(queues); only needed when a disk is short.
        short = any(free < self.policy.disk_reserve_bytes for free in reading.disk_free.values())
        usage = self._queue_usage(queues) if short and queues is not None else []
        actions = self.policy.evaluate(reading, usage)
        self.apply(actions)
        return actions

    def apply(self, actions: list[Action]) -> None:
        svc = self._service
        shed = 0
        for a in actions:
            if isinstance(a, Pressure):
                if a.active:
                    log.warning("event=budget_pressure kind=%s detail=%r", a.kind, a.detail)
                else:
                    log.info("event=budget_pressure_ended kind=%s actions=%d detail=%r", a.kind, a.actions, a.detail)
            elif isinstance(a, FlushEarly):
                if svc is not None:
                    svc.request_flush()
            elif isinstance(a, ShrinkCaches):
                gc.collect()
                _malloc_trim()
            elif isinstance(a, ShedOldest):
                if svc is not None and svc.queues is not None and svc.queues.has_queue(a.queue_id):
                    n = svc.queues.shed_oldest(a.queue_id, max_bytes=a.max_bytes, reason=DropReason.BUDGET)
                    shed += n
            elif isinstance(a, RefuseDurable):
                if svc is not None and isinstance(svc.core, DurableGateRouterCore):
                    svc.core.refuse_durable_reason = a.reason if a.refuse else None
                log.warning("event=durable_subscriptions_%s reason=%r", "refused" if a.refuse else "accepted",
                            a.reason)
        if shed:
            self.shed_items += shed
            log.warning("event=budget_shed items=%d total=%d", shed, self.shed_items)
            if svc is not None:
                svc.request_flush()  # the deletes free pages inside the store for reuse

    def _fit_check(self) -> None:
        cfg = self.config
        q = cfg.queue
        reading = self.sample(0.0)
        report = check_fit(FitInputs(
            memory_budget=cfg.budget.memory_budget_mb * MIB,
            disk_reserve=cfg.budget.disk_reserve_mb * MIB,
            queue_dir=self.data_dirs[0],
            subscription_max_bytes=q.subscription_queue_max_size_mb * MIB,
            subscription_max_length=q.subscription_queue_max_length,
            trunk_max_bytes=q.trunking_queue_max_size_mb * MIB,
            trunk_max_length=q.trunking_queue_max_length,
            trunk_queues=len(cfg.routing.routers),
            max_map_bytes=DEFAULT_MAX_MAP_SIZE,
            flush_bytes=q.flush_size_mb * MIB,
            journal_max_bytes=StoreOptions(path="").journal_max_bytes,
            disk_free=reading.disk_free,
            available_memory=reading.available_memory_bytes,
            cgroup_memory_max=cgroup_memory_max(),
        ))
        for problem in report.problems:
            log.warning("event=budget_does_not_fit problem=%r", problem)
        for note in report.notes:
            log.info("event=budget_fit note=%r", note)

    # ------------------------------------------------------------------ status and metrics

    def status_line(self) -> str:
        svc = self._service
        if svc is None or svc.core is None or svc.queues is None:
            return "starting"
        st = svc.queues.store_stats()
        parts = [f"{svc.core.agent_connections} agents", f"{len(svc.core.subscriptions())} subscriptions",
                 f"{st.items} queued ({st.bytes // 1024} KiB)"]
        for up in self._uplinks():
            parts.append(f"uplink {str(up.get('namespace', '?'))[:8]} {up.get('state', '?')} "
                         f"backlog {up.get('backlog', '?')}")
        if self.policy.stats.memory_pressure:
            parts.append("OVER MEMORY BUDGET")
        if self.policy.stats.refusing_durable:
            parts.append("DISK LOW: refusing durable subscriptions")
        return ", ".join(parts)

    def _uplinks(self) -> list[Mapping[str, object]]:
        """Uplink status maps from the tiering glue (``net/trunk_net.py``), when this router has uplinks."""
        trunk = getattr(self._service, "trunk", None)
        if trunk is None:
            return []
        ups = trunk.status().get("uplinks")
        return [u for u in ups if isinstance(u, Mapping)] if isinstance(ups, list) else []

    def status_extra(self, now: float) -> dict[str, object]:
        """Fields merged into STATUS replies (``wavemq-edge status``)."""
        svc = self._service
        r = self.last_reading
        ps = self.policy.stats
        out: dict[str, object] = {"started_at": int(self.started_wall)}
        if r is not None:
            out["memory"] = {"rss_bytes": r.rss_bytes, "rss_anon_bytes": r.rss_anon_bytes,
                             "budget_bytes": self.policy.memory_budget_bytes,
                             "available_bytes": r.available_memory_bytes, "over_budget": ps.memory_pressure}
            out["disk"] = {d: {"free_bytes": free, "reserve_bytes": self.policy.disk_reserve_bytes,
                               "low": ps.disk_pressure.get(d, False)} for d, free in r.disk_free.items()}
        out["budget"] = {"samples": ps.samples, "early_flushes": ps.early_flushes, "cache_shrinks": ps.cache_shrinks,
                         "shed_actions": ps.shed_actions, "shed_items": self.shed_items,
                         "refusing_durable": ps.refusing_durable,
                         "refused_durable": svc.core.refused_durable
                         if svc is not None and isinstance(svc.core, DurableGateRouterCore) else 0}
        if svc is not None:
            # Frames carry no floats (wire/codec.py): times in integer microseconds.
            out["flush_write_us"] = {"total": int(svc.stats.flush_seconds_total * 1e6),
                                     "last": int(svc.stats.flush_seconds_last * 1e6),
                                     "max": int(svc.stats.flush_seconds_max * 1e6)}
            if svc.queues is not None:
                out["queue_detail"] = self._queue_rows(svc.queues)
                st = svc.queues.store_stats()
                out["failed_flushes"] = st.failed_flushes
                out["journal"] = {"enabled": st.journal_enabled, "ok": st.journal_ok,
                                  "on_tmpfs": st.journal_on_tmpfs, "dir": st.journal_dir}
        out["systemd"] = {"notify": self.notifier.enabled,
                          "watchdog_interval_ms": int(self.watchdog.interval_s * 1000) if self.watchdog else None,
                          "watchdog_pings": self.watchdog.pings if self.watchdog else 0,
                          "watchdog_withheld": self.watchdog.skipped if self.watchdog else 0}
        if self.metrics_address:
            out["metrics"] = self.metrics_address
        return out

    def _queue_rows(self, queues: QueueStore) -> list[dict[str, object]]:
        stats = [queues.stats(q) for q in queues.queue_ids()]
        stats.sort(key=lambda s: (-s.bytes, -s.depth, s.queue_id))
        return [{"id": s.queue_id, "kind": s.kind.value, "depth": s.depth, "bytes": s.bytes,
                 "drops": {k: v for k, v in s.drops.items() if v}} for s in stats[:MAX_STATUS_QUEUES]]

    def render_metrics(self) -> str:
        return render(self.collect_metrics())

    def collect_metrics(self) -> list[Metric]:
        svc = self._service
        now = asyncio.get_running_loop().time()
        r = self.last_reading
        ps = self.policy.stats
        P = "wavemq_edge_"
        m: list[Metric] = [Metric(P + "info", "gauge", "Version of the running router.")
                           .add(1, {"version": __version__})]
        if svc is None or svc.core is None or svc.queues is None:
            return m
        core, queues = svc.core, svc.queues
        st = queues.store_stats()
        c = core.counters
        m += [
            Metric(P + "uptime_seconds", "gauge", "Seconds since the router started.").add(now - core.started),
            Metric(P + "agent_connections", "gauge", "Open agent connections.").add(core.agent_connections),
            Metric(P + "subscriptions", "gauge", "Live subscriptions.").add(len(core.subscriptions())),
            Metric(P + "queues", "gauge", "Queues in the store.").add(st.queues),
            Metric(P + "queued_items", "gauge", "Items queued in all queues.").add(st.items),
            Metric(P + "queued_bytes", "gauge", "Payload bytes queued in all queues.").add(st.bytes),
            Metric(P + "unflushed_items", "gauge", "Items waiting for the next flush.").add(st.unflushed_items),
            Metric(P + "published_total", "counter", "Messages accepted from publishers.").add(c.published),
            Metric(P + "duplicates_total", "counter", "Duplicate messages suppressed.").add(c.duplicates),
            Metric(P + "delivered_total", "counter", "Messages delivered to consumers.").add(c.delivered),
            Metric(P + "redelivered_total", "counter", "Messages delivered again.").add(c.redelivered),
            Metric(P + "acked_total", "counter", "Deliveries acknowledged.").add(c.acked),
            Metric(P + "flushes_total", "counter", "Flushes (one synced LMDB transaction each).").add(st.flushes),
            Metric(P + "flushes_failed_total", "counter", "Flushes that failed.").add(st.failed_flushes),
            Metric(P + "flush_write_seconds_total", "counter",
                   "Time in flush writes (transaction + fdatasync).").add(svc.stats.flush_seconds_total),
            Metric(P + "flush_write_seconds_last", "gauge", "Duration of the last flush write.")
            .add(svc.stats.flush_seconds_last),
            Metric(P + "verifier_cache_hits_total", "counter", "Proof verification cache hits.")
            .add(core.verifier.stats.hits),
            Metric(P + "verifier_cache_misses_total", "counter", "Proof verification cache misses.")
            .add(core.verifier.stats.misses),
        ]
        drops = Metric(P + "dropped_items_total", "counter", "Items dropped without delivery, by reason.")
        for reason, n in sorted(st.drops.items()):
            drops.add(n, {"reason": reason})
        refused = Metric(P + "refused_total", "counter", "Requests refused, by error code.")
        for code, n in sorted(c.refused.items()):
            refused.add(n, {"code": code})
        m += [drops, refused]
        rows = [(q, s.kind.value, s.depth, s.bytes) for q in queues.queue_ids() for s in (queues.stats(q),)]
        depth = Metric(P + "queue_depth", "gauge", f"Items per queue (the {MAX_QUEUE_SERIES} largest).")
        qbytes = Metric(P + "queue_bytes", "gauge", f"Payload bytes per queue (the {MAX_QUEUE_SERIES} largest).")
        for qid, kind, n_items, n_bytes in top_queues(rows):
            depth.add(n_items, {"queue": qid, "kind": kind})
            qbytes.add(n_bytes, {"queue": qid, "kind": kind})
        m += [depth, qbytes]
        if r is not None:
            m += [
                Metric(P + "resident_memory_bytes", "gauge", "Process RSS.").add(r.rss_bytes),
                Metric(P + "anon_memory_bytes", "gauge", "Process RssAnon (what the budget applies to).")
                .add(r.rss_anon_bytes),
                Metric(P + "available_memory_bytes", "gauge", "System memory available.").add(r.available_memory_bytes),
            ]
            free = Metric(P + "disk_free_bytes", "gauge", "Free bytes on each data directory's filesystem.")
            for d, f in sorted(r.disk_free.items()):
                free.add(f, {"dir": d})
            low = Metric(P + "budget_disk_low", "gauge", "1 while a data directory is below diskReserve.")
            for d in sorted(r.disk_free):
                low.add(1 if ps.disk_pressure.get(d) else 0, {"dir": d})
            m += [free, low]
        uplinks = self._uplinks()
        if uplinks:
            up_m = Metric(P + "uplink_up", "gauge", "1 while the uplink to the designated router is up.")
            backlog = Metric(P + "uplink_backlog_items", "gauge", "Items queued for the uplink.")
            rtt = Metric(P + "uplink_rtt_seconds", "gauge", "Last measured round-trip time of the uplink.")
            reconnects = Metric(P + "uplink_reconnects_total", "counter", "Reconnections of the uplink.")
            for u in uplinks:
                labels = {"namespace": str(u.get("namespace", "")), "address": str(u.get("address", ""))}
                up_m.add(1 if u.get("state") == "up" else 0, labels)
                for metric, key, scale in ((backlog, "backlog", 1.0), (rtt, "rtt_ms", 1e-3),
                                           (reconnects, "reconnects", 1.0)):
                    value = u.get(key)
                    if isinstance(value, (int, float)):
                        metric.add(value * scale, labels)
            m += [up_m, backlog, rtt, reconnects]
        m += [
            Metric(P + "memory_budget_bytes", "gauge", "BudgetConfig.memoryBudget.")
            .add(self.policy.memory_budget_bytes),
            Metric(P + "disk_reserve_bytes", "gauge", "BudgetConfig.diskReserve.")
            .add(self.policy.disk_reserve_bytes),
            Metric(P + "budget_memory_over", "gauge", "1 while RssAnon is over the budget.")
            .add(1 if ps.memory_pressure else 0),
            Metric(P + "budget_refusing_durable", "gauge", "1 while new durable subscriptions are refused.")
            .add(1 if ps.refusing_durable else 0),
            Metric(P + "budget_early_flushes_total", "counter", "Flushes started early for memory.")
            .add(ps.early_flushes),
            Metric(P + "budget_shed_items_total", "counter", "Items shed for disk space.").add(self.shed_items),
            Metric(P + "watchdog_pings_total", "counter", "WATCHDOG=1 sent to systemd.")
            .add(self.watchdog.pings if self.watchdog else 0),
            Metric(P + "watchdog_withheld_total", "counter", "Watchdog pings withheld because unhealthy.")
            .add(self.watchdog.skipped if self.watchdog else 0),
        ]
        return m
