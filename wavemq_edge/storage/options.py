"""Parameters of the storage layer: small frozen dataclasses with documented defaults.

The daemon shell maps ``[QueueConfig]`` and ``[RoutingConfig]`` onto these (``server/derive.py``); storage
imports nothing of the config layer but its units. Every bound carries its unit in its name. Storage
reads no environment variable: where the crash journal lives is a parameter (``journal_dir``), which the
daemon resolves from its environment (``config.Environment.journal_dir``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from ..config.units import MIB

__all__ = [
    "DEFAULT_MAP_SIZE",
    "DEFAULT_MAX_MAP_SIZE",
    "FLUSH_BYTES",
    "FLUSH_INTERVAL_S",
    "JOURNAL_DIR_UNSET",
    "QUEUE_EXPIRY_S",
    "SUBSCRIPTION_LIMITS",
    "TRUNK_LIMITS",
    "DedupOptions",
    "QueueKind",
    "QueueLimits",
    "StoreOptions",
]

_IS_64BIT: Final = struct.calcsize("P") == 8

#: ``queueExpiry`` seed value (wavemq-behaviour.md §7): a subscription queue nobody consumed for this
#: long is removed, and an item older than this is dropped (reason ``expired``).
QUEUE_EXPIRY_S: Final = 86400.0
#: ``flushInterval`` seed value: the longest an accepted item waits in RAM (+ tmpfs journal) before it
#: is written to flash. It is also the power-cut loss window.
FLUSH_INTERVAL_S: Final = 30.0
#: Unflushed backlog bytes that trigger an early flush. Batches of 1000-5000 small items gave ~1.1x
#: device bytes per payload byte on py-lmdb 3.0 (ci/bench/bench_storage.py); 4 MiB keeps RAM bounded on a 1 GB Pi.
FLUSH_BYTES: Final = 4 * MIB
#: Initial LMDB map. Without ``writemap`` the file only grows as pages are used, so the map is just
#: address space; a 32-bit ARM process has 2-3 GB of address space in all, so it stays well below that.
DEFAULT_MAP_SIZE: Final = (256 if _IS_64BIT else 128) * MIB
#: The map grows by doubling on ``MapFullError`` up to this; past it the oldest backlog is shed.
DEFAULT_MAX_MAP_SIZE: Final = (8192 if _IS_64BIT else 512) * MIB


#: Why a store with ``journal_dir=None`` is refused at open (the message of the ``ValueError``).
JOURNAL_DIR_UNSET: Final = (
    "journal_dir is not set: pass the crash journal's directory (the daemon uses "
    "config.Environment.journal_dir) or \"\" to run without a journal"
)


class QueueKind(str, Enum):
    """What a queue feeds. Trunk queues (site -> designated router) never expire for idleness."""

    SUBSCRIPTION = "subscription"
    TRUNK = "trunk"


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """Bounds of one queue. ``QueueStore.create_queue`` on an existing queue replaces them, so a changed
    configuration applies at the router's next start (the original kept a queue's first bounds).

    ``max_length`` items and ``max_bytes`` payload bytes: at a bound the oldest item is dropped
    (reasons ``overflow-count`` / ``overflow-bytes``). ``expiry_s``: an item older than this is dropped
    (``expired``) and, for subscription queues, a queue with no consumer activity (``touch``/``peek``/
    ``ack``) for this long is removed. ``0`` disables age expiry.
    """

    max_length: int
    max_bytes: int
    expiry_s: float = QUEUE_EXPIRY_S

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"QueueLimits.max_length={self.max_length} must be >= 1")
        if self.max_bytes < 1:
            raise ValueError(f"QueueLimits.max_bytes={self.max_bytes} must be >= 1")
        if self.expiry_s < 0:
            raise ValueError(f"QueueLimits.expiry_s={self.expiry_s} must be >= 0 (0 disables expiry)")


#: ``subscriptionQueueMaxLength`` 10000, ``subscriptionQueueMaxSize`` 100 MiB, ``queueExpiry`` 86400 s.
SUBSCRIPTION_LIMITS: Final = QueueLimits(max_length=10_000, max_bytes=100 * MIB, expiry_s=QUEUE_EXPIRY_S)
#: ``trunkingQueueMaxLength`` 100000, ``trunkingQueueMaxSize`` 1000 MiB; items still age out after
#: ``queueExpiry`` but the queue itself never expires.
TRUNK_LIMITS: Final = QueueLimits(max_length=100_000, max_bytes=1000 * MIB, expiry_s=QUEUE_EXPIRY_S)


@dataclass(frozen=True, slots=True)
class DedupOptions:
    """Bounds of the duplicate-suppression window: ids are forgotten after ``max_age_s`` or when more
    than ``max_ids`` are held (oldest first). 16384 ids cover many trunk in-flight windows (resends
    only repeat the unacked window) at ~100 bytes of RAM each."""

    max_ids: int = 16384
    max_age_s: float = 3600.0
    max_id_bytes: int = 64


#: The router's ``StoreOptions.flush_settle_s``.
FLUSH_SETTLE_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Where and how a queue store (one LMDB environment) lives.

    ``journal_dir``: directory of the volatile crash journal (tmpfs); ``""`` disables the journal (a
    process crash then loses up to one flush window, like the original). Each store uses its own
    sub-directory named after the store id. ``None`` means "not chosen": opening a store refuses it
    (``JOURNAL_DIR_UNSET``), so a caller cannot lose crash safety by forgetting it; the daemon passes
    ``config.Environment.journal_dir`` ($RUNTIME_DIRECTORY ...) when ``QueueConfig.journalDir`` is empty.
    """

    path: str
    journal_dir: str | None = None
    flush_interval_s: float = FLUSH_INTERVAL_S
    flush_bytes: int = FLUSH_BYTES
    #: Journal segment size that forces a flush (which rotates the journal) even when every item was
    #: delivered in-window and nothing needs writing: bounds the tmpfs RAM the journal uses.
    journal_max_bytes: int = 16 * MIB
    #: A flush leaves items younger than this for the next one (they are in the journal): at a steady
    #: flow the few messages in flight to a consumer at that instant are acknowledged a moment later,
    #: and writing them cost a whole commit (~30 KB) per flush. A power cut can lose this much more
    #: than the flush window. The router uses ``FLUSH_SETTLE_S``; 0 writes every live item.
    flush_settle_s: float = 0.0
    map_size: int = DEFAULT_MAP_SIZE
    max_map_size: int = DEFAULT_MAX_MAP_SIZE
    #: LMDB ``max_dbs``: one named database per queue, plus a few of ours.
    max_queues: int = 1024
    #: ``last_active`` of a queue is written to flash only when it moved by more than this, so an
    #: active consumer does not cost a header write every flush. Idle expiry after a restart may come
    #: this much early.
    touch_persist_granularity_s: float = 3600.0
    dedup: DedupOptions = field(default_factory=DedupOptions)
    #: When a flush fails because the map or the disk is full: ``False`` (``onDiskFull = "refuse"``)
    #: keeps every accepted item in RAM and journal and retries (the router refuses new ones meanwhile);
    #: ``True`` (``"drop-oldest"``) sheds the oldest quarter of the largest queue, counted ``storage-full``.
    shed_when_full: bool = False

    def __post_init__(self) -> None:
        if self.flush_interval_s <= 0:
            raise ValueError(f"StoreOptions.flush_interval_s={self.flush_interval_s} must be > 0")
        if self.flush_bytes < 1:
            raise ValueError(f"StoreOptions.flush_bytes={self.flush_bytes} must be >= 1")
        if self.map_size < MIB or self.max_map_size < self.map_size:
            raise ValueError(
                f"StoreOptions.map_size={self.map_size} must be >= 1 MiB and <= max_map_size={self.max_map_size}"
            )
        if self.max_queues < 1:
            raise ValueError(f"StoreOptions.max_queues={self.max_queues} must be >= 1")
