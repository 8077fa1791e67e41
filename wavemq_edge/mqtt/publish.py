"""PUBLISH both ways: a device's publish signed and handed to the core, and deliveries to the device.

``PublishDesk`` (device -> router): topic -> URI, one WAVE message signed by the user's entity with the
proof that grants it, ``RouterCore.publish`` (every admission check), then the ack. QoS 2's packet ids
between PUBREC and PUBREL are remembered, so a repeated PUBLISH is acknowledged without publishing
twice. ``Delivering`` (router -> device): the core's deliveries as PUBLISH packets, within the credit
window; QoS 1 ones acknowledged to the core at PUBACK, QoS 0 ones once written (``ack_sent``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from ..router.errors import RouterError
from ..router.subscription import RouterSubscription
from ..uri import UriError
from ..wave import Message, WaveError, sign_message
from .errors import CloseConnection, Reason, reason_for_refusal
from .packets import MQTT_5, PacketType, PubAck, Publish, encode_packet
from .properties import NO_PROPERTIES, Prop, Properties
from .topics import TopicError, topic_to_uri

if TYPE_CHECKING:
    from .session import MqttSession

__all__ = ["Delivering", "PublishDesk"]

log = logging.getLogger("wavemq_edge.mqtt")

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class PublishDesk:
    def __init__(self, session: MqttSession) -> None:
        self.s = session
        self._qos2: set[int] = set()
        self._aliases: dict[int, str] = {}
        self._last_ms = 0
        self._seq = 0
        self.published = 0
        self.refused = 0

    def on_publish(self, p: Publish, now: float, wall: float) -> None:
        s = self.s
        p = self._resolve_alias(p)
        if p.qos == 2 and p.packet_id in self._qos2:
            s.send(PubAck(PacketType.PUBREC, p.packet_id))  # already published: exactly once
            return
        if p.qos == 2 and len(self._qos2) >= s.options.receive_maximum:
            raise CloseConnection(Reason.RECEIVE_MAXIMUM_EXCEEDED,
                                  f"more than Receive Maximum {s.options.receive_maximum} QoS 2 publishes unreleased")
        try:
            uri = topic_to_uri(p.topic)
        except TopicError as exc:
            self._refused(p, Reason.TOPIC_NAME_INVALID, str(exc))
            return
        reason, text = self._publish(uri, p, now, wall)
        if reason is not None:
            self._refused(p, reason, text)
            return
        s.authorised = True
        self.published += 1
        if p.qos == 1:
            s.send(PubAck(PacketType.PUBACK, p.packet_id))
        elif p.qos == 2:
            self._qos2.add(p.packet_id)
            s.send(PubAck(PacketType.PUBREC, p.packet_id))

    def _resolve_alias(self, p: Publish) -> Publish:
        """MQTT 5 topic aliases (§3.3.2.3.4): at most ``topic_alias_maximum`` per connection, as announced."""
        alias = p.properties.get_int(Prop.TOPIC_ALIAS)
        if alias is None:
            if not p.topic and self.s.version == MQTT_5:
                raise CloseConnection(Reason.PROTOCOL_ERROR, "PUBLISH with an empty topic name and no topic alias")
            return p
        limit = self.s.options.topic_alias_maximum
        if alias > limit:
            raise CloseConnection(Reason.TOPIC_ALIAS_INVALID, f"topic alias {alias} is above the Topic Alias "
                                  f"Maximum {limit} (MqttConfig.topicAliasMaximum)")
        if p.topic:
            self._aliases[alias] = p.topic
            return p
        topic = self._aliases.get(alias)
        if topic is None:
            raise CloseConnection(Reason.PROTOCOL_ERROR, f"topic alias {alias} was never set on this connection")
        return replace(p, topic=topic)

    def on_pubrel(self, packet_id: int) -> None:
        if packet_id in self._qos2:
            self._qos2.discard(packet_id)
            self.s.send(PubAck(PacketType.PUBCOMP, packet_id))
        elif self.s.version == MQTT_5:
            self.s.send(PubAck(PacketType.PUBCOMP, packet_id, Reason.PACKET_IDENTIFIER_NOT_FOUND))
        else:
            self.s.send(PubAck(PacketType.PUBCOMP, packet_id))

    def publish_will(self, will: Publish, now: float, wall: float) -> None:
        reason: Reason | None
        try:
            uri = topic_to_uri(will.topic)
        except TopicError as exc:
            reason, text = Reason.TOPIC_NAME_INVALID, str(exc)
        else:
            reason, text = self._publish(uri, will, now, wall)
        user = self.s.user.name if self.s.user else "-"
        if reason is None:
            log.info("event=mqtt_will_published user=%s client=%r topic=%r", user, self.s.client_id, will.topic)
        else:
            log.warning("event=mqtt_will_refused user=%s client=%r topic=%r reason=%s detail=%r", user,
                        self.s.client_id, will.topic, reason.name.lower(), text)

    def _publish(self, uri: str, p: Publish, now: float, wall: float) -> tuple[Reason | None, str]:
        user = self.s.user
        assert user is not None
        proof_id = user.choose_proof("publish", tuple(uri.split("/")), wall)
        ctype = p.properties.get_str(Prop.CONTENT_TYPE) or DEFAULT_CONTENT_TYPE
        try:
            msg = sign_message(user.secret, namespace=user.namespace, uri=uri, payload=[(ctype, p.payload)],
                               proof_id=proof_id, now=wall, persist=p.retain, seq=self._stamp(wall))
            self.s.core.publish(user.secret.entity, msg.raw, user.proof_for, now, wall)
        except RouterError as exc:
            return reason_for_refusal(exc.code), str(exc)
        except (WaveError, UriError) as exc:
            return Reason.IMPLEMENTATION_SPECIFIC_ERROR, f"cannot sign the message: {exc}"
        return None, ""

    def _refused(self, p: Publish, reason: Reason, text: str) -> None:
        s = self.s
        self.refused += 1
        log.warning("event=mqtt_publish_refused peer=%s user=%s client=%r topic=%r reason=%s detail=%r", s.peer,
                    s.user.name if s.user else "-", s.client_id, p.topic, reason.name.lower(), text)
        if s.version == MQTT_5 and p.qos:
            kind = PacketType.PUBACK if p.qos == 1 else PacketType.PUBREC
            s.send(PubAck(kind, p.packet_id, int(reason), s.reason_props(text)))
            return
        # 3.1.1 has no negative acknowledgement (§3.3.5): closing is the only way not to lie.
        raise CloseConnection(reason, f"publish to {p.topic!r} refused: {text}")

    def _stamp(self, wall: float) -> int:
        """A sequence within one millisecond: two identical payloads signed in the same millisecond are
        two messages, not one for the router's duplicate filter (see ``client.PublishStamps``)."""
        ms = int(wall * 1000)
        if ms == self._last_ms:
            self._seq += 1
        else:
            self._last_ms, self._seq = ms, 0
        return self._seq


