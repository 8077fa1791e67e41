"""Start the MQTT front door when ``MqttConfig.listenAddr`` is set: users loaded, hub, listener (TLS when
``certFile``/``keyFile`` are set). Every problem is a ``StartupError`` naming the key and the file."""

from __future__ import annotations

import asyncio
import logging
import ssl

from ..config import Config
from ..mqtt.hub import MqttHub
from ..mqtt.identity import MqttUser, MqttUsers, load_user
from ..net.mqtt_server import MqttServer
from ..net.writes import WriteScheduler
from ..router import RouterCore
from ..wave import WaveError, parse_id
from .derive import mqtt_settings
from .startup import StartupError

__all__ = ["start_mqtt"]

log = logging.getLogger("wavemq_edge.server")


def load_mqtt_users(config: Config) -> MqttUsers:
    m = config.mqtt
    users: list[MqttUser] = []
    for i, u in enumerate(m.users):
        try:
            users.append(load_user(u.username, u.password_hash, str(u.entity), parse_id(u.namespace),
                                   [str(p) for p in u.proofs]))
        except (WaveError, OSError, ValueError) as exc:
            raise StartupError(f"MqttConfig.User[{i}] ({u.username}): {exc}") from None
    anonymous = None
    if m.anonymous_entity is not None:
        try:
            anonymous = load_user(None, None, str(m.anonymous_entity), parse_id(m.anonymous_namespace),
                                  [str(p) for p in m.anonymous_proofs])
        except (WaveError, OSError, ValueError) as exc:
            raise StartupError(f"MqttConfig.anonymousEntity: {exc}") from None
    return MqttUsers(users, anonymous)


def _tls(config: Config) -> ssl.SSLContext | None:
    m = config.mqtt
    if m.cert_file is None or m.key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(m.cert_file), str(m.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"MqttConfig.certFile/keyFile {m.cert_file}, {m.key_file}: {exc}") from None
    return ctx


async def start_mqtt(config: Config, core: RouterCore, writes: WriteScheduler,
                     servers: list[asyncio.AbstractServer]) -> MqttServer | None:
    """The MQTT server, listening; None when ``MqttConfig.listenAddr`` is unset."""
    addr = config.mqtt.listen_addr
    if addr is None:
        return None
    settings = mqtt_settings(config)
    hub = MqttHub(core, load_mqtt_users(config), settings.options)
    mqtt = MqttServer(hub, writes, slots=settings.slots)
    tls = _tls(config)
    try:
        server = await asyncio.get_running_loop().create_server(mqtt.protocol_factory, addr.host, addr.port,
                                                                reuse_address=True, ssl=tls,
                                                                backlog=settings.listen_backlog)
    except OSError as exc:
        raise StartupError(f"MqttConfig.listenAddr {addr}: cannot listen: {exc.strerror}") from None
    servers.append(server)
    names = [f"mqtt{'s' if tls else ''}://{sock.getsockname()[0]}:{sock.getsockname()[1]}" for sock in server.sockets]
    mqtt.addresses = names
    log.info("event=mqtt_listening addr=%s users=%d anonymous=%s tls=%s", ",".join(names), len(hub.users.by_name),
             hub.users.anonymous is not None, tls is not None)
    return mqtt
