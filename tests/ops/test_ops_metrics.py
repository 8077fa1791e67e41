"""Prometheus exposition: rendering rules, and a real router's /metrics parsed by prometheus_client's
text parser (a real parser, in tests only)."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ops_helpers import WAVEMQ, OpsRouter, base_env, make_site, ops_config, run
from prometheus_client.parser import text_string_to_metric_families
from waiting import wait_until

from wavemq_edge.ops.metrics import Metric, render, top_queues


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_render_escapes_and_parses() -> None:
    text = render([
        Metric("wavemq_edge_x_total", "counter", "A counter\nwith a newline.").add(3, {"dir": 'a"b\\c\nd'}),
        Metric("wavemq_edge_y_bytes", "gauge", "A gauge.").add(1.5).add(float("inf"), {"k": "v"}),
    ])
    fams = list(text_string_to_metric_families(text))
    x = next(f for f in fams if f.name == "wavemq_edge_x")
    assert x.type == "counter" and x.samples[0].labels == {"dir": 'a"b\\c\nd'} and x.samples[0].value == 3
    y = next(f for f in fams if f.name == "wavemq_edge_y_bytes")
    assert [s.value for s in y.samples] == [1.5, float("inf")]


def test_counter_names_must_end_in_total() -> None:
    with pytest.raises(ValueError):
        render([Metric("wavemq_edge_published", "counter", "x").add(1)])


def test_top_queues_are_the_largest() -> None:
    rows = [(f"q{i}", "subscription", i, i * 10) for i in range(100)]
    top = top_queues(rows, 3)
    assert [r[0] for r in top] == ["q99", "q98", "q97"]


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # loopback only
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


@pytest.mark.timeout(90)
def test_router_serves_metrics_parsed_by_prometheus_client(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    make_site(tmp_path, env)
    router = OpsRouter(ops_config(tmp_path, flush_interval=1), env)
    sub: subprocess.Popen[str] | None = None
    try:
        router.start()
        assert router.metrics.startswith("127.0.0.1:")  # loopback, the bound port discoverable in the log
        client = ("--router", router.address, "--entity", "service.ent", "--namespace", "namespace.ent")
        sub = subprocess.Popen([WAVEMQ, "sub", *client, "--count", "3", "m/*"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        router.wait_subscriptions(1)  # `sub` prints nothing once subscribed: the router's count says it
        for i in range(3):
            assert run([WAVEMQ, "pub", *client, f"m/{i}", "v"], env, tmp_path).returncode == 0
        sub.communicate(timeout=30)
        # the flush figures below are from a real flush (flushInterval = 1 s), not the initial zeros
        wait_until(lambda: router.status()["flushes"], 10, "the first flush")
        status, ctype, text = _get(f"http://{router.metrics}/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        fams = families(text)
        for name in ("wavemq_edge_info", "wavemq_edge_uptime_seconds", "wavemq_edge_published",
                     "wavemq_edge_delivered", "wavemq_edge_dropped_items", "wavemq_edge_queue_depth",
                     "wavemq_edge_resident_memory_bytes", "wavemq_edge_anon_memory_bytes",
                     "wavemq_edge_memory_budget_bytes", "wavemq_edge_disk_free_bytes", "wavemq_edge_flushes",
                     "wavemq_edge_flush_write_seconds", "wavemq_edge_verifier_cache_hits",
                     "wavemq_edge_budget_refusing_durable", "wavemq_edge_watchdog_pings"):
            assert name in fams, f"{name} missing from:\n{text}"
        assert all(name.startswith("wavemq_edge_") for name in fams)

        def value(name: str, **labels: str) -> float:
            fam = fams[name]
            return next(s.value for s in fam.samples  # type: ignore[attr-defined]
                        if all(s.labels.get(k) == v for k, v in labels.items()))

        assert value("wavemq_edge_published") == 3 and value("wavemq_edge_delivered") == 3
        assert value("wavemq_edge_flushes") >= 1
        assert value("wavemq_edge_dropped_items", reason="budget") == 0
        assert value("wavemq_edge_resident_memory_bytes") > 10 * 1024 * 1024
        assert value("wavemq_edge_memory_budget_bytes") == 128 * 1024 * 1024
        assert value("wavemq_edge_info", version=__import__("wavemq_edge").__version__) == 1
        # other paths and methods are refused, and a silent client does not block the server
        with pytest.raises(urllib.error.HTTPError) as exc:
            _get(f"http://{router.metrics}/nope")
        assert exc.value.code == 404
        host, port = router.metrics.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as idle:
            assert _get(f"http://{router.metrics}/metrics")[0] == 200
            idle.sendall(b"POST /metrics HTTP/1.0\r\n\r\n")
            assert idle.recv(100).startswith(b"HTTP/1.0 405")
    finally:
        if sub is not None and sub.poll() is None:
            sub.kill()
            sub.wait(timeout=10)
        router.stop()


@pytest.mark.timeout(60)
def test_metrics_can_be_disabled(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    router = OpsRouter(ops_config(tmp_path), env)
    cfg = router.config.read_text().replace('[MetricsConfig]\n  listenAddr = "127.0.0.1:0"',
                                            '[MetricsConfig]\n  enabled = false')
    router.config.write_text(cfg)
    try:
        router.start()
        assert router.metrics == "" and "metrics=off" in router.output()
    finally:
        router.stop()
