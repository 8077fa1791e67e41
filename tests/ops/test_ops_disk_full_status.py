"""The core's disk check as status shows it: the STATUS reply's ``disk_full``, systemd's ``STATUS=`` line,
the Prometheus gauge and counter, and the human rendering."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from test_ops_runtime import FakeServer, runtime

from wavemq_edge.ops.status_view import render_status
from wavemq_edge.router import DiskGuard, OnDiskFull
from wavemq_edge.storage import DiskSpace

MB = 1024 * 1024


def test_refusing_disk_is_in_every_status_view(tmp_path: Path) -> None:
    svc = FakeServer()
    free = {"bytes": 0}
    svc.core.disk = DiskGuard(MB, OnDiskFull.REFUSE, svc.queues, probe=lambda _p: DiskSpace(1, free["bytes"]))
    assert svc.core.disk.check(2048, 1, persist=False, now=0.0) is not None
    ops = runtime(tmp_path, svc)
    ops.last_reading = ops.sample(0.0)

    async def render() -> tuple[str, dict[str, object], str]:
        return ops.status_line(), ops.status_reply(0.0), ops.render_metrics()

    line, status, text = asyncio.run(render())
    assert "DISK FULL: refusing publishes (STORAGE_FULL)" in line
    full = status["disk_full"]
    assert isinstance(full, dict)
    assert (full["policy"], full["state"], full["free_bytes"], full["reserve_bytes"], full["refused"]) == (
        "refuse", "refusing", 0, MB, 1)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["wavemq_edge_disk_full_refusing"].samples[0].value == 1
    assert fams["wavemq_edge_disk_full_refused"].samples[0].value == 1
    human = render_status(status)
    assert "disk full         REFUSING (onDiskFull = refuse), 1 publishes refused: 0.0 MB free" in human

    free["bytes"] = 100 * MB  # space returns: ok everywhere, the count stays
    line, status, text = asyncio.run(render())
    assert "DISK FULL" not in line and status["disk_full"]["state"] == "ok"  # type: ignore[index]
    assert "disk full         OK (onDiskFull = refuse), 1 publishes refused" in render_status(status)
