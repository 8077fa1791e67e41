"""Prometheus text exposition (format 0.0.4), built from plain values; no I/O.

Names follow Prometheus conventions: prefix ``wavemq_edge_``, base units (``_bytes``, ``_seconds``),
counters end in ``_total``. Per-queue series are capped (``MAX_QUEUE_SERIES``, largest queues first)
so a router with a thousand subscription queues does not produce a scrape of a thousand series each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["CONTENT_TYPE", "MAX_QUEUE_SERIES", "Metric", "render"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Per-queue series in one scrape: the largest queues are the ones worth watching, and 50 x 3 series
#: keeps a scrape under ~20 kB.
MAX_QUEUE_SERIES: Final = 50

Labels = Mapping[str, str]


@dataclass(slots=True)
class Metric:
    name: str
    kind: Literal["counter", "gauge"]
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, labels: Labels | None = None) -> Metric:
        self.samples.append(({} if labels is None else labels, float(value)))
        return self


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def render(metrics: Iterable[Metric]) -> str:
    out: list[str] = []
    for m in metrics:
        if m.kind == "counter" and not m.name.endswith("_total"):
            raise ValueError(f"counter {m.name} must end in _total")
        out.append(f"# HELP {m.name} {_escape_help(m.help)}")
        out.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            if labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
                out.append(f"{m.name}{{{inner}}} {_value(value)}")
            else:
                out.append(f"{m.name} {_value(value)}")
    return "\n".join(out) + "\n"


def top_queues(rows: Sequence[tuple[str, str, int, int]], n: int = MAX_QUEUE_SERIES) -> list[tuple[str, str, int, int]]:
    """(queue id, kind, depth, bytes) rows, the ``n`` largest by bytes then depth."""
    return sorted(rows, key=lambda r: (-r[3], -r[2], r[0]))[:n]
