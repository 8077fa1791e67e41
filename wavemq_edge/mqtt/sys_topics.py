"""``$SYS/`` topics: the router's figures under Mosquitto's names, for MQTT monitoring tools.

They are not WAVE resources (``$`` is not a URI character): a ``$SYS`` filter is kept by the session
itself, granted QoS 0, answered at once with the current values (retain flag set, as Mosquitto's are)
and again every ``SYS_INTERVAL_S`` while subscribed. Only counts are shown (the summary an
unprivileged agent's STATUS gives): no namespaces, paths, queue ids or addresses. ``#`` and ``+`` at
the first level never match them (MQTT §4.7.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .. import __version__
from .packets import Publish, encode_packet

if TYPE_CHECKING:
    from .session import MqttSession

__all__ = ["SYS_INTERVAL_S", "is_sys_filter", "send_sys", "sys_values", "topic_matches"]

#: Mosquitto's default ``sys_interval``
SYS_INTERVAL_S: Final = 10.0


def is_sys_filter(topic_filter: str) -> bool:
    return topic_filter == "$SYS" or topic_filter.startswith("$SYS/")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT matching of one topic name against one filter (``+`` one level, trailing ``#`` the rest)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return i == len(f) - 1
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def sys_values(session: MqttSession, now: float) -> dict[str, str]:
    st = session.core.status(now)
    c = st.counters
    hub = session.hub
    return {
        "$SYS/broker/version": f"wavemq-edge {__version__}",
        "$SYS/broker/uptime": f"{int(st.uptime_s)} seconds",
        "$SYS/broker/clients/connected": str(len(hub.sessions)),
        "$SYS/broker/subscriptions/count": str(st.subscriptions),
        "$SYS/broker/messages/received": str(c.published),
        "$SYS/broker/messages/sent": str(c.delivered + c.redelivered),
        "$SYS/broker/publish/messages/received": str(c.published),
        "$SYS/broker/publish/messages/sent": str(c.delivered + c.redelivered),
        "$SYS/broker/store/messages/count": str(st.store.items),
        "$SYS/broker/store/messages/bytes": str(st.store.bytes),
    }


def send_sys(session: MqttSession, filters: set[str], now: float) -> None:
    """The current values matching any of ``filters``, as retained QoS 0 publishes."""
    for topic, value in sys_values(session, now).items():
        if any(topic_matches(f, topic) for f in filters):
            session.send_bytes(encode_packet(Publish(topic, value.encode(), 0, True), session.version))
