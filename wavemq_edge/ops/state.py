"""The narrow view ops has of the running server (uvicorn's ``ServerState`` idea).

Ops samples memory and disk, keeps systemd informed and renders status and metrics; for that it reads
a few figures of the server (``ServerState``) and asks it for three things (``ServerControls``). It never
holds the server, the core or the store itself, so the daemon shell sits above ops and nothing imports
upward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..router import CoreStatus
from ..router.trunk import UplinkStatus
from ..storage import QueueStats

__all__ = ["FlushTimes", "ServerControls", "ServerState", "TrunkSummary"]


@dataclass(slots=True)
class FlushTimes:
    """Time spent in flush writes (transaction + fdatasync), seconds; kept by the server."""

    total_s: float = 0.0
    last_s: float = 0.0
    max_s: float = 0.0
    #: loop time the flush in flight started (a flusher stalled past the watchdog is unhealthy)
    started: float | None = None


@dataclass(frozen=True, slots=True)
class TrunkSummary:
    uplinks: tuple[UplinkStatus, ...]
    sites_connected: int
    designated_for: tuple[str, ...]


class ServerState(Protocol):
    """What ops reads of the running server."""

    @property
    def flush_times(self) -> FlushTimes: ...

    def core_status(self, now: float) -> CoreStatus: ...

    def queue_stats(self) -> Sequence[QueueStats]:
        """Every queue in the store."""
        ...

    def agent_connections(self) -> int: ...

    def agent_admission(self) -> Mapping[str, Mapping[str, int]]:
        """Agent connections refused, evicted and timed out, each by reason (``net/slots.py``)."""
        ...

    def trunk(self) -> TrunkSummary | None:
        """None when this router has neither uplinks nor designated namespaces."""
        ...


class ServerControls(Protocol):
    """What the budget watch may ask of the server."""

    def request_flush(self) -> bool:
        """Start a flush now; False if one is running."""
        ...

    def shed_oldest(self, queue_id: str, max_bytes: int) -> int:
        """Drop the oldest items of ``queue_id`` (counted as budget drops); returns how many."""
        ...

    def refuse_new_durable(self, reason: str | None) -> None: ...

    def hold_publishers(self, held: bool) -> None:
        """Stop (True) or resume reading the connections that publish (memory back-pressure)."""
        ...
