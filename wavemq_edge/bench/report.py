"""The bench's report: each figure's min / median / max over the runs, as a table or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple

from .procstat import Summary, summarize

__all__ = ["ROUTER_FIGURES", "TIER_FIGURES", "Figure", "render", "render_json", "summaries"]


class Figure(NamedTuple):
    key: str
    label: str
    #: format of one value (``{:,.0f}`` ...)
    fmt: str


ROUTER_FIGURES: Final = (
    Figure("verify_us", "Ed25519 verify, one core (µs)", "{:.1f}"),
    Figure("sat_cpu_us", "router CPU per secured message, saturated (µs)", "{:.1f}"),
    Figure("sat_capacity", "capacity = 1e6 / that (msg/s)", "{:,.0f}"),
    Figure("sat_ratio", "capacity / verify rate", "{:.2f}"),
    Figure("sat_throughput", "delivered throughput (msg/s)", "{:,.0f}"),
    Figure("sat_router_busy", "router busy while measured (share of its core)", "{:.2f}"),
    Figure("sat_client_cpu_us", "load generators' CPU per message, publisher + subscriber (µs)", "{:.1f}"),
    Figure("sat_dropped", "messages dropped by the subscriber's queue", "{:.0f}"),
    Figure("paced_cpu_us", "router CPU per message, paced (µs)", "{:.1f}"),
    Figure("paced_p50_ms", "latency signed -> delivered, paced, p50 (ms)", "{:.2f}"),
    Figure("paced_p99_ms", "latency signed -> delivered, paced, p99 (ms)", "{:.2f}"),
    Figure("paced_late_ms", "paced publisher's worst lateness (ms; a busy client core, not the router)", "{:.1f}"),
    Figure("flash_bytes_per_msg", "disk bytes written per message delivered in the flush window", "{:.1f}"),
    Figure("backlog_bytes_per_msg", "disk bytes written per backlogged message (after a flush)", "{:.0f}"),
    Figure("idle_rss_mb", "idle RSS (MB)", "{:.1f}"),
    Figure("idle_anon_mb", "idle RssAnon (MB)", "{:.1f}"),
    Figure("backlog_anon_mb", "RssAnon added by the backlog of an absent durable subscriber (MB)", "{:.1f}"),
    Figure("backlog_drained_anon_mb", "RssAnon added, after that backlog drained (MB)", "{:.1f}"),
    Figure("subs_anon_mb", "RssAnon added by 1000 idle durable subscriptions (MB)", "{:.1f}"),
    Figure("start_pub_ms", "one-shot `wavemq-edge pub` (ms)", "{:.0f}"),
    Figure("start_help_ms", "`wavemq-edge --help` (ms)", "{:.0f}"),
    Figure("mqtt_cpu_us", "Mosquitto CPU per QoS1 message, saturated, unsigned (µs)", "{:.1f}"),
    Figure("mqtt_throughput", "Mosquitto delivered throughput (msg/s)", "{:,.0f}"),
    Figure("mqtt_ratio", "router CPU per message / Mosquitto's", "{:.1f}"),
)

TIER_FIGURES: Final = (
    Figure("verify_us", "Ed25519 verify, one core (µs)", "{:.1f}"),
    Figure("site_accept_per_s", "backlog accepted at the site (msg/s)", "{:,.0f}"),
    Figure("drain_per_s", "backlog drained into the DR (msg/s)", "{:,.0f}"),
    Figure("drain_ratio", "drain rate / verify rate", "{:.2f}"),
    Figure("dr_cpu_us", "DR CPU per drained message (µs)", "{:.1f}"),
    Figure("dr_capacity_ratio", "DR capacity (1e6 / CPU per message) / verify rate", "{:.2f}"),
    Figure("live_p50_ms", "live messages during the drain, p50 (ms)", "{:.0f}"),
    Figure("live_p99_ms", "live messages during the drain, p99 (ms)", "{:.0f}"),
    Figure("trunk_bytes_per_msg", "trunk bytes per message (both directions, encrypted)", "{:.1f}"),
)


def summaries(runs: Sequence[Mapping[str, float]], figures: Sequence[Figure]) -> dict[str, Summary]:
    """Each figure's :class:`Summary` over the runs that have it."""
    out: dict[str, Summary] = {}
    for f in figures:
        values = [r[f.key] for r in runs if f.key in r]
        if values:
            out[f.key] = summarize(values)
    return out


def render(title: str, runs: Sequence[Mapping[str, float]], figures: Sequence[Figure],
           notes: Sequence[str] = ()) -> str:
    """The table: one line per figure a run measured, min / median / max (one value for one run)."""
    sums = summaries(runs, figures)
    width = max((len(f.label) for f in figures if f.key in sums), default=10)
    several = len(runs) > 1
    head = f"{'':{width}}  {'min':>9}  {'median':>9}  {'max':>9}" if several else f"{'':{width}}  {'value':>9}"
    lines = [title, head]
    for f in figures:
        s = sums.get(f.key)
        if s is None:
            continue
        cells = [s.min, s.median, s.max] if several else [s.median]
        lines.append(f"{f.label:{width}}  " + "  ".join(f"{f.fmt.format(v):>9}" for v in cells))
    lines.extend(notes)
    return "\n".join(lines)


def render_json(runs: Sequence[Mapping[str, float]], figures: Sequence[Figure], extra: Mapping[str, object]) -> str:
    """``{"runs": [...], "summary": {key: {min, median, max, n}}, ...extra}`` on one line."""
    sums = {k: s._asdict() for k, s in summaries(runs, figures).items()}
    return json.dumps({"runs": list(runs), "summary": sums, **extra}, sort_keys=True)
