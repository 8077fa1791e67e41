"""systemd notify and watchdog: the pure message builder and health policy, the socket glue against a
test-owned datagram socket (path and abstract), and a real router process notifying it in order."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from ops_helpers import NotifyListener, OpsRouter, base_env, ops_config
from waiting import wait_until

from wavemq_edge.ops.runtime import recovery_extend_usec
from wavemq_edge.ops.systemd import Notifier, WatchdogPolicy, notify_message, watchdog_interval_s

# ------------------------------------------------------------------ pure


def test_notify_message_lines_in_order() -> None:
    assert notify_message({"READY": 1, "STATUS": "3 agents"}) == b"READY=1\nSTATUS=3 agents"


def test_notify_message_refuses_newlines_and_bad_keys() -> None:
    with pytest.raises(ValueError):
        notify_message({"STATUS": "a\nb"})
    with pytest.raises(ValueError):
        notify_message({"A=B": 1})


def test_long_status_is_truncated() -> None:
    msg = notify_message({"STATUS": "x" * 1000})
    assert len(msg) < 220 and msg.endswith(b"...")


@pytest.mark.parametrize(("env", "pid", "expected"), [
    ({}, 1, None),
    ({"WATCHDOG_USEC": "30000000"}, 1, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 1, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"}, 1, None),  # for another process
    ({"WATCHDOG_USEC": "0"}, 1, None),
    ({"WATCHDOG_USEC": "junk"}, 1, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval_s(env, pid) == expected


def test_watchdog_policy_withholds_on_lag_and_stalled_flush() -> None:
    p = WatchdogPolicy(interval_s=15.0, lag_max_s=5.0, flush_stall_s=60.0)
    now = 0.0
    assert p.check(now, scheduled=now, flush_started=None).healthy
    # a loop that woke 6 s late was blocked: no ping
    h = p.check(100.0, scheduled=94.0, flush_started=None)
    assert not h.healthy and "lag" in h.reason
    # a flush running for 61 s means the storage is wedged
    h = p.check(200.0, scheduled=200.0, flush_started=139.0)
    assert not h.healthy and "flush" in h.reason
    # a flush running for 10 s is fine
    assert p.check(300.0, scheduled=300.0, flush_started=290.0).healthy
    assert (p.pings, p.skipped) == (2, 2)


def test_lag_bound_never_exceeds_the_interval() -> None:
    p = WatchdogPolicy(interval_s=0.5)
    assert p.lag_max_s == 0.5
    assert not p.check(10.0, scheduled=9.4, flush_started=None).healthy


def test_recovery_extension_grows_with_data() -> None:
    assert recovery_extend_usec(0) == 30_000_000
    assert recovery_extend_usec(100 * 1024 * 1024) == 40_000_000


# ------------------------------------------------------------------ socket glue


def test_notifier_path_socket(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    try:
        n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        assert n.enabled and n.send({"READY": 1})
        assert listener.receive(2.0) == {"READY": "1"}
        n.close()
    finally:
        listener.close()


def test_notifier_abstract_socket() -> None:
    name = f"wavemq-edge-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.send({"WATCHDOG": 1})
        sock.settimeout(2.0)
        assert sock.recv(100) == b"WATCHDOG=1"
        n.close()
    finally:
        sock.close()


def test_notifier_without_socket_is_a_noop_and_a_dead_socket_is_not_fatal(tmp_path: Path) -> None:
    assert not Notifier({}).send({"READY": 1})
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not n.send({"READY": 1})  # logged once, never raised
    assert not n.send({"READY": 1})
    n.close()


# ------------------------------------------------------------------ a real router


@pytest.mark.timeout(90)
def test_router_notifies_in_order_and_a_stalled_loop_stops_watchdog_pings(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    env = base_env(tmp_path)
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1000000", WAVEMQ_EDGE_DEBUG_STALL_S="3")
    router = OpsRouter(ops_config(tmp_path), env)
    try:
        router.start(wait_ready=False)
        first = listener.wait_for("EXTEND_TIMEOUT_USEC", 20)
        assert int(first["EXTEND_TIMEOUT_USEC"]) >= 30_000_000 and "recovering" in first["STATUS"]
        ready = listener.wait_for("READY", 20)
        assert "agents" in ready["STATUS"] and "subscriptions" in ready["STATUS"]
        # pings every 0.5 s (half of WATCHDOG_USEC)
        for _ in range(4):
            listener.wait_for("WATCHDOG", 3)
        pings = [t for t, m in listener.messages if "WATCHDOG" in m]
        assert max(b - a for a, b in zip(pings[-4:-1], pings[-3:], strict=True)) < 1.0
        # stall the loop for 3 s: nothing may reach systemd meanwhile, and the first tick after the stall
        # sees the lag and withholds its ping
        router.signal(signal.SIGUSR2)
        # the handler logs, then blocks the loop: what is queued once the line is out was sent before it
        wait_until(lambda: "event=debug_stall " in router.output(), 10, "the stall to begin")
        while listener.receive(0.01) is not None:
            pass
        t_stall = time.monotonic()
        after = listener.wait_for("WATCHDOG", 10)
        assert after == {"WATCHDOG": "1"}
        t_resumed = listener.messages[-1][0]
        # 3 s stall - the poll that saw it begin (50 ms) + the withheld tick: at least 2.5 s without a ping
        assert t_resumed - t_stall >= 2.5, "a ping reached systemd while the loop was stalled"
        listener.wait_for("WATCHDOG", 3)  # pings resume
        assert "event=watchdog_withheld" in router.output()
        assert router.terminate() == 0
        listener.wait_for("STOPPING", 5)
        kinds = [next(iter(m)) for _, m in listener.messages]
        assert kinds[0] == "EXTEND_TIMEOUT_USEC" and kinds.index("READY") < kinds.index("WATCHDOG")
        assert kinds.index("STOPPING") > kinds.index("READY")
    finally:
        router.stop()
        listener.close()


@pytest.mark.timeout(60)
def test_router_without_watchdog_usec_sends_no_pings(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    env = base_env(tmp_path)
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify")
    router = OpsRouter(ops_config(tmp_path), env)
    try:
        router.start(wait_ready=False)
        listener.wait_for("READY", 20)
        # a ping would come within 0.5 s at WatchdogSec=1 s: listen for 1 s (receiving, not sleeping)
        end = time.monotonic() + 1.0
        while (left := end - time.monotonic()) > 0:
            listener.receive(left)
        assert not any("WATCHDOG" in m for _, m in listener.messages)
    finally:
        router.stop()
        listener.close()
