"""The values a queue store hands out: flush outcomes, expired queues and whole-store figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["FlushOutcome", "QueueExpired", "StoreStats"]


class FlushOutcome(Enum):
    OK = "ok"
    FAILED = "failed"
    STORAGE_FULL = "storage-full"


@dataclass(frozen=True, slots=True)
class QueueExpired:
    """``handle_timer`` removed a subscription queue nobody consumed for ``expiry_s``."""

    queue_id: str
    idle_s: float


@dataclass(frozen=True, slots=True)
class StoreStats:
    queues: int
    items: int
    bytes: int
    unflushed_items: int
    unflushed_bytes: int
    flushes: int
    empty_flushes: int
    failed_flushes: int
    commits: int
    items_written: int
    bytes_written: int
    journal_enabled: bool
    journal_ok: bool
    journal_on_tmpfs: bool | None
    journal_dir: str | None
    recovered_records: int
    drops: dict[str, int] = field(default_factory=dict)
