"""What every MQTT session of a listener shares: the core, the users, the bounds, the live sessions.

Sessions are registered by (user, client id) once CONNECT succeeds; a new one with the same key takes
the session over (the old one is closed with ``SESSION_TAKEN_OVER``, MQTT §3.1.4). Refused connections
are counted by reason (status and metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..router import RouterCore
from .codec import DEFAULT_MAX_PACKET_BYTES
from .errors import Reason
from .identity import MqttUsers

if TYPE_CHECKING:
    from .session import MqttSession

__all__ = ["DEFAULT_MQTT_OPTIONS", "MqttHub", "MqttOptions"]


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """Bounds of one device connection (``MqttConfig``; README lists the keys)."""

    #: largest packet accepted, and announced as Maximum Packet Size (5.0)
    max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES
    #: time from accept to CONNECT
    connect_timeout_s: float = 10.0
    #: a packet started must be complete within this
    packet_stall_timeout_s: float = 30.0
    #: QoS 2 publishes a device may leave waiting for PUBREL (announced as Receive Maximum, 5.0)
    receive_maximum: int = 32
    #: deliveries to a device not yet acknowledged (further capped by the device's Receive Maximum)
    max_inflight: int = 32
    #: a keep alive above this (or 0) is replaced by it, announced as Server Keep Alive (0: the device's)
    max_keepalive_s: int = 0
    #: topic aliases a device may set (announced as Topic Alias Maximum, 5.0); 0 = none
    topic_alias_maximum: int = 16


DEFAULT_MQTT_OPTIONS: Final = MqttOptions()


class MqttHub:
    def __init__(self, core: RouterCore, users: MqttUsers, options: MqttOptions = DEFAULT_MQTT_OPTIONS) -> None:
        self.core = core
        self.users = users
        self.options = options
        self.sessions: dict[tuple[str, str], MqttSession] = {}
        #: refused CONNECTs by 5.0 reason name
        self.refused: dict[str, int] = {}
        self.takeovers = 0

    def register(self, session: MqttSession, now: float, wall: float) -> None:
        assert session.user is not None
        key = (session.user.name, session.client_id)
        old = self.sessions.get(key)
        self.sessions[key] = session
        if old is not None and old is not session:
            self.takeovers += 1
            old.close_with(Reason.SESSION_TAKEN_OVER, "another connection took this client id over", now, wall)

    def forget(self, session: MqttSession) -> None:
        if session.user is None:
            return
        key = (session.user.name, session.client_id)
        if self.sessions.get(key) is session:
            del self.sessions[key]

    def count_refusal(self, reason: Reason) -> None:
        name = reason.name.lower()
        self.refused[name] = self.refused.get(name, 0) + 1
