"""SUBSCRIBE and UNSUBSCRIBE: each topic filter one ephemeral WAVE subscription, signed for the user.

A filter maps to a pattern (``topics.py``); the subscribe object is signed by the user's entity with the
proof that grants ``wavemq:subscribe`` there and handed to ``RouterCore.subscribe`` with this session as
the consumer, so the core checks it like an agent's. Identifiers are unique per connection (a random
prefix): many devices may share one user's entity. Subscribing to a filter again only changes its QoS
(MQTT §3.8.4). Granted QoS is at most 1 (this server does not send QoS 2).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..router.errors import RouterError
from ..router.subscription import RouterSubscription
from ..uri import Pattern
from ..wave import WaveError, sign_subscribe, sign_unsubscribe
from .errors import CloseConnection, Reason, reason_for_refusal
from .packets import MQTT_5, Suback, SubOptions, Subscribe, Unsuback, Unsubscribe
from .properties import Prop
from .retained import send_retained
from .sys_topics import SYS_INTERVAL_S, is_sys_filter, send_sys
from .topics import TopicError, filter_to_pattern

if TYPE_CHECKING:
    from .session import MqttSession

__all__ = ["SubscriptionDesk"]

log = logging.getLogger("wavemq_edge.mqtt")

_FAILURE_311 = 0x80


@dataclass(slots=True)
class _Entry:
    topic_filter: str
    qos: int
    sub: RouterSubscription


class SubscriptionDesk:
    def __init__(self, session: MqttSession) -> None:
        self.s = session
        self.by_filter: dict[str, _Entry] = {}
        self.by_key: dict[str, _Entry] = {}
        self._prefix = "mqtt~" + os.urandom(6).hex() + "~"
        #: ``$SYS`` filters, served by the session itself (``sys_topics.py``), and when to send next
        self.sys_filters: set[str] = set()
        self.sys_next: float | None = None
        self._count = 0

    def qos_of(self, sub: RouterSubscription) -> int:
        entry = self.by_key.get(sub.key)
        return entry.qos if entry is not None else 0

    def on_subscribe(self, p: Subscribe, now: float, wall: float) -> None:
        if Prop.SUBSCRIPTION_IDENTIFIER in p.properties.values:
            raise CloseConnection(Reason.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                                  "subscription identifiers are not supported (announced in CONNACK)")
        sys_before = set(self.sys_filters)
        results = [self._one(topic, opts, now, wall) for topic, opts in p.topics]
        self.s.send(Suback(p.packet_id, tuple(code for code, _retained in results)))
        if self.sys_filters - sys_before:
            send_sys(self.s, self.sys_filters - sys_before, now)
            self.sys_next = now + SYS_INTERVAL_S
        for (topic, _opts), (_code, retained) in zip(p.topics, results, strict=True):
            if retained is not None and not self.s.closing:
                send_retained(self.s, topic, retained, wall)

    def _fail(self, topic: str, reason: Reason, text: str) -> int:
        s = self.s
        log.warning("event=mqtt_subscribe_refused peer=%s user=%s client=%r filter=%r reason=%s detail=%r", s.peer,
                    s.user.name if s.user else "-", s.client_id, topic, reason.name.lower(), text)
        return int(reason) if s.version == MQTT_5 else _FAILURE_311

    def _one(self, topic: str, opts: SubOptions, now: float, wall: float) -> tuple[int, Pattern | None]:
        """(SUBACK reason, the pattern whose retained messages to send, if any)."""
        s = self.s
        user = s.user
        assert user is not None
        if is_sys_filter(topic):
            self.sys_filters.add(topic)
            return 0, None
        if topic.startswith("$share/"):
            return self._fail(topic, Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, "shared subscriptions"), None
        try:
            pattern = filter_to_pattern(topic)
        except TopicError as exc:
            return self._fail(topic, Reason.TOPIC_FILTER_INVALID, str(exc)), None
        qos = min(opts.qos, 1)
        existing = self.by_filter.get(topic)
        if existing is not None:
            existing.qos = qos
            return qos, (pattern if opts.retain_handling == 0 else None)
        self._count += 1
        sub_id = self._durable_id(topic) if s.persistent else f"{self._prefix}{self._count}"
        try:
            req = sign_subscribe(user.secret, namespace=user.namespace, uri="/".join(pattern), sub_id=sub_id,
                                 router_id=s.core.router_id, proof_id=user.choose_proof("subscribe", pattern, wall),
                                 now=wall)
            sub, _resumed = s.core.subscribe(s, user.secret.entity, req.raw, user.proof_for, not s.persistent,
                                             len(self.by_filter), now, wall)
        except RouterError as exc:
            return self._fail(topic, reason_for_refusal(exc.code), str(exc)), None
        except WaveError as exc:
            return self._fail(topic, Reason.IMPLEMENTATION_SPECIFIC_ERROR, str(exc)), None
        entry = _Entry(topic, qos, sub)
        self.by_filter[topic] = entry
        self.by_key[sub.key] = entry
        s.authorised = True
        return qos, (pattern if opts.retain_handling != 2 else None)

    def sys_deadline(self) -> float | None:
        return self.sys_next if self.sys_filters else None

    def sys_timer(self, now: float) -> None:
        if self.sys_filters and self.sys_next is not None and now >= self.sys_next:
            send_sys(self.s, self.sys_filters, now)
            self.sys_next = now + SYS_INTERVAL_S

    # ------------------------------------------------------------------ persistent sessions

    def _session_prefix(self) -> str:
        return "mqtt:" + hashlib.blake2b(self.s.client_id.encode(), digest_size=9).hexdigest() + ":"

    def _durable_id(self, topic_filter: str) -> str:
        """Stable for (client id, filter), so a reconnect (or a restart) resumes the same subscription;
        the entity (the user) is part of the core's subscription key."""
        return self._session_prefix() + hashlib.blake2b(topic_filter.encode(), digest_size=12).hexdigest()

    def _kept(self) -> list[RouterSubscription]:
        user = self.s.user
        assert user is not None
        prefix = self._session_prefix()
        return [sub for sub in self.s.core.subscriptions() if sub.entity == user.secret.id
                and sub.namespace == user.namespace and sub.sub_id.startswith(prefix)]

    def start_session(self, *, clean: bool, now: float, wall: float) -> bool:
        """At CONNECT: a clean start ends the durable subscriptions this (user, client id) left; otherwise
        they are resumed (at QoS 1) and what they queued meanwhile is delivered. True = session present."""
        s = self.s
        kept = self._kept()
        if clean or not s.persistent:
            for sub in kept:
                self._end_durable(sub, wall, now)
            return False
        for sub in kept:
            topic = "/".join(sub.pattern)
            if topic.endswith("*"):
                topic = topic[:-1] + "#"
            self._one(topic, SubOptions(1, retain_handling=2), now, wall)
        return bool(self.by_filter)

    def _end_durable(self, sub: RouterSubscription, wall: float, now: float) -> None:
        user = self.s.user
        assert user is not None
        try:
            req = sign_unsubscribe(user.secret, sub_id=sub.sub_id, now=wall)
            self.s.core.unsubscribe(user.secret.entity, req.raw, now, wall)
        except (RouterError, WaveError) as exc:
            log.warning("event=mqtt_session_end_failed user=%s client=%r detail=%r", user.name, self.s.client_id,
                        str(exc))

    def on_unsubscribe(self, p: Unsubscribe, now: float, wall: float) -> None:
        reasons = tuple(self._drop(topic, now, wall) for topic in p.topics)
        self.s.send(Unsuback(p.packet_id, reasons if self.s.version == MQTT_5 else ()))

    def _drop(self, topic: str, now: float, wall: float) -> int:
        s = self.s
        if topic in self.sys_filters:
            self.sys_filters.discard(topic)
            return Reason.SUCCESS
        entry = self.by_filter.pop(topic, None)
        if entry is None:
            return Reason.NO_SUBSCRIPTION_EXISTED
        self.by_key.pop(entry.sub.key, None)
        s.delivering.forget(entry.sub)
        user = s.user
        assert user is not None
        try:
            req = sign_unsubscribe(user.secret, sub_id=entry.sub.sub_id, now=wall)
            s.core.unsubscribe(user.secret.entity, req.raw, now, wall)
        except (RouterError, WaveError) as exc:
            log.warning("event=mqtt_unsubscribe_failed user=%s filter=%r detail=%r", user.name, topic, str(exc))
            return Reason.IMPLEMENTATION_SPECIFIC_ERROR
        return Reason.SUCCESS

    def ended(self, sub: RouterSubscription, code: int, reason: str) -> None:
        """The core ended a subscription (its proof expired or was revoked, or it expired): MQTT has no
        notice for that, so it is logged and the filter forgotten (a new SUBSCRIBE re-checks the grant)."""
        entry = self.by_key.pop(sub.key, None)
        if entry is None:
            return  # we unsubscribed it ourselves
        self.by_filter.pop(entry.topic_filter, None)
        self.s.delivering.forget(sub)
        log.warning("event=mqtt_subscription_ended user=%s client=%r filter=%r code=%d detail=%r",
                    self.s.user.name if self.s.user else "-", self.s.client_id, entry.topic_filter, code, reason)

    def detach_all(self, now: float) -> None:
        entries = list(self.by_key.values())
        self.by_key.clear()
        self.by_filter.clear()
        for entry in entries:
            self.s.core.detach(self.s, entry.sub, now)
