"""The metrics endpoint names queues and data directories without authentication: the router warns at
start when ``MetricsConfig.listenAddr`` is not a loopback address."""

from __future__ import annotations

import asyncio
import logging

import pytest

from wavemq_edge.net.metrics_server import MetricsServer, is_loopback


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.20", False), ("gateway.local", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _start(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_start_server(*_args: object, **_kw: object) -> object:
        raise OSError("not binding in a test")  # only 127.0.0.1 is used by tests: stop right after the check

    monkeypatch.setattr(asyncio, "start_server", fake_start_server)
    with pytest.raises(OSError, match="not binding"):
        asyncio.run(MetricsServer(lambda: "").start(host, 6060))


def test_a_non_loopback_address_is_warned_about(monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _start("0.0.0.0", monkeypatch)
    assert "event=metrics_not_loopback addr=0.0.0.0:6060" in caplog.text


def test_a_loopback_address_is_not(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        _start("127.0.0.1", monkeypatch)
    assert "metrics_not_loopback" not in caplog.text
