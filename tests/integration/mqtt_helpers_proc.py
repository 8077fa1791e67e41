"""A router process with the MQTT listener on an ephemeral port, its users, and paho clients with bounded waits."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from proc_helpers import RouterProcess, Site, config_text, wv
from waiting import wait_until

from wavemq_edge.mqtt.identity import hash_password
from wavemq_edge.wave import format_id, load_entity

MQTT_LISTENING = re.compile(r"event=mqtt_listening addr=mqtts?://127\.0\.0\.1:(\d+)")
PASSWORD = "pw-device"
PASSWORD_HASH = hash_password(PASSWORD)


def device_user(site: Site, name: str, resource: str = "*", perms: str = "publish,subscribe") -> str:
    """An entity granted ``perms`` on ``resource``, its proof, and its [[MqttConfig.User]] entry."""
    site.entity(name, grant=f"wavemq:{perms}@namespace.ent/{resource}")
    wv(site.env, site.dir, "rtprove", "--subject", f"{name}.ent", "-o", f"{name}.pem",
       f"wavemq:{perms}@namespace.ent/{resource}")
    ns = format_id(load_entity(site.dir / "namespace.ent").id)
    return (f'[[MqttConfig.User]]\nusername = "{name}"\npasswordHash = "{PASSWORD_HASH}"\n'
            f'entity = "{site.dir / (name + ".ent")}"\nnamespace = "{ns}"\nproofs = ["{site.dir / (name + ".pem")}"]\n')


def mqtt_config(site: Site, users: list[str]) -> Path:
    path = site.dir / "mqtt.toml"
    path.write_text(config_text(site.dir, extra='[MqttConfig]\nlistenAddr = "127.0.0.1:0"\n' + "".join(users)))
    return path


def mqtt_port(router: RouterProcess) -> int:
    m = wait_until(lambda: MQTT_LISTENING.search(router.output()), 20.0, "the MQTT listening line")
    return int(m.group(1))


@dataclass
class Device:
    """A paho client on a background thread, recording what it gets."""

    client: paho.Client
    messages: list[tuple[str, bytes, int]] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)  # topics received with the retain flag
    acks: dict[int, int] = field(default_factory=dict)  # mid -> reason code (5.0) or 0
    connack: int | None = None
    session_present: bool = False
    disconnected: int | None = None
    subacks: list[list[int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[tuple[str, bytes, int]]:
        with self.lock:
            return list(self.messages)

    def wait_messages(self, n: int, timeout: float = 15.0) -> list[tuple[str, bytes, int]]:
        wait_until(lambda: len(self.received()) >= n, timeout, f"{n} MQTT message(s)")
        return self.received()

    def subscribe(self, *topics: tuple[str, int]) -> list[int]:
        before = len(self.subacks)
        self.client.subscribe(list(topics))
        wait_until(lambda: len(self.subacks) > before, 15.0, "SUBACK")
        return self.subacks[before]

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos, retain)
        if qos:
            wait_until(lambda: info.mid in self.acks or self.disconnected is not None, 15.0, "PUBACK")
            return self.acks.get(info.mid, -1)
        return 0

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def device(port: int, user: str | None, password: str = PASSWORD, *, v5: bool = True, client_id: str = "",
           expect_ok: bool = True, tls_ca: Path | None = None, persistent: bool = False) -> Device:
    """``persistent``: 3.1.1 clean session 0, or 5.0 clean start 0 with a session expiry of an hour."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=paho.MQTTv5 if v5 else paho.MQTTv311, clean_session=None if v5 else not persistent)
    d = Device(c)
    if user is not None:
        c.username_pw_set(user, password)
    if tls_ca is not None:
        c.tls_set(ca_certs=str(tls_ca))

    def on_connect(_c: object, _u: object, flags: object, rc: object, _p: object = None) -> None:
        d.session_present = bool(getattr(flags, "session_present", False))
        d.connack = int(getattr(rc, "value", rc))  # type: ignore[call-overload]

    def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
        with d.lock:
            d.messages.append((msg.topic, msg.payload, msg.qos))
            if msg.retain:
                d.retained.append(msg.topic)

    def on_publish(_c: object, _u: object, mid: int, rc: object, _p: object = None) -> None:
        d.acks[mid] = int(getattr(rc, "value", 0))  # type: ignore[call-overload]

    def on_subscribe(_c: object, _u: object, _mid: int, rcs: list[object], _p: object = None) -> None:
        d.subacks.append([int(getattr(r, "value", r)) for r in rcs])  # type: ignore[call-overload]

    def on_disconnect(_c: object, _u: object, _f: object, rc: object, _p: object = None) -> None:
        d.disconnected = int(getattr(rc, "value", rc))  # type: ignore[call-overload]

    c.on_connect, c.on_message, c.on_publish = on_connect, on_message, on_publish
    c.on_subscribe, c.on_disconnect = on_subscribe, on_disconnect
    if v5:
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", port, keepalive=30, clean_start=not persistent, properties=props)
    else:
        c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    wait_until(lambda: d.connack is not None or d.disconnected is not None, 15.0, "CONNACK")
    if expect_ok:
        assert d.connack == 0, f"CONNACK {d.connack}"
    return d
