"""The disk check of a publish: answer OK only for what can be kept (``QueueConfig.onDiskFull``).

Theory of operation
-------------------
A publish is answered OK once it is in every matching queue (and the persisted store); from then on the
router has promised to keep it. Under ``onDiskFull = "refuse"`` (the default) the core asks this guard
*before* accepting a message that needs storing, and refuses it with ``STORAGE_FULL`` (633) when it
would not fit:

    free bytes of the store's filesystem (statvfs, now)
      - BudgetConfig.diskReserve - COMMIT_SLACK_BYTES
      - what is accepted but not yet flushed, as it will be stored (unflushed bytes x stored/payload)
      - this message, as it will be stored, once per queue it goes to (and once in the persist store)
    < 0  ->  refused

Stores on one filesystem are charged against one free figure. The stored size of an item follows
LMDB's layout (``storage.stored_bytes``: a 2 KiB message takes a 4 KiB overflow page); the pending
bytes are charged at the stored/payload ratio of recent messages. While a store's last flush failed
(the disk or the map turned out full after all, or the card fails) every message that needs storing is
refused: what was accepted stays in RAM and the tmpfs journal and the flush is retried with back-off,
so nothing answered OK is dropped for want of room; once a flush succeeds publishes are accepted again.
A message no queue wants and that is not persisted needs no room and is never refused here.

Under ``"drop-oldest"`` nothing is refused here: the budget watch sheds the oldest queued items at the
reserve (``budget``) and a full store sheds its oldest backlog (``storage-full``), counted.

The first refusal of a burst is logged (``event=disk_full_refusing``), and the first acceptance after
it (``event=disk_full_accepting refused=N``). Sans-I/O apart from ``probe`` (``storage.free_space``, a
statvfs of a store's directory), asked at most every ``SAMPLE_S`` or after each flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from ..config.units import MIB
from ..storage import DiskSpace, free_space, stored_bytes

__all__ = ["COMMIT_SLACK_BYTES", "DiskGuard", "DiskState", "OnDiskFull", "StoreRoom"]

log = logging.getLogger("wavemq_edge.router")

#: Room kept beyond the reserve for what a commit writes besides items: copied branch pages, the free
#: list, meta pages. A flush of ``flushSize`` (4 MB) items rewrites a few dozen pages.
COMMIT_SLACK_BYTES: Final = 256 * 1024
#: Stored/payload ratio assumed before any message was seen (a 2 KiB message takes a 4 KiB page).
INITIAL_RATIO: Final = 2.0
#: A filesystem's free space is read again after this long (seconds) even without a flush: another
#: process may be filling it. Within it the reserve absorbs what others write.
SAMPLE_S: Final = 0.25
#: Weight of the newest message in the running stored/payload ratio.
RATIO_WEIGHT: Final = 0.01
#: Bytes a persisted message's key takes (namespace and URI; URIs are short).
PERSIST_KEY_BYTES: Final = 128
#: Persisted messages are inserted in URI order, not appended: page splits leave leaves ~70% full.
PERSIST_FILL: Final = 0.7


class OnDiskFull(Enum):
    """``QueueConfig.onDiskFull``."""

    REFUSE = "refuse"
    DROP_OLDEST = "drop-oldest"


class _Located(Protocol):
    @property
    def path(self) -> str: ...


class StoreRoom(Protocol):
    """What the guard reads of a store (``QueueStore``, ``PersistStore``)."""

    @property
    def options(self) -> _Located: ...

    @property
    def unflushed_bytes(self) -> int: ...

    @property
    def flush_failure(self) -> str | None: ...

    @property
    def flushes(self) -> int: ...

    @property
    def failed_flushes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DiskState:
    """The guard's figures for status: ``state`` is ``ok``, ``refusing`` (publishes that need storing are
    refused) or ``low`` (``drop-oldest``: below the reserve, the budget watch sheds)."""

    policy: str
    state: str
    free_bytes: int | None
    reserve_bytes: int
    unflushed_bytes: int
    refused: int
    reason: str | None

    def reply(self) -> dict[str, object]:
        return {"policy": self.policy, "state": self.state, "free_bytes": self.free_bytes,
                "reserve_bytes": self.reserve_bytes, "unflushed_bytes": self.unflushed_bytes,
                "refused": self.refused, "reason": self.reason}


class DiskGuard:
    def __init__(self, reserve_bytes: int, policy: OnDiskFull, queues: StoreRoom, persist: StoreRoom | None = None,
                 probe: Callable[[str], DiskSpace | None] = free_space) -> None:
        """``probe``: a directory's filesystem room (``storage.free_space``; tests pass a fake)."""
        self.probe = probe
        self.reserve_bytes = reserve_bytes
        self.policy = policy
        self._queues = queues
        self._persist = persist
        self._ratio = INITIAL_RATIO
        #: publishes refused for room
        self.refused = 0
        #: why the last message that needed storing was refused; None once one is accepted again
        self.last_reason: str | None = None
        self._last_need = (0, 0)
        self._burst = 0
        #: store -> (its flush count, monotonic time, free space) of the last statvfs
        self._samples: dict[int, tuple[int, float, DiskSpace | None]] = {}

    def check(self, size: int, queue_copies: int, persist: bool, now: float) -> str | None:
        """Why a message of ``size`` bytes going to ``queue_copies`` queues (and the persisted store)
        cannot be kept, or None when it can (or the policy is ``drop-oldest``). ``now``: the caller's
        monotonic clock (a filesystem's free space is read again after ``SAMPLE_S`` or a flush)."""
        if self.policy is not OnDiskFull.REFUSE:
            return None
        persist_store = self._persist if persist else None
        if queue_copies <= 0 and persist_store is None:
            return None
        item = stored_bytes(size)
        self._ratio += RATIO_WEIGHT * (item / max(1, size) - self._ratio)
        persisted = stored_bytes(size, key=PERSIST_KEY_BYTES, value_header=0, fill=PERSIST_FILL)
        need = (queue_copies * item, persisted if persist_store is not None else 0)
        reason = self._reason(*need, now=now)
        if reason is not None:
            self._last_need = need
            self.refused += 1
            if self.last_reason is None:
                self._burst = self.refused - 1
                log.warning("event=disk_full_refusing policy=refuse reason=%r", reason)
        elif self.last_reason is not None:
            log.info("event=disk_full_accepting refused=%d", self.refused - self._burst)
        self.last_reason = reason
        return reason

    def _space(self, store: StoreRoom, now: float | None) -> DiskSpace | None:
        """The store's free space: read now, or the sample taken less than ``SAMPLE_S`` ago if no flush
        completed since (a flush moves bytes from "unflushed" into the file: the two must be read
        together). Between samples the bytes accepted meanwhile are charged as unflushed."""
        if now is None:
            return self.probe(store.options.path)
        generation = store.flushes + store.failed_flushes
        cached = self._samples.get(id(store))
        if cached is not None and cached[0] == generation and 0 <= now - cached[1] < SAMPLE_S:
            return cached[2]
        space = self.probe(store.options.path)
        self._samples[id(store)] = (generation, now, space)
        return space

    def _reason(self, queue_need: int, persist_need: int, any_failure: bool = False,
                now: float | None = None) -> str | None:
        stores: list[tuple[str, StoreRoom, int]] = [("queue store", self._queues, queue_need)]
        if self._persist is not None:
            stores.append(("persist store", self._persist, persist_need))
        for name, store, need in stores:
            failure = store.flush_failure
            if failure is not None and (need > 0 or any_failure):
                return f"the {name}'s last write failed ({failure}); retrying, accepted messages are kept"
        charged: dict[int, list[int]] = {}  # device -> [free, bytes to write]
        for _name, store, need in stores:
            space = self._space(store, now)
            if space is None:
                continue
            entry = charged.setdefault(space.device, [space.free_bytes, 0])
            entry[1] += int(store.unflushed_bytes * self._ratio) + need
        for free, to_write in charged.values():
            if free - self.reserve_bytes - COMMIT_SLACK_BYTES - to_write < 0:
                return (f"{free / MIB:.1f} MB free on the store's disk, {to_write / MIB:.1f} MB to write, "
                        f"BudgetConfig.diskReserve {self.reserve_bytes / MIB:.0f} MB")
        return None

    def state(self) -> DiskState:
        """The figures now (asks the filesystems: for status, not per message). ``refusing`` while a
        store's last flush failed, or while the last refused message would still not fit."""
        stores = (self._queues,) if self._persist is None else (self._queues, self._persist)
        spaces = [s for s in (self._space(store, None) for store in stores) if s is not None]
        free = min((s.free_bytes for s in spaces), default=None)
        unflushed = self._queues.unflushed_bytes + (self._persist.unflushed_bytes if self._persist else 0)
        reason = self._reason(*(self._last_need if self.last_reason is not None else (0, 0)), any_failure=True)
        if self.policy is OnDiskFull.REFUSE:
            state = "refusing" if reason is not None else "ok"
        else:
            state = "low" if free is not None and free < self.reserve_bytes else "ok"
            reason = None
        return DiskState(self.policy.value, state, free, self.reserve_bytes, unflushed, self.refused, reason)
