"""The one fault-injecting TCP proxy (``wavemq_edge.bench.proxy``) against a loopback echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator

import pytest

from wavemq_edge.bench import proxy as proxy_module
from wavemq_edge.bench.proxy import FaultProxy

pytestmark = pytest.mark.timeout(30)

#: Seconds any socket operation of these tests may block.
IO_TIMEOUT_S = 5.0
#: Seconds of silence that show a blackholed link forwards nothing (an absence cannot be awaited).
SILENCE_S = 0.3


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_proxy(echo_port: int) -> Iterator[Callable[..., FaultProxy]]:
    made: list[FaultProxy] = []

    def make(**kwargs: object) -> FaultProxy:
        p = FaultProxy("127.0.0.1", echo_port, **kwargs)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def _dial(p: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", p.port), timeout=IO_TIMEOUT_S)


def _closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_pass_forwards_both_ways_and_counts(make_proxy: Callable[..., FaultProxy]) -> None:
    p = make_proxy()
    with _dial(p) as s:
        s.sendall(b"hello")
        assert s.recv(5) == b"hello"
    assert p.connections == 1 and p.bytes_up == 5 and p.bytes_down == 5
    assert p.address == f"127.0.0.1:{p.port}"


def test_starting_cut_refuses_until_passed(make_proxy: Callable[..., FaultProxy]) -> None:
    p = make_proxy(mode="cut")  # the tier bench's gate: the uplink is down
    with _dial(p) as s:
        assert _closed_by_peer(s)
    p.set_mode("pass")
    with _dial(p) as s:
        s.sendall(b"up")
        assert s.recv(2) == b"up"


@pytest.mark.parametrize("rst", [False, True])
def test_cut_closes_open_connections(make_proxy: Callable[..., FaultProxy], rst: bool) -> None:
    p = make_proxy()
    with _dial(p) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        p.set_mode("cut", rst=rst)
        assert _closed_by_peer(s)


def test_blackhole_keeps_the_connection_but_forwards_nothing(make_proxy: Callable[..., FaultProxy]) -> None:
    p = make_proxy()
    with _dial(p) as s:
        s.sendall(b"a")
        assert s.recv(1) == b"a"
        p.set_mode("blackhole")
        s.sendall(b"lost")
        s.settimeout(SILENCE_S)
        with pytest.raises(TimeoutError):
            s.recv(1)
        p.set_mode("pass")
        s.settimeout(IO_TIMEOUT_S)
        s.sendall(b"b")
        assert s.recv(1) == b"b"


def test_connections_over_the_bound_are_refused_and_counted(make_proxy: Callable[..., FaultProxy],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_module, "MAX_CONNECTIONS", 1)
    p = make_proxy()
    with _dial(p) as first:
        first.sendall(b"1")
        assert first.recv(1) == b"1"
        with _dial(p) as second:
            assert _closed_by_peer(second)
        assert p.refused == 1 and p.connections == 1


def test_unknown_mode_is_refused(make_proxy: Callable[..., FaultProxy]) -> None:
    p = make_proxy()
    with pytest.raises(ValueError, match="unknown proxy mode 'down'"):
        p.set_mode("down")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FaultProxy("127.0.0.1", 1, mode="open")  # type: ignore[arg-type]
