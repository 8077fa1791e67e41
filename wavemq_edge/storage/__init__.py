"""Storage: bounded ring-buffer queues, persisted messages and a dedup window on LMDB.

See ``README.md`` in this directory for the model, the durability guarantee and the router-facing API.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (wavemq_edge/lazy.py)

if TYPE_CHECKING:
    from .backend import Backend, FlushBatch, LmdbQueueBackend, MemoryBackend
    from .dedup import DedupWindow
    from .disk_space import DiskSpace, free_space, stored_bytes
    from .errors import (
        CorruptStoreError,
        JournalError,
        QueueExistsError,
        StorageError,
        StoreLockedError,
        TooManyQueuesError,
        UnexpectedFilesError,
        UnknownQueueError,
    )
    from .journal import JournalReport, is_tmpfs
    from .lmdb_env import StorageFullError, StorageWriteError
    from .options import (
        FLUSH_BYTES,
        FLUSH_INTERVAL_S,
        QUEUE_EXPIRY_S,
        SUBSCRIPTION_LIMITS,
        TRUNK_LIMITS,
        DedupOptions,
        QueueKind,
        QueueLimits,
        StoreOptions,
    )
    from .persist import PersistOptions, PersistStore, QueryResult
    from .queue_store import FlushOutcome, QueueExpired, QueueStore, StoreStats
    from .ring_queue import DropReason, QueueStats
else:
    from ..lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(__name__, {
        ".backend": ("Backend", "FlushBatch", "LmdbQueueBackend", "MemoryBackend"),
        ".dedup": ("DedupWindow",),
        ".disk_space": ("DiskSpace", "free_space", "stored_bytes"),
        ".errors": (
            "CorruptStoreError", "JournalError", "QueueExistsError", "StorageError", "StoreLockedError",
            "TooManyQueuesError", "UnexpectedFilesError", "UnknownQueueError",
        ),
        ".journal": ("JournalReport", "is_tmpfs"),
        ".lmdb_env": ("StorageFullError", "StorageWriteError"),
        ".options": (
            "FLUSH_BYTES", "FLUSH_INTERVAL_S", "QUEUE_EXPIRY_S", "SUBSCRIPTION_LIMITS", "TRUNK_LIMITS", "DedupOptions",
            "QueueKind", "QueueLimits", "StoreOptions",
        ),
        ".persist": ("PersistOptions", "PersistStore", "QueryResult"),
        ".queue_store": ("FlushOutcome", "QueueExpired", "QueueStore", "StoreStats"),
        ".ring_queue": ("DropReason", "QueueStats"),
    })

__all__ = [
    "FLUSH_BYTES",
    "FLUSH_INTERVAL_S",
    "QUEUE_EXPIRY_S",
    "SUBSCRIPTION_LIMITS",
    "TRUNK_LIMITS",
    "Backend",
    "CorruptStoreError",
    "DedupOptions",
    "DedupWindow",
    "DiskSpace",
    "DropReason",
    "FlushBatch",
    "FlushOutcome",
    "JournalError",
    "JournalReport",
    "LmdbQueueBackend",
    "MemoryBackend",
    "PersistOptions",
    "PersistStore",
    "QueryResult",
    "QueueExistsError",
    "QueueExpired",
    "QueueKind",
    "QueueLimits",
    "QueueStats",
    "QueueStore",
    "StorageError",
    "StorageFullError",
    "StorageWriteError",
    "StoreLockedError",
    "StoreOptions",
    "StoreStats",
    "TooManyQueuesError",
    "UnexpectedFilesError",
    "UnknownQueueError",
    "free_space",
    "is_tmpfs",
    "stored_bytes",
]
