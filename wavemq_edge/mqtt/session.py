"""One MQTT device connection as a sans-I/O state machine (like ``router/session.py``): bytes in, bytes out.

Theory of operation
-------------------
States::

    AWAIT_CONNECT --CONNECT, user authenticated--> OPEN --(DISCONNECT | error | timeout)--> CLOSED

* **CONNECT** within ``connect_timeout_s``; the user is checked against ``MqttUsers`` (argon2id: when the
  password was not verified recently, ``auth_pending`` asks the glue to run the check in a worker thread
  and call ``auth_done``; later packets wait in the decoder meanwhile). A wrong
  user or password gets CONNACK ``BAD_USER_NAME_OR_PASSWORD`` (5.0 0x86, 3.1.1 4) and the connection
  closes; one log line names the user and the reason. A second connection with the same (user, client
  id) takes the session over: the old one gets DISCONNECT ``SESSION_TAKEN_OVER`` (5.0) and closes.
* **Keepalive**: no packet for 1.5 x the keep alive the device asked for closes it (5.0 DISCONNECT
  ``KEEP_ALIVE_TIMEOUT``); a packet started must be complete within ``packet_stall_timeout_s``.
* **PUBLISH** (``publish.py``): the topic becomes a URI in the user's namespace, the payload a WAVE
  message signed by the user's entity with its proof, handed to ``RouterCore.publish`` exactly like an
  agent's. PUBACK (QoS 1) and PUBREC (QoS 2) are sent only once that call returned: the message is where
  an agent's OK puts it. QoS 2 is exactly once on the connection: a PUBLISH repeated before PUBREL
  (same packet id) is not published again. A refusal is PUBACK/PUBREC ``NOT_AUTHORIZED`` (0x87) in 5.0;
  MQTT 3.1.1 cannot say no to a publish (§3.3.5), so there, and for a refused 5.0 QoS 0 publish, the
  connection is closed (5.0: DISCONNECT 0x87) rather than let the device believe it was delivered.
* **SUBSCRIBE**: each filter becomes a pattern and a signed subscribe (ephemeral, one per filter) given
  to ``RouterCore.subscribe``; a refused one is SUBACK 0x87 (5.0) / 0x80 (3.1.1). Granted QoS is at most
  1. Deliveries leave the queue at most ``min(device's Receive Maximum, max_inflight)`` unacknowledged at
  a time (the credit window); QoS 1 ones are acknowledged to the core at PUBACK, QoS 0 ones once their
  bytes were handed to the transport.
* **Will**: published (signed like any publish) when the connection ends other than by DISCONNECT 0x00.
* Malformed input: 5.0 DISCONNECT with the codec's reason code (before CONNACK: CONNACK with it), 3.1.1
  a plain close. Only this connection is affected.

Inputs: ``receive_bytes(data, now, wall)``, ``handle_timer(now, wall)``, ``connection_lost(now, wall)``;
outputs ``bytes_to_send()`` and ``closing``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from enum import Enum

from ..router import RouterCore
from ..router.subscription import RouterSubscription
from .codec import NEED_DATA, PacketDecoder
from .errors import CloseConnection, ConnackCode311, MqttCodecError, Reason
from .hub import MqttHub
from .identity import MqttUser, PasswordCheck
from .packets import (
    MQTT_5,
    MQTT_311,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingResp,
    PubAck,
    Publish,
    Subscribe,
    Unsubscribe,
    encode_packet,
)
from .properties import NO_PROPERTIES, Prop, Properties
from .publish import Delivering, PublishDesk
from .subscriptions import SubscriptionDesk

__all__ = ["MqttSession", "MqttState"]

log = logging.getLogger("wavemq_edge.mqtt")

_CONNACK_311 = {Reason.BAD_USER_NAME_OR_PASSWORD: ConnackCode311.BAD_USER_NAME_OR_PASSWORD,
                Reason.NOT_AUTHORIZED: ConnackCode311.NOT_AUTHORIZED,
                Reason.UNSUPPORTED_PROTOCOL_VERSION: ConnackCode311.UNACCEPTABLE_PROTOCOL_VERSION,
                Reason.CLIENT_IDENTIFIER_NOT_VALID: ConnackCode311.IDENTIFIER_REJECTED}


class MqttState(Enum):
    AWAIT_CONNECT = "await-connect"
    OPEN = "open"
    CLOSED = "closed"


class MqttSession:
    """See the module docstring. The session is the ``Consumer`` of its subscriptions."""

    def __init__(self, hub: MqttHub, *, now: float, peer: str = "?",
                 on_output: Callable[[], None] | None = None) -> None:
        self.hub = hub
        self.core: RouterCore = hub.core
        self.options = hub.options
        self.peer = peer
        self.on_output = on_output
        self.state = MqttState.AWAIT_CONNECT
        self.version = MQTT_5
        self.user: MqttUser | None = None
        self.client_id = ""
        self.keepalive = 0
        self.close_reason: str | None = None
        #: "connect", "keepalive" or "packet_stall" when a deadline closed the connection
        self.timed_out: str | None = None
        #: a request was accepted (a grant checked): the slot table protects it from eviction
        self.authorised = False
        self.max_send_bytes = 0  # the device's Maximum Packet Size (0: none)
        self.will: Publish | None = None
        #: the device asked for a session that outlives the connection: its subscriptions are durable
        self.persistent = False
        #: the user name CONNECT gave (for log lines about a refused login)
        self.login: str | None = None
        #: a password the glue must verify (argon2id, off the event loop), then call ``auth_done``
        self.auth_pending: PasswordCheck | None = None
        self._pending_connect: Connect | None = None
        self._decoder = PacketDecoder(self.options.max_packet_bytes)
        self._out: list[bytes] = []
        self._now = now
        self._last_input = now
        self._partial_at: tuple[int, float] | None = None
        self._connect_deadline: float | None = now + self.options.connect_timeout_s
        self.publishes = PublishDesk(self)
        self.subs = SubscriptionDesk(self)
        self.delivering = Delivering(self)
        self.packets_in = 0
        self.packets_out = 0

    # ------------------------------------------------------------------ I/O surface

    @property
    def closing(self) -> bool:
        return self.state is MqttState.CLOSED

    def bytes_to_send(self) -> bytes:
        """What to write now. QoS 0 deliveries in it are acknowledged to the core here: handed to the
        transport is all QoS 0 promises."""
        data = b"".join(self._out)
        self._out.clear()
        if self.delivering.ack_sent(self._now) and self.on_output is not None:
            self.on_output()  # credit came back: ask the glue for another service pass
        return data

    def next_deadline(self) -> float | None:
        if self.state is MqttState.CLOSED:
            return None
        candidates = [self._connect_deadline] if self._connect_deadline is not None else []
        if self.state is MqttState.OPEN and self.keepalive:
            candidates.append(self._last_input + 1.5 * self.keepalive)
        sys_at = self.subs.sys_deadline() if self.state is MqttState.OPEN else None
        if sys_at is not None:
            candidates.append(sys_at)
        since = self._partial_since()
        if since is not None:
            candidates.append(since + self.options.packet_stall_timeout_s)
        return min(candidates) if candidates else None

    def handle_timer(self, now: float, wall: float) -> None:
        if self.state is MqttState.CLOSED:
            return
        self._now = now
        if self._connect_deadline is not None and now >= self._connect_deadline:
            self.timed_out = "connect"
            self._close(Reason.MAXIMUM_CONNECT_TIME, "no CONNECT in time", now, wall, send=False)
        elif self.state is MqttState.OPEN and self.keepalive and now >= self._last_input + 1.5 * self.keepalive:
            self.timed_out = "keepalive"
            self._close(Reason.KEEP_ALIVE_TIMEOUT, f"nothing received for 1.5 x keep alive {self.keepalive} s",
                        now, wall)
        else:
            if self.state is MqttState.OPEN:
                self.subs.sys_timer(now)
            since = self._partial_since()
            if since is not None and now >= since + self.options.packet_stall_timeout_s:
                self.timed_out = "packet_stall"
                self._close(Reason.MALFORMED_PACKET, f"packet not completed within "
                            f"{self.options.packet_stall_timeout_s:g} s", now, wall)

    def receive_bytes(self, data: bytes, now: float, wall: float) -> None:
        if self.state is MqttState.CLOSED:
            return
        self._partial_since()
        self._now = self._last_input = now
        try:
            self._decoder.receive_bytes(data)
        except MqttCodecError as exc:
            self._fail(exc.reason, str(exc), now, wall)
            return
        self._drain(now, wall)

    def auth_done(self, ok: bool, now: float, wall: float) -> None:
        """The glue ran ``auth_pending`` (argon2id, in a worker thread): admit or refuse, then go on
        with the packets that arrived meanwhile."""
        check, connect = self.auth_pending, self._pending_connect
        self.auth_pending = self._pending_connect = None
        if check is None or connect is None or self.state is not MqttState.AWAIT_CONNECT:
            return
        self._now = now
        if not ok:
            self._fail(Reason.BAD_USER_NAME_OR_PASSWORD, f"user {check.user.name!r}: wrong password", now, wall)
            return
        self._accept(connect, check.user, now, wall)
        self._drain(now, wall)

    def _drain(self, now: float, wall: float) -> None:
        try:
            while not self.closing and self.auth_pending is None:
                packet = self._decoder.next_packet()
                if packet is NEED_DATA:
                    break
                self.packets_in += 1
                self._dispatch(packet, now, wall)  # type: ignore[arg-type]
        except MqttCodecError as exc:
            level = self._decoder.version or exc.protocol_level
            if level is not None:
                self.version = MQTT_5 if level >= MQTT_5 else MQTT_311
            self._fail(exc.reason, str(exc), now, wall)
        except CloseConnection as exc:
            self._fail(exc.reason, str(exc), now, wall)

    def connection_lost(self, now: float, wall: float) -> None:
        if self.state is not MqttState.CLOSED:
            self._end("connection lost", now, wall, will=True)

    # ------------------------------------------------------------------ output helpers

    def send(self, packet: Packet) -> None:
        if not self._out and self.on_output is not None:
            self.on_output()
        self._out.append(encode_packet(packet, self.version))
        self.packets_out += 1

    def send_bytes(self, data: bytes) -> None:
        """An encoded packet (deliveries are encoded first to check the device's Maximum Packet Size)."""
        if not self._out and self.on_output is not None:
            self.on_output()
        self._out.append(data)
        self.packets_out += 1

    def reason_props(self, text: str) -> Properties:
        """A Reason String for 5.0 acks and DISCONNECT (bounded; never the user's secrets)."""
        if self.version != MQTT_5 or not text:
            return NO_PROPERTIES
        return Properties({Prop.REASON_STRING: text[:200]})

    def close_with(self, reason: Reason, message: str, now: float, wall: float) -> None:
        """Close from outside a packet handler (takeover, server shutdown, a refused subscription end)."""
        self._close(reason, message, now, wall)

    # ------------------------------------------------------------------ internals

    def _partial_since(self) -> float | None:
        d = self._decoder
        if d.buffered_bytes == 0:
            self._partial_at = None
        elif self._partial_at is None or self._partial_at[0] != d.offset:
            self._partial_at = (d.offset, self._last_input)
        return self._partial_at[1] if self._partial_at is not None else None

    def _fail(self, reason: Reason, message: str, now: float, wall: float) -> None:
        if self.state is MqttState.AWAIT_CONNECT:
            self._refuse_connect(reason, message, now)
        else:
            self._close(reason, message, now, wall)

    def _close(self, reason: Reason, message: str, now: float, wall: float, *, send: bool = True) -> None:
        if self.state is MqttState.CLOSED:
            return
        if send and self.version == MQTT_5 and self.state is MqttState.OPEN:
            self.send(Disconnect(int(reason), self.reason_props(message)))
        self._end(message, now, wall, will=True, reason=reason)

    def _end(self, message: str, now: float, wall: float, *, will: bool, reason: Reason | None = None) -> None:
        was_open = self.state is MqttState.OPEN
        self.state = MqttState.CLOSED
        self.close_reason = message
        if was_open:
            log.info("event=mqtt_closed peer=%s user=%s client=%r reason=%s detail=%r", self.peer,
                     self.user.name if self.user else "-", self.client_id,
                     reason.name.lower() if reason is not None else "-", message)
        if was_open and will and self.will is not None:
            will_msg, self.will = self.will, None
            self.publishes.publish_will(will_msg, now, wall)
        self.subs.detach_all(now)
        self.hub.forget(self)

    def _refuse_connect(self, reason: Reason, message: str, now: float) -> None:
        user = self.user.name if self.user else (self.login if self.login is not None else "-")
        self.hub.count_refusal(reason)
        log.warning("event=mqtt_refused peer=%s user=%s client=%r reason=%s detail=%r", self.peer, user,
                    self.client_id, reason.name.lower(), message)
        if self.version == MQTT_5:
            self.send(Connack(False, int(reason), self.reason_props(message)))
        elif reason in _CONNACK_311:
            self.send(Connack(False, int(_CONNACK_311[reason])))
        self.state = MqttState.CLOSED
        self.close_reason = message

    def _dispatch(self, packet: Packet, now: float, wall: float) -> None:
        if isinstance(packet, Connect):
            self._on_connect(packet, now, wall)
        elif isinstance(packet, Publish):
            self.publishes.on_publish(packet, now, wall)
        elif isinstance(packet, PubAck):
            if packet.type is PacketType.PUBACK:
                self.delivering.on_puback(packet.packet_id, now)
            elif packet.type is PacketType.PUBREL:
                self.publishes.on_pubrel(packet.packet_id)
            else:
                raise CloseConnection(Reason.PROTOCOL_ERROR, f"{packet.type.name}: this server never sends QoS 2")
        elif isinstance(packet, Subscribe):
            self.subs.on_subscribe(packet, now, wall)
        elif isinstance(packet, Unsubscribe):
            self.subs.on_unsubscribe(packet, now, wall)
        elif packet.type is PacketType.PINGREQ:
            self.send(PingResp())
        elif isinstance(packet, Disconnect):
            if packet.reason == Reason.DISCONNECT_WITH_WILL:
                self._end("DISCONNECT with will", now, wall, will=True)
            else:
                self._end("DISCONNECT", now, wall, will=False)
        else:
            raise CloseConnection(Reason.PROTOCOL_ERROR, f"{packet.type.name} is not a packet a client sends"
                         + (" (no authentication method was agreed)" if packet.type is PacketType.AUTH else ""))

    def _on_connect(self, c: Connect, now: float, wall: float) -> None:
        self.version = c.protocol_level
        self.client_id = c.client_id
        self.login = c.username
        if c.properties.get_str(Prop.AUTHENTICATION_METHOD) is not None:
            raise CloseConnection(Reason.BAD_AUTHENTICATION_METHOD, "enhanced authentication (AUTH) is not supported")
        if not c.client_id:
            if not c.clean_start and c.protocol_level == MQTT_311:
                raise CloseConnection(Reason.CLIENT_IDENTIFIER_NOT_VALID, "empty client id with clean session 0")
            self.client_id = "auto-" + os.urandom(8).hex()
        found = self.hub.users.authenticate(c.username, c.password)
        if isinstance(found, str):
            raise CloseConnection(Reason.BAD_USER_NAME_OR_PASSWORD, f"user {c.username!r}: {found}")
        if isinstance(found, PasswordCheck):
            self.auth_pending, self._pending_connect = found, c  # the glue verifies off the loop
            return
        self._accept(c, found, now, wall)

    def _accept(self, c: Connect, user: MqttUser, now: float, wall: float) -> None:
        self.user = user
        self.keepalive = c.keepalive
        if self.options.max_keepalive_s and (not c.keepalive or c.keepalive > self.options.max_keepalive_s):
            self.keepalive = self.options.max_keepalive_s
        self.max_send_bytes = c.properties.get_int(Prop.MAXIMUM_PACKET_SIZE, 0) or 0
        device_window = c.properties.get_int(Prop.RECEIVE_MAXIMUM, 65535) or 65535
        self.delivering.window = min(device_window, self.options.max_inflight)
        if c.will is not None:
            self.will = Publish(c.will.topic, c.will.payload, c.will.qos, c.will.retain,
                                properties=c.will.properties)
        expiry = c.properties.get_int(Prop.SESSION_EXPIRY_INTERVAL, 0) or 0
        self.persistent = (not c.clean_start) if self.version == MQTT_311 else expiry > 0
        self._connect_deadline = None
        self.state = MqttState.OPEN
        present = self.subs.start_session(clean=c.clean_start, now=now, wall=wall)
        self.hub.register(self, now, wall)
        self.send(Connack(present, 0, self._connack_props(c)))
        log.info("event=mqtt_connected peer=%s user=%s client=%r version=%s keepalive=%d", self.peer, user.name,
                 self.client_id, "5.0" if self.version == MQTT_5 else "3.1.1", self.keepalive)

    def _connack_props(self, c: Connect) -> Properties:
        if self.version != MQTT_5:
            return NO_PROPERTIES
        values: dict[int, int | str | bytes] = {
            Prop.RECEIVE_MAXIMUM: self.options.receive_maximum,
            Prop.MAXIMUM_PACKET_SIZE: self.options.max_packet_bytes,
            Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0,
            Prop.SHARED_SUBSCRIPTION_AVAILABLE: 0,
        }
        if self.options.topic_alias_maximum:
            values[Prop.TOPIC_ALIAS_MAXIMUM] = self.options.topic_alias_maximum
        if self.client_id != c.client_id:
            values[Prop.ASSIGNED_CLIENT_IDENTIFIER] = self.client_id
        if self.keepalive != c.keepalive:
            values[Prop.SERVER_KEEP_ALIVE] = self.keepalive
        asked = c.properties.get_int(Prop.SESSION_EXPIRY_INTERVAL, 0) or 0
        kept = int(self.core.options.subscription_limits.expiry_s)
        if asked and kept and asked > kept:
            values[Prop.SESSION_EXPIRY_INTERVAL] = kept  # a queue idle for queueExpiry is removed (§3.2.2.3.2)
        return Properties(values)

    # ------------------------------------------------------------------ Consumer (the core calls these)

    def credit(self, sub: RouterSubscription) -> int:
        return self.delivering.credit() if self.state is MqttState.OPEN else 0

    def deliver(self, sub: RouterSubscription, seq: int, item: bytes) -> None:
        self.delivering.deliver(sub, seq, item)

    def subscription_ended(self, sub: RouterSubscription, code: int, reason: str) -> None:
        self.subs.ended(sub, code, reason)

