"""What a STATUS reply shows an agent other than the local operator, and how status figures travel.

An allow-list (``SUMMARY_KEYS``), so a figure added to the snapshot later is not shown to everyone by
default; ``wire_safe`` turns the floats frames cannot carry into integers or text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["SUMMARY_KEYS", "UPLINK_SUMMARY_KEYS", "status_summary", "wire_safe"]

#: The STATUS reply's keys that any authenticated agent may see (an allow-list, so a figure added to the
#: snapshot later is not shown to everyone by default): counts and states, no paths (disk, journal),
#: queue ids, namespaces or addresses. Any freshly made key can authenticate.
SUMMARY_KEYS: Final = frozenset({
    "version", "router_id", "uptime_s", "started_at", "connections", "subscriptions", "queues", "queued_items",
    "queued_bytes", "unflushed_items", "flushes", "failed_flushes", "drops", "published", "duplicates",
    "delivered", "redelivered", "acked", "refused", "verifier_hits", "verifier_misses", "budget",
    "flush_write_us", "sites_connected", "admission", "memory", "systemd",
})
#: Per uplink: its state and counts, not the designated router's address or namespace.
UPLINK_SUMMARY_KEYS: Final = frozenset({"state", "since", "backlog", "rtt_ms", "reconnects", "sent", "acked",
                                        "refused", "delivered_down", "live"})


def status_summary(full: Mapping[str, object]) -> dict[str, object]:
    """What a STATUS reply shows an agent other than the local operator (``SUMMARY_KEYS``)."""
    out: dict[str, object] = {k: v for k, v in full.items() if k in SUMMARY_KEYS}
    uplinks = full.get("uplinks")
    if isinstance(uplinks, list):
        out["uplinks"] = [{k: v for k, v in u.items() if k in UPLINK_SUMMARY_KEYS} for u in uplinks
                          if isinstance(u, Mapping)]
    out["detail"] = "summary"
    return out


def wire_safe(value: object) -> object:
    """Frames carry no floats (the codec refuses them from peers, so we send none): a status figure
    like an RTT becomes an integer when it is whole, else its text with three decimals."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else f"{value:.3f}"
    if isinstance(value, dict):
        return {k: wire_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [wire_safe(v) for v in value]
    return value
