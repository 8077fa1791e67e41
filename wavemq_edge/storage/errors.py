"""Storage exceptions: one base, ``StorageError``, and a subclass per failure a caller may handle.

Messages name the path, the value and the limit involved, so one log line is enough to act on.
``MapFullError`` from LMDB never escapes: the adapter grows the map, and past ``max_map_size`` (or on a
full disk) the flush fails with ``StorageFullError`` and the store keeps everything for the retry, or
sheds the oldest backlog with the counted reason ``storage-full`` under ``StoreOptions.shed_when_full``
(see ``queue_store.py``).
"""

from __future__ import annotations

__all__ = [
    "CorruptStoreError",
    "JournalError",
    "QueueExistsError",
    "StorageError",
    "StoreLockedError",
    "TooManyQueuesError",
    "UnexpectedFilesError",
    "UnknownQueueError",
]


class StorageError(Exception):
    """Base class of every error raised by ``wavemq_edge.storage``."""


class CorruptStoreError(StorageError):
    """The durable store cannot be read as a store of this format (wrong magic, bad key, bad header).

    The store is left untouched: we never "repair" a durable store by deleting it.
    """


class UnexpectedFilesError(StorageError):
    """The data directory holds files that are not ours, so we refuse to create a store over them."""


class StoreLockedError(StorageError):
    """Another process holds the store's lock file (two routers on one data directory)."""


class JournalError(StorageError):
    """The volatile journal could not be written or read (tmpfs full, bad header). Never fatal to the
    durable store: on write failure the store flushes early and continues without crash protection
    until a fresh journal segment opens."""


class UnknownQueueError(StorageError, KeyError):
    """An operation named a queue id that is not open."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown queue"


class QueueExistsError(StorageError):
    """``create_queue`` with ``exist_ok=False`` named an existing queue."""


class TooManyQueuesError(StorageError):
    """Creating one more queue would exceed ``StoreOptions.max_queues`` (LMDB ``max_dbs``)."""
