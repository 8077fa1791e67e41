"""The MQTT front door of a real router process, with real clients: paho in 3.1.1 and 5.0 modes, WAVE
agents on the same URIs, and mosquitto_pub/mosquitto_sub when mosquitto-clients is installed."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest
from mqtt_helpers_proc import PASSWORD, Device, device, device_user, mqtt_config, mqtt_port
from proc_helpers import RouterProcess, Site
from waiting import await_until, wait_until

from wavemq_edge.client import Client

V = pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5.0"])


@pytest.fixture
def mqtt_router(site: Site, router_factory: Callable[..., RouterProcess]) -> tuple[RouterProcess, int]:
    config = mqtt_config(site, [device_user(site, "dev"), device_user(site, "narrow", "allowed/*")])
    router = router_factory(config).start()
    return router, mqtt_port(router)


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    started: list[Device] = []
    yield started
    for d in started:
        d.stop()


@V
def test_qos_both_ways_and_wildcards(mqtt_router: tuple[RouterProcess, int], devices: list[Device], v5: bool) -> None:
    _router, port = mqtt_router
    sub = device(port, "dev", v5=v5, client_id="sub")
    pub = device(port, "dev", v5=not v5, client_id="pub")
    devices += [sub, pub]
    assert sub.subscribe(("sensors/+/temp", 1), ("plant/#", 0)) == [1, 0]
    assert pub.publish("sensors/a/temp", b"21.5", 1) == 0
    pub.publish("plant/line1/speed", b"3", 0)
    pub.publish("sensors/a/humidity", b"40", 1)  # matches nothing
    pub.publish("plant", b"on", 1)
    got = sub.wait_messages(3)
    assert sorted(got) == sorted([("sensors/a/temp", b"21.5", 1), ("plant/line1/speed", b"3", 0), ("plant", b"on", 0)])


@V
def test_wrong_password_refused(mqtt_router: tuple[RouterProcess, int], devices: list[Device], v5: bool) -> None:
    router, port = mqtt_router
    d = device(port, "dev", "not-it", v5=v5, expect_ok=False)
    devices.append(d)
    assert d.connack == 0x86  # paho 2 reports 3.1.1's return code 4 as the 5.0 reason it maps to
    wait_until(lambda: "event=mqtt_refused" in router.output() and "wrong password" in router.output(), 10.0,
               "the refusal log line")


def test_device_without_grant(mqtt_router: tuple[RouterProcess, int], devices: list[Device]) -> None:
    router, port = mqtt_router
    d5 = device(port, "narrow", v5=True, client_id="n5")
    devices.append(d5)
    assert d5.subscribe(("secret/#", 1), ("allowed/+", 1)) == [0x87, 1]
    assert d5.publish("allowed/x", b"1", 1) == 0
    assert d5.publish("secret/x", b"1", 1) == 0x87
    d3 = device(port, "narrow", v5=False, client_id="n3")
    devices.append(d3)
    assert d3.subscribe(("secret/#", 1)) == [0x80]
    d3.publish("secret/x", b"1", 1)
    wait_until(lambda: d3.disconnected is not None, 10.0, "the 3.1.1 device closed after a refused publish")
    assert "event=mqtt_publish_refused" in router.output() and "user=narrow" in router.output()


def test_wave_agent_and_mqtt_see_each_other(site: Site, mqtt_router: tuple[RouterProcess, int],
                                            devices: list[Device]) -> None:
    router, port = mqtt_router
    mq = device(port, "dev", client_id="mq")
    devices.append(mq)
    mq.subscribe(("from/wave", 1))
    agent_entity = site.entity("agent")

    async def scenario() -> bytes:
        client = await Client.connect(router.address, entity=agent_entity, reconnect=False,
                                      wave_db=site.env["WAVE_HOME"])
        async with client, client.subscribe(site.dir / "namespace.ent", "from/mqtt") as sub:
            async def both() -> bool:
                return (await client.status())["subscriptions"] >= 2  # type: ignore[operator,no-any-return]

            await await_until(both, 15.0, "both subscriptions")
            await client.publish(site.dir / "namespace.ent", "from/wave", b"hello device")
            await asyncio.get_running_loop().run_in_executor(None, mq.publish, "from/mqtt", b"hello agent", 1)
            msg = await asyncio.wait_for(sub.__anext__(), 15.0)
            return msg.data

    assert asyncio.run(asyncio.wait_for(scenario(), 60.0)) == b"hello agent"
    assert mq.wait_messages(1) == [("from/wave", b"hello device", 1)]


def test_malformed_packets_do_not_disturb_others(mqtt_router: tuple[RouterProcess, int],
                                                 devices: list[Device]) -> None:
    router, port = mqtt_router
    good = device(port, "dev", client_id="good")
    devices.append(good)
    good.subscribe(("t", 1))
    for junk in (b"\x10\xff\xff\xff\xff\x01", b"\x30\x05\x00\x01a", bytes(range(256)), b"\xf0\x00"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass  # the router answers (or not) and closes
    good.publish("t", b"still here", 1)
    assert good.wait_messages(1) == [("t", b"still here", 1)]
    assert router.proc is not None and router.proc.poll() is None


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_clients(mqtt_router: tuple[RouterProcess, int]) -> None:
    router, port = mqtt_router
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", "dev", "-P", PASSWORD,
                            "-t", "m/#", "-C", "1", "-q", "1", "-V", "mqttv311"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: router.subscriptions() >= 1, 15.0, "mosquitto_sub's subscription")
        pub = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "dev", "-P", PASSWORD,
                              "-t", "m/x", "-m", "hi", "-q", "1", "-V", "mqttv5"], capture_output=True, timeout=30)
        assert pub.returncode == 0, pub.stderr
        out, err = sub.communicate(timeout=30)
        assert out == b"hi\n", err
        bad = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", "dev", "-P", "wrong",
                              "-t", "m/x", "-m", "hi"], capture_output=True, timeout=30)
        assert bad.returncode != 0
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(timeout=10)
