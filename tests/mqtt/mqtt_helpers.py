"""A device driving one ``MqttSession`` in memory: packets in, packets out, on a fake clock."""

from __future__ import annotations

from router_helpers import T0, World, make_core

from wavemq_edge.mqtt import MQTT_5, NEED_DATA, Connect, Packet, PacketDecoder, encode_packet
from wavemq_edge.mqtt.hub import MqttHub, MqttOptions
from wavemq_edge.mqtt.identity import MqttUser, MqttUsers, hash_password
from wavemq_edge.mqtt.session import MqttSession
from wavemq_edge.router import RouterCore
from wavemq_edge.wave import EntitySecret

#: one hash for every test user (argon2id is slow on purpose)
PASSWORD = "s3cret"
PASSWORD_HASH = hash_password(PASSWORD)


def user_for(world: World, name: str, who: EntitySecret, grants: tuple[str, ...] = ("publish", "subscribe"),
             resource: str = "*") -> MqttUser:
    return MqttUser(name, PASSWORD_HASH, who, world.ns.id, tuple(world.proof(who, g, resource) for g in grants))


class Device:
    def __init__(self, hub: MqttHub, version: int = MQTT_5, now: float = 0.0) -> None:
        self.hub = hub
        self.version = version
        self.now = now
        self.session = MqttSession(hub, now=now, peer="test")
        self.decoder = PacketDecoder(1 << 20, server=False, version=version)
        self.verify_passwords = True

    def send(self, packet: Packet) -> list[Packet]:
        return self.send_raw(encode_packet(packet, self.version))

    def send_raw(self, data: bytes) -> list[Packet]:
        self.session.receive_bytes(data, self.now, T0 + self.now)
        check = self.session.auth_pending
        if check is not None and self.verify_passwords:  # what the glue does in its worker thread
            self.session.auth_done(check.run(), self.now, T0 + self.now)
        self.hub.core.service()
        return self.recv()

    def recv(self) -> list[Packet]:
        self.hub.core.service()
        self.decoder.receive_bytes(self.session.bytes_to_send())
        out: list[Packet] = []
        while True:
            p = self.decoder.next_packet()
            if p is NEED_DATA:
                return out
            out.append(p)  # type: ignore[arg-type]

    def connect(self, user: str | None = "dev", password: str = PASSWORD, client_id: str = "c1",
                **kw: object) -> list[Packet]:
        pw = password.encode() if user is not None else None
        return self.send(Connect(client_id, self.version, username=user, password=pw, **kw))  # type: ignore[arg-type]

    def tick(self, now: float) -> list[Packet]:
        self.now = now
        self.session.handle_timer(now, T0 + now)
        return self.recv()


def make_hub(users: list[MqttUser], anonymous: MqttUser | None = None, core: RouterCore | None = None,
             **options: object) -> MqttHub:
    return MqttHub(core or make_core(), MqttUsers(users, anonymous), MqttOptions(**options))  # type: ignore[arg-type]
