"""The MQTT listener's connection life cycle against a real router: keepalive timeout, will on an abnormal
close, takeover by client id, and TLS. Devices here are raw sockets speaking our codec (so a test can
stop answering, or vanish without DISCONNECT) next to paho subscribers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from mqtt_helpers_proc import PASSWORD, Device, device, device_user, mqtt_config, mqtt_port
from proc_helpers import RouterProcess, Site
from waiting import wait_until

from wavemq_edge.mqtt import (
    MQTT_5,
    MQTT_311,
    NEED_DATA,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketDecoder,
    Reason,
    Will,
    encode_packet,
)


class RawDevice:
    def __init__(self, port: int, connect: Connect) -> None:
        self.version = connect.protocol_level
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.decoder = PacketDecoder(1 << 20, server=False, version=self.version)
        self.sock.sendall(encode_packet(connect, self.version))
        (ack,) = self.packets()
        assert isinstance(ack, Connack) and ack.reason == 0, ack

    def packets(self) -> list[Packet]:
        """The packets of the next read; [] when the router closed the connection."""
        data = self.sock.recv(65536)
        if not data:
            return []
        self.decoder.receive_bytes(data)
        out: list[Packet] = []
        while (p := self.decoder.next_packet()) is not NEED_DATA:
            out.append(p)  # type: ignore[arg-type]
        return out

    def until_closed(self) -> list[Packet]:
        got: list[Packet] = []
        while True:
            batch = self.packets()
            if not batch:
                return got
            got += batch


@pytest.fixture
def mqtt_router(site: Site, router_factory: Callable[..., RouterProcess]) -> tuple[RouterProcess, int]:
    router = router_factory(mqtt_config(site, [device_user(site, "dev")])).start()
    return router, mqtt_port(router)


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    started: list[Device] = []
    yield started
    for d in started:
        d.stop()


@pytest.mark.parametrize("version", [MQTT_311, MQTT_5])
def test_keepalive_timeout_closes(mqtt_router: tuple[RouterProcess, int], version: int) -> None:
    router, port = mqtt_router
    raw = RawDevice(port, Connect("quiet", version, keepalive=1, username="dev", password=PASSWORD.encode()))
    t0 = time.monotonic()
    got = raw.until_closed()  # the router closes it 1.5 s after the CONNECT it last heard
    assert 1.0 <= time.monotonic() - t0 < 10, got  # (the CONNACK may reach us late on a loaded machine)
    if version == MQTT_5:
        assert [p.reason for p in got if isinstance(p, Disconnect)] == [Reason.KEEP_ALIVE_TIMEOUT]
    raw.sock.close()
    wait_until(lambda: "reason=keep_alive_timeout" in router.output(), 10.0, "the keepalive log line")


def test_will_on_abnormal_disconnect(mqtt_router: tuple[RouterProcess, int], devices: list[Device]) -> None:
    _router, port = mqtt_router
    watcher = device(port, "dev", client_id="watcher")
    devices.append(watcher)
    watcher.subscribe(("status/#", 1))
    raw = RawDevice(port, Connect("dev1", MQTT_311, username="dev", password=PASSWORD.encode(),
                                  will=Will("status/dev1", b"offline", 1)))
    raw.sock.close()  # no DISCONNECT
    assert watcher.wait_messages(1) == [("status/dev1", b"offline", 1)]


def test_takeover_by_client_id(mqtt_router: tuple[RouterProcess, int]) -> None:
    _router, port = mqtt_router
    first = RawDevice(port, Connect("same", MQTT_5, username="dev", password=PASSWORD.encode()))
    second = RawDevice(port, Connect("same", MQTT_5, username="dev", password=PASSWORD.encode()))
    got = first.until_closed()
    assert [p.reason for p in got if isinstance(p, Disconnect)] == [Reason.SESSION_TAKEN_OVER]
    second.sock.close()
    first.sock.close()


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_retained_is_persisted(site: Site, router_factory: Callable[..., RouterProcess], devices: list[Device],
                               v5: bool) -> None:
    router = router_factory(mqtt_config(site, [device_user(site, "dev", perms="publish,subscribe,query")])).start()
    port = mqtt_port(router)
    pub = device(port, "dev", v5=v5, client_id="pub")
    devices.append(pub)
    assert pub.publish("plant/mode", b"auto", 1, retain=True) == 0
    assert pub.publish("plant/gone", b"x", 1, retain=True) == 0
    assert pub.publish("plant/gone", b"", 1, retain=True) == 0  # clears it
    late = device(port, "dev", v5=v5, client_id="late")
    devices.append(late)
    late.subscribe(("plant/#", 1))
    assert late.wait_messages(1) == [("plant/mode", b"auto", 0)] and late.retained == ["plant/mode"]


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])
def test_persistent_session_across_kill9(site: Site, router_factory: Callable[..., RouterProcess],
                                         devices: list[Device], v5: bool) -> None:
    """Offline queueing: a device with a persistent session subscribes and goes; messages published
    meanwhile (PUBACKed) survive a router kill -9 and reach the device when it comes back."""
    router = router_factory(mqtt_config(site, [device_user(site, "dev")])).start()
    port = mqtt_port(router)
    keeper = device(port, "dev", v5=v5, client_id="keeper", persistent=True)
    keeper.subscribe(("k/#", 1))
    keeper.stop()
    pub = device(port, "dev", client_id="pub")
    for i in range(3):
        assert pub.publish(f"k/{i}", str(i).encode(), 1) == 0
    pub.stop()
    router.kill9()
    router.start()
    port = mqtt_port(router)
    back = device(port, "dev", v5=v5, client_id="keeper", persistent=True)
    devices.append(back)
    assert back.session_present
    got = back.wait_messages(3)
    assert sorted(got) == [("k/0", b"0", 1), ("k/1", b"1", 1), ("k/2", b"2", 1)]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (makes the test certificate)")
def test_tls(site: Site, router_factory: Callable[..., RouterProcess], devices: list[Device]) -> None:
    cert, key = site.dir / "cert.pem", site.dir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    config = mqtt_config(site, [device_user(site, "dev")])
    config.write_text(config.read_text().replace(
        '[MqttConfig]\n', f'[MqttConfig]\ncertFile = "{cert}"\nkeyFile = "{key}"\n'))
    router = router_factory(config).start()
    port = mqtt_port(router)
    assert "mqtts://" in router.output()
    d = device(port, "dev", client_id="tls", tls_ca=cert)
    devices.append(d)
    d.subscribe(("secure", 1))
    d.publish("secure", b"over tls", 1)
    assert d.wait_messages(1) == [("secure", b"over tls", 1)]
