"""The operations glue of a running router: budget sampling, systemd notify and watchdog, status
fields, metrics. The decisions live in the pure modules (``budget.py``, ``systemd.py``, ``metrics.py``);
this module reads psutil and the clock, sends datagrams and runs three small asyncio tasks.

The server (``server/shell.py``) calls, in order: ``extend_startup`` before opening the stores,
``start`` once the listeners are up (with the server's read-only ``ServerState`` and its
``ServerControls``; it sends ``READY=1``), ``stopping`` first thing in shutdown (``STOPPING=1``) and
``close`` last. Status and metrics are rendered from one ``StatusSnapshot`` (``status.py``).
Everything here is best effort: a failure to sample or to notify
is logged (rate-limited) and never stops the router.

Test hook: with ``WAVEMQ_EDGE_DEBUG_STALL_S=<seconds>`` in the environment, ``SIGUSR2`` blocks the event
loop for that long (a deliberately stalled router, to show the watchdog stops petting systemd). Without
the variable SIGUSR2 keeps its default action.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Final, cast

import psutil

from ..config.units import MIB
from ..router import SUBSCRIPTION_RECORDS
from .budget import (
    Action,
    BudgetPolicy,
    BudgetReading,
    BudgetSettings,
    FitInputs,
    FlushEarly,
    HoldPublishers,
    Pressure,
    QueueUsage,
    RefuseDurable,
    ShedOldest,
    ShrinkCaches,
    check_fit,
)
from .logging import RateLimitedLog
from .metrics import render
from .state import ServerControls, ServerState
from .status import OpsFigures, StatusSnapshot, build_snapshot, metric_families, reply, systemd_line
from .systemd import Notifier, WatchdogPolicy, watchdog_interval_s

#: Builds the fit check's inputs from (free bytes per data directory, available memory, cgroup limit).
FitInputsFor = Callable[[Mapping[str, int], int, "int | None"], FitInputs]

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
#: Once ``RssAnon`` passes this fraction of the budget (or publishers are held), the watch samples at
#: least every ``NEAR_BUDGET_SAMPLE_S``: at 100 MB/s of publishes a 5 s interval is far too coarse.
NEAR_BUDGET_FRACTION: Final = 0.75
NEAR_BUDGET_SAMPLE_S: Final = 0.1


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


@functools.cache
def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``: not per sample)."""
    import ctypes  # on first use only: ctypes costs the idle router ~0.5 MB
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


def _malloc_trim() -> bool:
    """Give free heap pages back to the kernel (glibc); Python's allocator keeps arenas otherwise."""
    trim = _libc_malloc_trim()
    return trim is not None and bool(trim(0))


