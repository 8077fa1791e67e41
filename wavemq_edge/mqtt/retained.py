"""Retained messages are the router's persisted messages.

A device's PUBLISH with the retain flag is published with ``persist`` (``publish.py``): it becomes the
URI's persisted value. A new subscription (MQTT 5 Retain Handling 0 or 1; 0 also on a repeated
SUBSCRIBE) receives the persisted values its filter matches, with the retain flag, through a signed
WAVE query that the core checks like an agent's: the user's entity needs ``wavemq:query`` on the
filter, and without it the subscription simply gets no retained messages. A value whose payload is
empty is not sent (MQTT's "an empty retained payload clears it"); WAVE agents still see it in queries.
At most ``MAX_RETAINED`` values per filter, sent as QoS 0 (they bypass the subscription's queue and
credit window); where the namespace has a designated router, the query is answered by it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ..router.errors import RouterError
from ..uri import Pattern
from ..wave import Message, WaveError, sign_query
from .packets import MQTT_5, Publish, encode_packet
from .properties import NO_PROPERTIES, Prop, Properties

if TYPE_CHECKING:
    from .session import MqttSession

__all__ = ["MAX_RETAINED", "send_retained"]

log = logging.getLogger("wavemq_edge.mqtt")

#: persisted values sent for one filter on SUBSCRIBE
MAX_RETAINED: Final = 100
_DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


def send_retained(session: MqttSession, topic_filter: str, pattern: Pattern, wall: float) -> None:
    user = session.user
    assert user is not None
    reply = _RetainedReply(session, topic_filter)
    try:
        query = sign_query(user.secret, namespace=user.namespace, uri="/".join(pattern),
                           proof_id=user.choose_proof("query", pattern, wall), now=wall)
        answer = session.core.query(user.secret.entity, query.raw, user.proof_for, None, MAX_RETAINED, wall, reply)
    except RouterError as exc:
        reply.query_refused(int(exc.code), str(exc))
        return
    except WaveError as exc:
        reply.query_refused(0, str(exc))
        return
    if answer is not None:  # else the designated router answers through ``reply``
        reply.query_results([m for _uri, m in answer.messages], answer.continuation, answer.source)


class _RetainedReply:
    __slots__ = ("session", "topic_filter")

    def __init__(self, session: MqttSession, topic_filter: str) -> None:
        self.session = session
        self.topic_filter = topic_filter

    def query_results(self, messages: list[bytes], continuation: str | None, source: str) -> None:
        s = self.session
        if s.closing:
            return
        for raw in messages:
            try:
                msg = Message.parse(raw)
            except WaveError:
                continue
            schema, payload = msg.payload[0] if msg.payload else (_DEFAULT_CONTENT_TYPE, b"")
            if not payload:
                continue  # an empty retained payload cleared it
            props = NO_PROPERTIES
            if s.version == MQTT_5 and schema != _DEFAULT_CONTENT_TYPE:
                props = Properties({Prop.CONTENT_TYPE: schema})
            data = encode_packet(Publish(msg.uri, payload, 0, True, properties=props), s.version)
            if not s.max_send_bytes or len(data) <= s.max_send_bytes:
                s.send_bytes(data)

    def query_refused(self, code: int, reason: str) -> None:
        s = self.session
        log.debug("event=mqtt_no_retained user=%s client=%r filter=%r code=%d detail=%r",
                  s.user.name if s.user else "-", s.client_id, self.topic_filter, code, reason)