class Delivering:
    def __init__(self, session: MqttSession) -> None:
        self.s = session
        #: unacknowledged deliveries allowed: min(device's Receive Maximum, MqttOptions.max_inflight)
        self.window = session.options.max_inflight
        self._inflight: dict[int, tuple[RouterSubscription, int]] = {}
        self._written: list[tuple[RouterSubscription, int]] = []
        self._next_id = 1
        self.delivered = 0
        self.dropped_too_large = 0

    def credit(self) -> int:
        return self.window - len(self._inflight) - len(self._written)

    def deliver(self, sub: RouterSubscription, seq: int, item: bytes) -> None:
        s = self.s
        qos = s.subs.qos_of(sub)
        try:
            msg = Message.parse(item)
        except WaveError:
            self._written.append((sub, seq))  # cannot happen for what the core queued; do not wedge on it
            return
        schema, payload = msg.payload[0] if msg.payload else (DEFAULT_CONTENT_TYPE, b"")
        props = NO_PROPERTIES
        if s.version == MQTT_5 and schema != DEFAULT_CONTENT_TYPE:
            props = Properties({Prop.CONTENT_TYPE: schema})
        pid = self._packet_id() if qos else 0
        data = encode_packet(Publish(msg.uri, payload, qos, False, False, pid, props), s.version)
        if s.max_send_bytes and len(data) > s.max_send_bytes:
            # MQTT 5 §3.1.2.11.4: a packet over the client's Maximum Packet Size is discarded, not sent.
            self.dropped_too_large += 1
            self._written.append((sub, seq))
            return
        if qos:
            self._inflight[pid] = (sub, seq)
        else:
            self._written.append((sub, seq))
        self.delivered += 1
        s.send_bytes(data)

    def on_puback(self, packet_id: int, now: float) -> None:
        entry = self._inflight.pop(packet_id, None)
        if entry is not None:
            self.s.core.acknowledge(self.s, entry[0], (entry[1],), now)

    def ack_sent(self, now: float) -> bool:
        """Acknowledge the QoS 0 deliveries written; True when any credit came back."""
        if not self._written:
            return False
        written, self._written = self._written, []
        for sub, seq in written:
            self.s.core.acknowledge(self.s, sub, (seq,), now)
        return True

    def forget(self, sub: RouterSubscription) -> None:
        self._inflight = {pid: e for pid, e in self._inflight.items() if e[0] is not sub}
        self._written = [e for e in self._written if e[0] is not sub]

    def _packet_id(self) -> int:
        while True:
            pid = self._next_id
            self._next_id = pid % 65535 + 1
            if pid not in self._inflight:
                return pid