class OpsRuntime:
    def __init__(self, budget: BudgetSettings, fit_inputs: FitInputsFor, env: Mapping[str, str] | None = None) -> None:
        """``budget``: the watch's settings; ``fit_inputs``: the configured worst case for the start-up fit
        check, given what this machine has (both from ``server/derive.py``)."""
        self.budget = budget
        self._fit_inputs = fit_inputs
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.notifier = Notifier(self.env)
        interval = watchdog_interval_s(self.env, os.getpid())
        self.watchdog = WatchdogPolicy(interval) if interval is not None else None
        self.data_dirs = list(budget.data_dirs)
        self.policy = BudgetPolicy(budget.memory_budget_bytes, budget.disk_reserve_bytes,
                                   queue_dir=self.data_dirs[0], protected=frozenset({SUBSCRIPTION_RECORDS}),
                                   shed=budget.shed_at_reserve)
        self.last_reading: BudgetReading | None = None
        self.rate_log = RateLimitedLog(log)
        self.metrics_address = ""
        self.shed_items = 0
        self.started_wall = time.time()
        self._state: ServerState | None = None
        self._controls: ServerControls | None = None
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

    async def start(self, state: ServerState, controls: ServerControls, metrics_address: str = "") -> None:
        """The server is up (listeners bound, stores recovered): start the watch and send ``READY=1``."""
        self._state = state
        self._controls = controls
        self.metrics_address = metrics_address
        loop = asyncio.get_running_loop()
        self._fit_check()
        self._sample_and_act(loop.time())
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
        self.notifier.close()

    def _debug_stall(self) -> None:
        log.warning("event=debug_stall seconds=%.1f", self._stall_s)
        time.sleep(self._stall_s)  # deliberately blocks the loop (test hook, see the module docstring)

    # ------------------------------------------------------------------ tasks

    async def _watchdog_loop(self) -> None:
        assert self.watchdog is not None and self._state is not None
        loop = asyncio.get_running_loop()
        interval = self.watchdog.interval_s
        scheduled = loop.time()
        while True:
            now = loop.time()
            health = self.watchdog.check(now, scheduled, self._state.flush_times.started)
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

    def _next_sample_s(self) -> float:
        r, interval = self.last_reading, self.budget.sample_interval_s
        near = r is not None and r.rss_anon_bytes >= NEAR_BUDGET_FRACTION * self.policy.memory_budget_bytes
        if near or self.policy.stats.publishers_held:
            return min(interval, NEAR_BUDGET_SAMPLE_S)
        return interval

    async def _budget_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._next_sample_s())
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
        unflushed = 0
        if self._state is not None:
            unflushed = self._state.core_status(now).store.unflushed_bytes
        return BudgetReading(now, rss, anon, available, disk, unflushed)

    def _queue_usage(self) -> list[QueueUsage]:
        if self._state is None:
            return []
        # the router's own records (subscriptions, proofs) are never shed
        return [QueueUsage(st.queue_id, st.bytes, st.depth) for st in self._state.queue_stats()
                if not st.queue_id.startswith(ROUTER_QUEUE_PREFIX)]

    def _sample_and_act(self, now: float) -> list[Action]:
        _malloc_trim()  # freed heap back to the kernel before reading it (glibc keeps it; microseconds)
        reading = self.sample(now)
        self.last_reading = reading
        # Listing every queue costs O(queues); only needed when a disk is short.
        short = any(free < self.policy.disk_reserve_bytes for free in reading.disk_free.values())
        actions = self.policy.evaluate(reading, self._queue_usage() if short else [])
        self.apply(actions)
        return actions

    def apply(self, actions: list[Action]) -> None:
        ctl = self._controls
        shed = 0
        for a in actions:
            if isinstance(a, Pressure):
                if a.active:
                    log.warning("event=budget_pressure kind=%s detail=%r", a.kind, a.detail)
                else:
                    log.info("event=budget_pressure_ended kind=%s actions=%d detail=%r", a.kind, a.actions, a.detail)
            elif isinstance(a, HoldPublishers):
                if ctl is not None:
                    ctl.hold_publishers(a.hold)
                self.rate_log.log(logging.INFO, f"hold:{a.hold}", self.last_reading.now if self.last_reading else 0.0,
                                  "event=publishers_%s reason=%r", "held" if a.hold else "resumed", a.reason)
            elif isinstance(a, FlushEarly):
                if ctl is not None:
                    ctl.request_flush()
            elif isinstance(a, ShrinkCaches):
                gc.collect()
                _malloc_trim()
            elif isinstance(a, ShedOldest):
                if ctl is not None:
                    shed += ctl.shed_oldest(a.queue_id, a.max_bytes)
            elif isinstance(a, RefuseDurable):
                if ctl is not None:
                    ctl.refuse_new_durable(a.reason if a.refuse else None)
                log.warning("event=durable_subscriptions_%s reason=%r", "refused" if a.refuse else "accepted",
                            a.reason)
        if shed:
            self.shed_items += shed
            log.warning("event=budget_shed items=%d total=%d", shed, self.shed_items)
            if ctl is not None:
                ctl.request_flush()  # the deletes free pages inside the store for reuse

    def _fit_check(self) -> None:
        reading = self.sample(0.0)
        report = check_fit(self._fit_inputs(reading.disk_free, reading.available_memory_bytes, cgroup_memory_max()))
        for problem in report.problems:
            log.warning("event=budget_does_not_fit problem=%r", problem)
        for note in report.notes:
            log.info("event=budget_fit note=%r", note)

    # ------------------------------------------------------------------ status and metrics

    def figures(self) -> OpsFigures:
        w = self.watchdog
        return OpsFigures(
            started_wall=self.started_wall, reading=self.last_reading, budget=replace(self.policy.stats),
            memory_budget_bytes=self.policy.memory_budget_bytes, disk_reserve_bytes=self.policy.disk_reserve_bytes,
            shed_items=self.shed_items, notify=self.notifier.enabled,
            watchdog_interval_ms=int(w.interval_s * 1000) if w else None, watchdog_pings=w.pings if w else 0,
            watchdog_withheld=w.skipped if w else 0, metrics_address=self.metrics_address)

    def snapshot(self, now: float) -> StatusSnapshot | None:
        """The whole status, once (None until the server has started)."""
        return None if self._state is None else build_snapshot(self._state, self.figures(), now)

    def status_reply(self, now: float) -> dict[str, object]:
        snap = self.snapshot(now)
        return {} if snap is None else reply(snap)

    def status_line(self) -> str:
        snap = self.snapshot(asyncio.get_running_loop().time() if self._state is not None else 0.0)
        return "starting" if snap is None else systemd_line(snap)

    def render_metrics(self) -> str:
        now = asyncio.get_running_loop().time() if self._state is not None else 0.0
        return render(metric_families(self.snapshot(now)))
