"""How ``wavemq-edge status`` shows a STATUS reply to a person (pure: a dict in, text out).

The reply is a flat-ish map (``router/session.py`` ``core_status`` plus ``OpsRuntime.status_extra``).
Known fields are grouped into readable lines; any field this module does not know (for example the
uplink fields the tiering issue adds) is still printed, generically, so nothing the router reports is
hidden from the operator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Final

__all__ = ["derive", "render_status"]

#: Rows of the per-queue table shown; the router sends the largest first.
MAX_QUEUE_ROWS: Final = 20


def _size(n: object) -> str:
    if not isinstance(n, int):
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _duration(seconds: object) -> str:
    if not isinstance(seconds, int):
        return "?"
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return f"{d}d {h:02d}h {m:02d}m" if d else f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def _ms(us: object) -> str:
    return f"{us / 1000:.1f} ms" if isinstance(us, int) else "?"


def _flat(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_flat(v)}" for k, v in sorted(value.items())) or "-"
    if isinstance(value, list):
        return "; ".join(_flat(v) for v in value) or "-"
    return str(value)


def derive(status: Mapping[str, object]) -> dict[str, object]:
    """The reply plus figures computed client-side (frames carry no floats)."""
    out = dict(status)
    hits, misses = status.get("verifier_hits"), status.get("verifier_misses")
    if isinstance(hits, int) and isinstance(misses, int):
        out["verifier_hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
    return out


def render_status(status: Mapping[str, object]) -> str:
    s = derive(status)
    shown: set[str] = set()

    def get(key: str) -> object:
        shown.add(key)
        return s.get(key)

    lines: list[str] = []

    def row(label: str, text: str) -> None:
        lines.append(f"{label:<18}{text}")

    row("router", f"{get('router_id')}  version {get('version')}")
    started = get("started_at")
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)) if isinstance(started, int) else "?"
    up = get("uptime_s")
    row("uptime", f"{_duration(up)} (uptime_s={up}, since {since})")
    row("agents", f"{get('connections')} connections, {get('subscriptions')} subscriptions")
    mem = get("memory")
    if isinstance(mem, Mapping):
        over = "  OVER BUDGET" if mem.get("over_budget") else ""
        row("memory", f"RSS {_size(mem.get('rss_bytes'))}, RssAnon {_size(mem.get('rss_anon_bytes'))} of budget "
            f"{_size(mem.get('budget_bytes'))}; {_size(mem.get('available_bytes'))} available{over}")
    disk = get("disk")
    if isinstance(disk, Mapping):
        for i, (d, info) in enumerate(sorted(disk.items())):
            if isinstance(info, Mapping):
                low = "  LOW" if info.get("low") else ""
                row("disk" if i == 0 else "", f"{d}: {_size(info.get('free_bytes'))} free, reserve "
                    f"{_size(info.get('reserve_bytes'))}{low}")
    full = get("disk_full")
    if isinstance(full, Mapping):
        why = f": {full.get('reason')}" if full.get("reason") else ""
        row("disk full", f"{str(full.get('state')).upper()} (onDiskFull = {full.get('policy')}), "
            f"{full.get('refused')} publishes refused{why}")
    row("queues", f"{get('queues')} queues, {get('queued_items')} items, {_size(get('queued_bytes'))}; "
        f"{get('unflushed_items')} unflushed")
    row("drops", _flat(get("drops")))
    budget = get("budget")
    if isinstance(budget, Mapping):
        refusing = "REFUSING new durable subscriptions; " if budget.get("refusing_durable") else ""
        row("budget", f"{refusing}early flushes {budget.get('early_flushes')}, cache shrinks "
            f"{budget.get('cache_shrinks')}, shed {budget.get('shed_items')} items, durable refused "
            f"{budget.get('refused_durable')}, samples {budget.get('samples')}")
    row("messages", f"published {get('published')}, duplicates {get('duplicates')}, delivered "
        f"{get('delivered')}, redelivered {get('redelivered')}, acked {get('acked')}")
    row("refused", _flat(get("refused")))
    rate = get("verifier_hit_rate")
    row("verifier hit rate", f"{rate * 100:.1f}%" if isinstance(rate, float) else "- (no lookups yet)")
    get("verifier_hits")
    get("verifier_misses")
    fw = get("flush_write_us")
    fw_text = (f"total {_ms(fw.get('total'))}, last {_ms(fw.get('last'))}, max {_ms(fw.get('max'))}"
               if isinstance(fw, Mapping) else "?")
    row("flushes", f"{get('flushes')} ({get('failed_flushes')} failed)")
    row("flush write", f"{fw_text} (LMDB transaction + fdatasync)")
    _journal_systemd_uplinks(get, row)
    metrics = get("metrics")
    if metrics:
        row("metrics", f"http://{metrics}/metrics")
    for key in sorted(k for k in s if k not in shown and k != "queue_detail"):
        row(key, _flat(s[key]))
    lines += _queue_table(s.get("queue_detail"))
    return "\n".join(lines)


def _journal_systemd_uplinks(get: Callable[[str], object], row: Callable[[str, str], None]) -> None:
    journal = get("journal")
    if isinstance(journal, Mapping):
        tmpfs = {True: "tmpfs", False: "NOT tmpfs", None: "?"}.get(journal.get("on_tmpfs"), "?")
        row("journal", f"{journal.get('dir')} ({tmpfs}, {'ok' if journal.get('ok') else 'BROKEN'})"
            if journal.get("enabled") else "disabled")
    sd = get("systemd")
    if isinstance(sd, Mapping):
        wd = sd.get("watchdog_interval_ms")
        row("systemd", ("notify on" if sd.get("notify") else "not under systemd")
            + (f", watchdog every {wd} ms: {sd.get('watchdog_pings')} pings, {sd.get('watchdog_withheld')} withheld"
               if wd else ""))
    uplinks = get("uplinks")
    if isinstance(uplinks, list):
        for i, u in enumerate(uplinks):
            if isinstance(u, Mapping):
                t = u.get("since")
                since_u = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if isinstance(t, int) and t else "-"
                row("uplinks" if i == 0 else "", f"{u.get('namespace')} {u.get('address')}: {u.get('state')} since "
                    f"{since_u}, backlog {u.get('backlog')}, rtt {u.get('rtt_ms')} ms, reconnects "
                    f"{u.get('reconnects')}, last error {u.get('last_error') or '-'}")


def _queue_table(detail: object) -> list[str]:
    if not isinstance(detail, list) or not detail:
        return []
    lines = ["", f"{'QUEUE':<40} {'KIND':<12} {'DEPTH':>8} {'BYTES':>10}  DROPS"]
    for q in detail[:MAX_QUEUE_ROWS]:
        if isinstance(q, Mapping):
            lines.append(f"{q.get('id')!s:<40} {q.get('kind')!s:<12} {q.get('depth')!s:>8} "
                         f"{_size(q.get('bytes')):>10}  {_flat(q.get('drops'))}")
    if len(detail) > MAX_QUEUE_ROWS:
        lines.append(f"... {len(detail) - MAX_QUEUE_ROWS} more (wavemq-edge status --json)")
    return lines
