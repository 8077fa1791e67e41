"""RAM and disk budget policy (sans-I/O): readings in, actions out.

Theory of operation. Every ``BudgetConfig.sampleInterval`` the glue (``budget_watch.py``) reads the
process's memory (RSS and ``RssAnon``), the system's available memory and the free space of each data
directory's filesystem, and hands them to ``BudgetPolicy.evaluate`` with the queue sizes. The policy
keeps the state of each pressure (memory, disk per directory) and returns what to do:

* ``RssAnon`` above ``memoryBudget`` -> ``HoldPublishers(True)`` (stop reading the sockets of connections
  that publish: they are slowed by TCP, nothing is refused or dropped), ``FlushEarly`` (unflushed
  payloads are the RAM that grows with load: a flush moves them to disk) and ``ShrinkCaches`` (give freed
  heap back to the kernel). Publishers are let go when ``RssAnon`` is under 90% of the budget, or when
  nothing is left unflushed (waiting would free nothing more; held again at the next sample over budget
  with new payloads, so a router that stays over is throttled, never stopped). The budget applies to
  anonymous memory because LMDB pages read through the map are file-backed and the kernel reclaims them
  (DESIGN.md, storage). Leaving needs ``RssAnon`` under 90% of the budget. The structural bounds below
  (``memory_worst_case``) keep a router inside its budget without this; it is the last line.
* free space of the queue store's filesystem below ``diskReserve`` -> ``ShedOldest`` from the largest
  queues (drop reason ``budget``) for the deficit plus a margin, and ``RefuseDurable(True)`` until the
  free space is back above reserve plus margin. Shedding only with ``onDiskFull = "drop-oldest"``
  (``shed``); under ``"refuse"`` nothing accepted is shed: the core refuses what it could not keep.
  While the pressure lasts, more is shed only when the free space falls further: shedding frees pages
  *inside* the LMDB file (they are reused, the file does not shrink), so it stops growth but does not
  raise the filesystem's free figure, and shedding again at every sample would empty every queue for
  nothing. A further fall must be at least one margin.
* any other data directory below its reserve is reported (``Pressure``) but nothing is shed for it:
  queues do not live there.

Each change of a pressure state is one ``Pressure`` action, which the glue logs: the log says it once
per burst, with counts when the burst ends. ``check_fit`` is the start-up comparison of the configured
worst case with what the machine has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..config.units import MIB
from ..storage.flush_plan import RAM_LIMIT_FLUSHES
from ..wave.replay import REPLAY_WINDOW_MAX

__all__ = [
    "HYSTERESIS_FRACTION",
    "MIN_MARGIN_BYTES",
    "STORED_BYTES_FACTOR",
    "Action",
    "BudgetPolicy",
    "BudgetReading",
    "BudgetSettings",
    "FitInputs",
    "FitReport",
    "FlushEarly",
    "HoldPublishers",
    "Pressure",
    "QueueUsage",
    "RefuseDurable",
    "ShedOldest",
    "ShrinkCaches",
    "check_fit",
    "memory_worst_case",
    "plan_shed",
    "replay_window_entries",
]

#: Leave a pressure only this far inside the bound (10%), so a reading hovering at the bound does not
#: flap between "shedding" and "fine" every sample.
HYSTERESIS_FRACTION: Final = 0.10
#: The smallest margin shed beyond a disk deficit: below 1 MiB the next sample would be short again.
MIN_MARGIN_BYTES: Final = 1 * MIB
#: Re-shrink caches at most this often while memory stays over budget (shrinking is cheap but gc +
#: malloc_trim walk the heap; once a minute is plenty to see whether it helps).
SHRINK_REPEAT_S: Final = 60.0
#: Device bytes per payload byte of a backlogged item (storage README: 234 B per 200 B item = 1.17).
STORED_BYTES_FACTOR: Final = 1.2
#: RAM the ring-queue bookkeeping holds per queued item (storage README: 16 B/item of size+time),
#: rounded up for the Python containers around it.
RAM_PER_ITEM_BYTES: Final = 24
#: RssAnon allowed for an idle router in the start-up fit check. Measured: 20 MB after start-up on x86_64,
#: CPython 3.11 with uvloop, pynacl, lmdb, cbor2 and psutil (RSS 35 MB, the rest file-backed); 32 MB
#: leaves room for the heap an active router keeps (sessions, verifier cache, trie).
BASE_RSS_ANON_BYTES: Final = 32 * MIB
#: RAM per id the replay guard remembers at worst (its fingerprint table just after doubling, measured
#: with tracemalloc: 21-33 B per id; the set-of-tuples guard it replaced took ~352 B).
REPLAY_ENTRY_BYTES: Final = 40
#: Share of ``memoryBudget`` the replay window may take: with 40 B per id only a budget under ~64 MB
#: makes it smaller than the guard's own bound (``REPLAY_WINDOW_MAX``, 393 216 ids, ~8.4 MB). A smaller
#: window narrows the time a flood can be checked for replays: older ids are then refused as replayed,
#: never let through.
REPLAY_BUDGET_SHARE: Final = 0.25
REPLAY_WINDOW_MIN: Final = 10_000


def replay_window_entries(memory_budget: int) -> int:
    """How many ids the replay guard may remember within ``memory_budget`` bytes."""
    share = int(memory_budget * REPLAY_BUDGET_SHARE) // REPLAY_ENTRY_BYTES
    return max(REPLAY_WINDOW_MIN, min(REPLAY_WINDOW_MAX, share))


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class BudgetReading:
    """One sample. Byte counts; ``disk_free`` maps each data directory to its filesystem's free bytes
    available to unprivileged users (``statvfs.f_bavail``); ``unflushed_bytes`` is what a flush would
    move out of RAM."""

    now: float
    rss_bytes: int
    rss_anon_bytes: int
    available_memory_bytes: int
    disk_free: Mapping[str, int]
    unflushed_bytes: int = 0


@dataclass(frozen=True, slots=True)
class QueueUsage:
    queue_id: str
    bytes: int
    depth: int


# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class FlushEarly:
    reason: str


@dataclass(frozen=True, slots=True)
class ShrinkCaches:
    reason: str


@dataclass(frozen=True, slots=True)
class HoldPublishers:
    """Stop (True) or resume (False) reading the connections that publish."""

    hold: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ShedOldest:
    """Drop the oldest items of ``queue_id`` until ``max_bytes`` payload bytes are freed."""

    queue_id: str
    max_bytes: int


@dataclass(frozen=True, slots=True)
class RefuseDurable:
    """Refuse (True) or accept again (False) new durable subscriptions."""

    refuse: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Pressure:
    """A pressure began (``active``) or ended. ``kind`` is ``memory`` or ``disk:<dir>``; ``detail`` is
    the human line for the log; ``actions`` counts what was done during a burst that just ended."""

    kind: str
    active: bool
    detail: str
    actions: int = 0


Action = FlushEarly | ShrinkCaches | ShedOldest | RefuseDurable | Pressure | HoldPublishers


def plan_shed(queues: Sequence[QueueUsage], need_bytes: int, protected: frozenset[str] = frozenset()
              ) -> list[ShedOldest]:
    """Free ``need_bytes`` from the largest queues: cut every queue above a common level down to it
    (water-filling), so one big backlog pays first and small queues keep their items. Queues in
    ``protected`` (the router's own records) are never shed."""
    if need_bytes <= 0:
        return []
    candidates = sorted((q for q in queues if q.queue_id not in protected and q.bytes > 0),
                        key=lambda q: (-q.bytes, q.queue_id))
    if not candidates:
        return []
    total = sum(q.bytes for q in candidates)
    if need_bytes >= total:
        return [ShedOldest(q.queue_id, q.bytes) for q in candidates]
    # Lower the level from the largest queue down until what lies above it covers the need.
    level = candidates[0].bytes
    above = 0  # bytes above `level` in the first i queues
    i = 0
    while True:
        i += 1
        next_level = candidates[i].bytes if i < len(candidates) else 0
        if above + i * (level - next_level) >= need_bytes:
            level -= -(-(need_bytes - above) // i)  # ceil: never shed less than asked
            break
        above += i * (level - next_level)
        level = next_level
    level = max(0, level)
    return [ShedOldest(q.queue_id, q.bytes - level) for q in candidates[:i] if q.bytes > level]


# ---------------------------------------------------------------------------------------------- policy


@dataclass(slots=True)
class _DiskState:
    active: bool = False
    low_water: int = 0
    actions: int = 0
    shed_bytes: int = 0


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """The budget watch's settings in bytes and seconds (``server/derive.py`` makes them from
    ``BudgetConfig``)."""

    memory_budget_bytes: int
    disk_reserve_bytes: int
    #: data directories whose filesystems are watched: queue store, persist store, WAVE database.
    data_dirs: tuple[str, str, str]
    sample_interval_s: float
    #: ``QueueConfig.onDiskFull = "drop-oldest"``: shed the oldest queued items below the reserve. Under
    #: ``"refuse"`` (False) nothing accepted is shed: the core refuses publishes that need storing.
    shed_at_reserve: bool = True

    @property
    def queue_dir(self) -> str:
        """The queue store's directory: the one whose queues are shed at the disk reserve."""
        return self.data_dirs[0]


@dataclass(slots=True)
class BudgetStats:
    """What the policy did, for status and metrics."""

    samples: int = 0
    early_flushes: int = 0
    cache_shrinks: int = 0
    shed_actions: int = 0
    shed_bytes_planned: int = 0
    memory_pressure: bool = False
    #: publishers held back now, and how many times they were
    publishers_held: bool = False
    publisher_holds: int = 0
    disk_pressure: dict[str, bool] = field(default_factory=dict)
    refusing_durable: bool = False


class BudgetPolicy:
    def __init__(self, memory_budget_bytes: int, disk_reserve_bytes: int, queue_dir: str,
                 protected: frozenset[str] = frozenset(), shed: bool = True) -> None:
        if memory_budget_bytes <= 0:
            raise ValueError(f"memory_budget_bytes={memory_budget_bytes} must be > 0")
        if disk_reserve_bytes < 0:
            raise ValueError(f"disk_reserve_bytes={disk_reserve_bytes} must be >= 0")
        self.memory_budget_bytes = memory_budget_bytes
        self.disk_reserve_bytes = disk_reserve_bytes
        self.queue_dir = queue_dir
        self.protected = protected
        self.shed = shed
        self.stats = BudgetStats()
        self._memory_actions = 0
        self._last_shrink: float | None = None
        #: publishers were held in this burst (the first sample over budget always holds them)
        self._held_once = False
        self._disk: dict[str, _DiskState] = {}

    @property
    def disk_margin_bytes(self) -> int:
        return max(MIN_MARGIN_BYTES, int(self.disk_reserve_bytes * HYSTERESIS_FRACTION))

    def evaluate(self, reading: BudgetReading, queues: Sequence[QueueUsage]) -> list[Action]:
        self.stats.samples += 1
        actions: list[Action] = []
        self._memory(reading, actions)
        for directory, free in reading.disk_free.items():
            self._disk_dir(directory, free, queues, actions)
        return actions

    def _memory(self, r: BudgetReading, out: list[Action]) -> None:
        budget = self.memory_budget_bytes
        st = self.stats
        if r.rss_anon_bytes > budget:
            if not st.memory_pressure:
                st.memory_pressure = True
                self._memory_actions = 0
                out.append(Pressure("memory", True, f"RssAnon {r.rss_anon_bytes // MIB} MB > BudgetConfig."
                                    f"memoryBudget {budget // MIB} MB (RSS {r.rss_bytes // MIB} MB, available "
                                    f"{r.available_memory_bytes // MIB} MB): holding publishers back, flushing "
                                    "early, shrinking caches"))
            if r.unflushed_bytes > 0 or not self._held_once:
                self._hold(True, f"RssAnon {r.rss_anon_bytes // MIB} MB over budget", out)
            else:
                self._hold(False, "nothing left unflushed: waiting frees no more", out)
            if r.unflushed_bytes > 0:
                out.append(FlushEarly(f"RssAnon over budget, {r.unflushed_bytes} bytes unflushed"))
                st.early_flushes += 1
                self._memory_actions += 1
            if self._last_shrink is None or r.now - self._last_shrink >= SHRINK_REPEAT_S:
                out.append(ShrinkCaches("RssAnon over budget"))
                self._last_shrink = r.now
                st.cache_shrinks += 1
                self._memory_actions += 1
        elif st.memory_pressure and r.rss_anon_bytes < budget * (1 - HYSTERESIS_FRACTION):
            st.memory_pressure = False
            self._last_shrink = None
            self._hold(False, f"RssAnon {r.rss_anon_bytes // MIB} MB back under 90% of the budget", out)
            self._held_once = False
            out.append(Pressure("memory", False, f"RssAnon {r.rss_anon_bytes // MIB} MB back under "
                                f"{int(budget * (1 - HYSTERESIS_FRACTION)) // MIB} MB", self._memory_actions))

    def _hold(self, hold: bool, reason: str, out: list[Action]) -> None:
        st = self.stats
        if hold == st.publishers_held:
            return
        st.publishers_held = hold
        out.append(HoldPublishers(hold, reason))
        if hold:
            st.publisher_holds += 1
            self._held_once = True
            self._memory_actions += 1

    def _disk_dir(self, directory: str, free: int, queues: Sequence[QueueUsage], out: list[Action]) -> None:
        state = self._disk.setdefault(directory, _DiskState())
        reserve = self.disk_reserve_bytes
        is_queue_fs = directory == self.queue_dir
        kind = f"disk:{directory}"
        if free < reserve:
            if not state.active:
                state.active = True
                state.actions = 0
                state.shed_bytes = 0
                state.low_water = free
                self.stats.disk_pressure[directory] = True
                need = reserve - free + self.disk_margin_bytes
                what = ("no queues live here: free space on it" if not is_queue_fs else
                        "shedding the oldest queued items and refusing new durable subscriptions" if self.shed
                        else "refusing publishes that need storing and new durable subscriptions")
                out.append(Pressure(kind, True, f"{free // MIB} MB free < BudgetConfig.diskReserve "
                                    f"{reserve // MIB} MB on {directory}: {what}"))
                if is_queue_fs:
                    self._shed(state, need, queues, out)
                    if not self.stats.refusing_durable:
                        self.stats.refusing_durable = True
                        out.append(RefuseDurable(True, f"{free // MIB} MB free on {directory}, "
                                                 f"below BudgetConfig.diskReserve {reserve // MIB} MB"))
            elif free < state.low_water - self.disk_margin_bytes:
                # Only a fall of a whole margin: filesystems drift by kilobytes all the time (logs), and
                # shedding an item per drift would trickle queues away for nothing.
                if is_queue_fs:
                    self._shed(state, state.low_water - free, queues, out)
                state.low_water = free
        elif state.active and free >= reserve + self.disk_margin_bytes:
            state.active = False
            self.stats.disk_pressure[directory] = False
            out.append(Pressure(kind, False, f"{free // MIB} MB free on {directory} again (shed "
                                f"{state.shed_bytes} bytes)", state.actions))
            if is_queue_fs and self.stats.refusing_durable:
                self.stats.refusing_durable = False
                out.append(RefuseDurable(False, f"{free // MIB} MB free on {directory}"))

    def _shed(self, state: _DiskState, need: int, queues: Sequence[QueueUsage], out: list[Action]) -> None:
        if not self.shed:
            return  # onDiskFull = "refuse": the core refuses new messages instead
        plan = plan_shed(queues, need, self.protected)
        out.extend(plan)
        planned = sum(a.max_bytes for a in plan)
        state.actions += len(plan)
        state.shed_bytes += planned
        self.stats.shed_actions += len(plan)
        self.stats.shed_bytes_planned += planned


# ---------------------------------------------------------------------------------------------- start-up fit


@dataclass(frozen=True, slots=True)
class FitInputs:
    """The configured worst case and what the machine has. Sizes in bytes."""

    memory_budget: int
    disk_reserve: int
    queue_dir: str
    subscription_max_bytes: int
    subscription_max_length: int
    trunk_max_bytes: int
    trunk_max_length: int
    trunk_queues: int
    max_map_bytes: int
    flush_bytes: int
    journal_max_bytes: int
    disk_free: Mapping[str, int]
    available_memory: int
    cgroup_memory_max: int | None = None
    #: deliveries one subscription hands a consumer before its acknowledgements, and their largest size
    inflight_window: int = 64
    max_frame_bytes: int = 256 * 1024
    #: ids the replay guard remembers (``replay_window_entries``)
    replay_window: int = REPLAY_WINDOW_MAX


@dataclass(slots=True)
class FitReport:
    #: what does not fit, each with what to change (logged as warnings).
    problems: list[str] = field(default_factory=list)
    #: figures worth knowing (logged at info).
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems


def _mb(n: float) -> str:
    return f"{n / MIB:.0f} MB"


def check_fit(f: FitInputs) -> FitReport:
    """Compare the worst case the configuration allows with free disk and available memory."""
    rep = FitReport()
    # Disk: a full trunk backlog (one trunk queue per uplink) must fit beside the reserve, plus at least
    # one full subscription queue. Subscription queues as a whole are bounded only by their number, so
    # the report says how many full ones fit rather than summing an impossible worst case.
    free_q = f.disk_free.get(f.queue_dir)
    if free_q is not None:
        usable = free_q - f.disk_reserve
        trunk = f.trunk_queues * f.trunk_max_bytes * STORED_BYTES_FACTOR
        sub = f.subscription_max_bytes * STORED_BYTES_FACTOR
        if usable <= 0:
            rep.problems.append(f"{f.queue_dir} has {_mb(free_q)} free, not more than BudgetConfig.diskReserve "
                                f"{_mb(f.disk_reserve)}: free space on it or lower diskReserve; publishes that "
                                "need storing will be refused (or, with onDiskFull = \"drop-oldest\", queued items "
                                "shed) and new durable subscriptions refused")
        else:
            if trunk > usable:
                most = int(usable / STORED_BYTES_FACTOR / max(1, f.trunk_queues) / MIB)
                rep.problems.append(
                    f"a full trunk backlog ({f.trunk_queues} uplink(s) x QueueConfig.trunkingQueueMaxSize "
                    f"{_mb(f.trunk_max_bytes)}, ~{_mb(trunk)} on disk) does not fit in the {_mb(usable)} free on "
                    f"{f.queue_dir} beyond BudgetConfig.diskReserve: lower trunkingQueueMaxSize to at most "
                    f"{most} or free space")
            room = (usable - trunk) / sub if sub else 0.0
            if room < 1:
                most = max(0, int((usable - trunk) / STORED_BYTES_FACTOR / MIB))
                rep.problems.append(
                    f"one full subscription queue (QueueConfig.subscriptionQueueMaxSize {_mb(f.subscription_max_bytes)}"
                    f", ~{_mb(sub)} on disk) does not fit in what is left on {f.queue_dir}: lower "
                    f"subscriptionQueueMaxSize to at most {most} or free space")
            else:
                rep.notes.append(f"{f.queue_dir}: {_mb(usable)} usable; room for {int(room)} full subscription "
                                 f"queue(s) beside {'a full trunk backlog' if f.trunk_queues else 'no trunk'}")
            if trunk + sub > f.max_map_bytes:
                rep.notes.append(f"the LMDB map maximum ({_mb(f.max_map_bytes)}) caps the queue store below the "
                                 "configured bounds; past it publishes are refused (or, with onDiskFull = "
                                 "\"drop-oldest\", the oldest backlog is shed: storage-full)")
    for directory, free in sorted(f.disk_free.items()):
        if directory != f.queue_dir and free < f.disk_reserve:
            rep.problems.append(f"{directory} has {_mb(free)} free, below BudgetConfig.diskReserve "
                                f"{_mb(f.disk_reserve)}: free space on it")
    # Memory: what the structures may hold at their bounds against the budget, and the budget plus the
    # tmpfs journal (RAM too) against what the machine has.
    parts = memory_worst_case(f)
    worst = sum(n for _what, n in parts)
    detail = ", ".join(f"{what} {_mb(n)}" for what, n in parts)
    if worst > f.memory_budget:
        rep.problems.append(
            f"BudgetConfig.memoryBudget {_mb(f.memory_budget)} is below the worst case the configured bounds "
            f"allow (~{_mb(worst)}: {detail}); past the budget publishers are held back until memory "
            "recovers: raise memoryBudget or lower flushSize / LimitsConfig.inflightWindow / maxFrameBytes / "
            "the queue lengths")
    need = f.memory_budget + f.journal_max_bytes
    if need > f.available_memory:
        rep.problems.append(
            f"BudgetConfig.memoryBudget {_mb(f.memory_budget)} plus the tmpfs crash journal "
            f"({_mb(f.journal_max_bytes)}) exceeds the {_mb(f.available_memory)} of memory available: lower "
            "memoryBudget (and queue lengths) or stop other services")
    if f.cgroup_memory_max is not None and f.cgroup_memory_max < need:
        rep.problems.append(
            f"the service's MemoryMax ({_mb(f.cgroup_memory_max)}) is below memoryBudget plus the journal "
            f"({_mb(need)}): the kernel would kill the router before the budget watch acts; set MemoryMax to "
            f"about twice memoryBudget ({_mb(2 * f.memory_budget)})")
    rep.notes.append(f"memory: budget {_mb(f.memory_budget)} RssAnon, worst case ~{_mb(worst)} ({detail}; "
                     f"plus one delivery window per other subscriber that stops reading), "
                     f"{_mb(f.available_memory)} available")
    return rep


def memory_worst_case(f: FitInputs) -> list[tuple[str, int]]:
    """RssAnon at the configured bounds, part by part: the bounds the router enforces, not estimates of
    load. Unflushed payloads: the store holds publishers back at ``RAM_LIMIT_FLUSHES`` x ``flushSize``.
    Delivery window: one subscriber that stops reading holds ``inflightWindow`` frames of up to
    ``maxFrameBytes`` in its connection's buffers."""
    return [
        ("baseline", BASE_RSS_ANON_BYTES),
        ("unflushed payloads", RAM_LIMIT_FLUSHES * f.flush_bytes),
        ("queue bookkeeping", (f.trunk_queues * f.trunk_max_length + f.subscription_max_length)
         * RAM_PER_ITEM_BYTES),
        ("replay window", f.replay_window * REPLAY_ENTRY_BYTES),
        ("delivery window", f.inflight_window * f.max_frame_bytes),
    ]
