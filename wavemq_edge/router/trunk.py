"""The trunk between a site router and a designated router (DR), as sans-I/O state machines.

Theory of operation
-------------------
Site side: one ``Uplink`` per ``[[RoutingConfig.Router]]`` (namespace, address) lives as long as the
router; each connection attempt is an ``UplinkSession``. Every message published at the site in that
namespace is appended to the namespace's *trunk queue* (bounded by ``trunkingQueueMax*``, oldest
dropped and counted) and delivered locally at once; the session sends the queue in order, in compact
batches (``compact.py``), with at most ``window`` messages unacknowledged. The DR acknowledges a batch
*after* accepting its messages into its own store; only then are they removed from the trunk queue. On a
new connection the session starts again from the queue's head: unacknowledged messages are resent and
the DR drops the ones it already has by message id. One ordered sender per uplink, so a publisher's
messages arrive in the order they were published (WAVEMQ used 12 parallel senders and lost a message on
every failed send: ``wavemq-behaviour.md`` §5.1, §12 row 24).

Local subscriptions in the namespace are forwarded (``T_SUB``, the subscriber's own signed object, bound
to this site by its ``router_id``); the DR keeps a queue per forwarded subscription while the site is
away and delivers with acknowledgements (``T_DELIVER``/``T_DACK``); the site re-verifies each message and
puts it into that subscription's local queue, except messages that were published at this site.
Queries in the namespace are answered by the DR while the uplink is up. Revocations known to either
side are exchanged on every connection.

DR side: a ``PeerSession`` per accepted site connection. It is the ``Consumer`` of the subscriptions the
site forwarded, so the same credit-based delivery as agents applies.

Liveness: both ends send ``PING`` every ``keepalive_s`` and declare the link dead after ``dead_after_s``
without receiving anything (a silently black-holed TCP connection is noticed), then close; the site's
glue reconnects with exponential backoff and jitter.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..storage import QueueKind, QueueLimits
from ..wave import (
    EntitySecret,
    Message,
    Query,
    VerificationError,
    Verifier,
    WaveError,
    format_id,
    object_id,
)
from ..wire import CloseCode, Frame, FrameType
from .channel import ChannelError, ChannelRole, SecureChannel
from .compact import CompactDecoder, CompactEncoder, CompactError
from .core import QueryReply, QueryResult, RouterCore
from .errors import ErrorCode, RouterError, code_for_reason
from .subscription import Subscription

__all__ = ["PeerSession", "TrunkOptions", "Uplink", "UplinkSession", "UplinkStats"]

log = logging.getLogger("wavemq_edge.router.trunk")

#: Messages per trunk batch; with ~150 bytes each a batch is ~20 KB, well under the frame bound.
BATCH_MESSAGES: Final = 128
#: Raw bytes of messages per batch (a few large payloads make small batches).
BATCH_BYTES: Final = 96 * 1024


@dataclass(frozen=True, slots=True)
class TrunkOptions:
    #: messages sent but not yet acknowledged by the DR, per uplink. It also bounds how much a live-lane
    #: message can find ahead of it in the socket: measured (bench --tier) 256 gave live p99 96 ms at a
    #: 2.8 k/s drain, 512 gave 192 ms at 3.6 k/s; 2048 gave 610 ms.
    window: int = 512
    #: deliveries in flight per forwarded subscription (DR -> site).
    delivery_window: int = 512
    keepalive_s: float = 5.0
    dead_after_s: float = 15.0
    max_frame_bytes: int = 256 * 1024


@dataclass(slots=True)
class UplinkStats:
    state: str = "down"
    since: float = 0.0
    reconnects: int = 0
    sent: int = 0
    acked: int = 0
    refused: int = 0
    rtt_ms: float = 0.0
    last_error: str = ""
    delivered_down: int = 0
    #: bytes written to / read from the trunk socket (channel encryption and framing included)
    bytes_sent: int = 0
    bytes_received: int = 0
    #: messages sent ahead of a draining backlog (their publisher had nothing queued)
    live: int = 0


class _Pending:
    __slots__ = ("kind", "reply", "results", "sub_key")

    def __init__(self, kind: str, sub_key: str = "", reply: QueryReply | None = None) -> None:
        self.kind = kind
        self.sub_key = sub_key
        self.reply = reply
        self.results: list[bytes] = []


class _TrunkEnd:
    """What both ends share: the channel, the compact codecs, keepalive and dead-link detection."""

    def __init__(self, core: RouterCore, channel: SecureChannel, options: TrunkOptions, now: float) -> None:
        self.core = core
        self.channel = channel
        self.options = options
        self.encoder = CompactEncoder()
        self.decoder = CompactDecoder()
        self.closing = False
        self.close_reason = ""
        self._last_rx = now
        self._last_ping = now
        self._ping_token = 0
        self._ping_sent_at: dict[int, float] = {}
        self.rtt_ms = 0.0
        self.on_output: Callable[[], None] | None = None

    def bytes_to_send(self) -> bytes:
        return self.channel.bytes_to_send()

    def _send(self, kind: FrameType, *fields: object) -> None:
        self.channel.send(kind, *fields)
        if self.on_output is not None:
            self.on_output()

    def send_revocations(self, raws: list[bytes]) -> None:
        self._send(FrameType.T_REVOKE, raws)

    def close(self, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.close_reason = reason
            log.info("event=trunk_closed role=%s reason=%r", self.channel.role.value, reason)

    def next_deadline(self) -> float:
        return min(self._last_rx + self.options.dead_after_s, self._last_ping + self.options.keepalive_s)

    def handle_timer(self, now: float) -> None:
        if self.closing:
            return
        if now - self._last_rx >= self.options.dead_after_s:
            self.close(f"no traffic for {now - self._last_rx:.1f} s (dead after {self.options.dead_after_s:g} s)")
            return
        if self.channel.is_open and now - self._last_ping >= self.options.keepalive_s:
            self._ping_token += 1
            self._ping_sent_at[self._ping_token] = now
            if len(self._ping_sent_at) > 16:
                self._ping_sent_at.pop(min(self._ping_sent_at))
            self._last_ping = now
            self._send(FrameType.PING, self._ping_token)

    def receive_bytes(self, data: bytes, now: float) -> None:
        if self.closing:
            return
        self._last_rx = now
        was_open = self.channel.is_open
        self.channel.set_time(self.core.wall(now))
        try:
            self.channel.receive_bytes(data)
            if not was_open and self.channel.is_open:
                self._opened(now)
            while not self.closing:
                frame = self.channel.next_frame()
                if frame is None:
                    break
                self._dispatch_common(frame, now)
        except ChannelError as exc:
            log.warning("event=trunk_auth_failed role=%s reason=%s detail=%r", self.channel.role.value,
                        exc.reason, str(exc))
            self.close(str(exc))
        except (CompactError, _Violation) as exc:
            self.close(f"protocol violation: {exc}")
            self._try_send_error(CloseCode.PROTOCOL_VIOLATION, str(exc))

    def _try_send_error(self, code: CloseCode, reason: str) -> None:
        if self.channel.is_open:
            with contextlib.suppress(ChannelError):
                self.channel.send(FrameType.ERROR, int(code), reason)

    def _dispatch_common(self, frame: Frame, now: float) -> None:
        kind = frame.type
        if kind is FrameType.PING:
            self._send(FrameType.PONG, *frame.fields)
        elif kind is FrameType.PONG:
            token = frame.fields[0] if frame.fields else None
            sent = self._ping_sent_at.pop(token, None) if isinstance(token, int) else None
            if sent is not None:
                self.rtt_ms = 1000.0 * (now - sent)
        elif kind is FrameType.ERROR:
            self.close(f"peer closed the trunk: {frame.fields}")
        else:
            self._dispatch(frame, now)

    def _opened(self, now: float) -> None:
        raise NotImplementedError  # pragma: no cover - subclasses

    def _dispatch(self, frame: Frame, now: float) -> None:
        raise NotImplementedError  # pragma: no cover - subclasses

    def _batch(self, items: list[tuple[int, bytes]]) -> tuple[list[int], list[list[object]], int, bytes]:
        msgs: list[tuple[Message, bytes | None]] = []
        seqs: list[int] = []
        for seq, raw in items:
            try:
                msg = Message.parse(raw)
            except WaveError as exc:  # our own queue holds only accepted messages: corruption
                log.error("event=unparsable_queued_message seq=%d error=%r", seq, str(exc))
                continue
            msgs.append((msg, self.core.proofs.get(msg.proof_id)))
            seqs.append(seq)
        defs, base_ts, blob = self.encoder.encode_batch(msgs)
        return seqs, defs, base_ts, blob


def _source_of(raw: bytes) -> bytes:
    """The source id of a signed message without decoding it: canonical encoding puts key 1 (a 36-byte
    byte string) first in the TBS map, right after the envelope head (``84 0a 01 a?``)."""
    if raw[4:7] == b"\x01\x58\x24":
        return raw[7:43]
    return b""


class _Violation(Exception):
    pass


def _fields(frame: Frame, n: int) -> tuple[object, ...]:
    if len(frame.fields) != n:
        raise _Violation(f"{frame.type.name} has {len(frame.fields)} fields, expected {n}")
    return frame.fields


def _int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Violation("expected an integer field")
    return v


def _bytes(v: object) -> bytes:
    if not isinstance(v, bytes):
        raise _Violation("expected a byte-string field")
    return v


def _int_list(v: object) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise _Violation("expected a list of integers")
    return v


# ---------------------------------------------------------------------------------- site side


class Uplink:
    """The site end of one ``[[RoutingConfig.Router]]``: trunk queue, forwarded subscriptions, stats."""

    def __init__(self, core: RouterCore, me: EntitySecret, namespace: bytes, address: str, limits: QueueLimits,
                 options: TrunkOptions, now: float,
                 revocations: Callable[[], list[bytes]] | None = None,
                 on_revocations: Callable[[list[bytes]], None] | None = None) -> None:
        self.core = core
        self.me = me
        self.namespace = namespace
        self.address = address
        self.options = options
        self.queue_id = "trunk:" + format_id(namespace)
        self.stats = UplinkStats(since=core.wall(now))
        self.session: UplinkSession | None = None
        self.revocations = revocations or (lambda: [])
        self.on_revocations = on_revocations
        #: local subscriptions in this namespace, forwarded on every connection
        self.forwarded: dict[str, Subscription] = {}
        core.queues.create_queue(self.queue_id, QueueKind.TRUNK, limits, now)
        core.trunk_queues[namespace] = self.queue_id
        for sub in core.subscriptions():
            if sub.namespace == namespace and not sub.bound_site:
                self.forwarded[sub.key] = sub

    def backlog(self) -> int:
        return self.core.queues.stats(self.queue_id).depth

    def new_session(self, verifier: Verifier, now: float) -> UplinkSession:
        self.session = UplinkSession(self, verifier, now)
        self.stats.state = "connecting"
        return self.session

    def session_closed(self, now: float) -> None:
        session = self.session
        self.session = None
        was_up = self.stats.state == "up"
        self.stats.state = "down"
        self.stats.since = self.core.wall(now)
        if session is not None:
            self.stats.last_error = session.close_reason
            session.fail_pending(now)
        if was_up:
            log.warning("event=uplink_down namespace=%s backlog=%d reason=%r", format_id(self.namespace),
                        self.backlog(), self.stats.last_error)

    def subscription_changed(self, sub: Subscription, change: str, unsubscribe: bytes | None) -> None:
        if change == "add":
            self.forwarded[sub.key] = sub
            if self.session is not None and self.session.up:
                self.session.forward_subscription(sub)
        else:
            self.forwarded.pop(sub.key, None)
            if self.session is not None and self.session.up:
                self.session.forward_unsubscribe(sub.key, unsubscribe)

    def forwarder(self) -> UplinkSession | None:
        s = self.session
        return s if s is not None and s.up else None

    def status(self) -> dict[str, object]:
        st = self.stats
        return {
            "namespace": format_id(self.namespace),
            "address": self.address,
            "state": st.state,
            "since": int(st.since),
            "backlog": self.backlog(),
            "rtt_ms": round(st.rtt_ms),
            "reconnects": st.reconnects,
            "sent": st.sent,
            "acked": st.acked,
            "refused": st.refused,
            "delivered_down": st.delivered_down,
            "bytes_sent": st.bytes_sent,
            "bytes_received": st.bytes_received,
            "live": st.live,
            "last_error": st.last_error,
        }


class UplinkSession(_TrunkEnd):
    def __init__(self, uplink: Uplink, verifier: Verifier, now: float) -> None:
        channel = SecureChannel(ChannelRole.INITIATOR, uplink.me, verifier=verifier, now_wall=uplink.core.wall(now),
                                max_frame_bytes=uplink.options.max_frame_bytes, namespace=uplink.namespace)
        super().__init__(uplink.core, channel, uplink.options, now)
        self.uplink = uplink
        self.up = False
        self._cursor = -1
        self._inflight: list[tuple[int, float]] = []  # (last seq of a batch, sent at)
        self._inflight_msgs = 0
        self._req = 0
        self._pending: dict[int, _Pending] = {}
        self._ref_to_key: dict[str, str] = {}
        self._key_to_ref: dict[str, str] = {}
        #: per publisher, how many of its queued messages this connection has not sent yet; a publisher
        #: with none may go by the live lane (its order cannot be broken by overtaking a backlog)
        self._unsent: dict[bytes, int] = {}
        #: sequences sent by the live lane, ahead of the in-order cursor (skipped when it gets there)
        self._live_sent: set[int] = set()

    def _opened(self, now: float) -> None:
        up = self.uplink
        assert self.channel.peer is not None
        self.up = True
        up.stats.state = "up"
        up.stats.since = self.core.wall(now)
        self._cursor = self.core.queues.stats(up.queue_id).head - 1
        after = self._cursor
        while True:  # who has messages waiting (cheap: the source id sits at a fixed offset)
            batch = self.core.queues.peek(up.queue_id, after, 4096)
            if not batch:
                break
            for seq, raw in batch:
                src = _source_of(raw)
                self._unsent[src] = self._unsent.get(src, 0) + 1
                after = seq
        log.info("event=uplink_up namespace=%s dr=%s backlog=%d", format_id(up.namespace),
                 format_id(self.channel.peer.id), up.backlog())
        revs = up.revocations()
        if revs:
            self._send(FrameType.T_REVOKE, revs)
        for sub in list(up.forwarded.values()):
            self.forward_subscription(sub)
        self.pump(now)

    def forward_subscription(self, sub: Subscription) -> None:
        self._req += 1
        self._pending[self._req] = _Pending("sub", sub_key=sub.key)
        self._send(FrameType.T_SUB, self._req, sub.record, sub.proof)

    def forward_unsubscribe(self, key: str, unsubscribe: bytes | None) -> None:
        ref = self._key_to_ref.pop(key, None)
        if ref is None:
            return
        self._ref_to_key.pop(ref, None)
        self._req += 1
        self._pending[self._req] = _Pending("unsub")
        self._send(FrameType.T_UNSUB, self._req, ref, unsubscribe)

    def forward_query(self, raw: bytes, proof: bytes, after_uri: str | None, limit: int,
                      reply: QueryReply) -> None:
        self._req += 1
        self._pending[self._req] = _Pending("query", reply=reply)
        self._send(FrameType.T_QUERY, self._req, raw, proof, after_uri, limit)

    def offer_live(self, seq: int, msg: Message) -> None:
        """A message was just appended to the trunk queue. If a backlog is ahead of it and its publisher
        has nothing waiting, send it now (the live lane) so live traffic is not stuck behind a drain;
        otherwise it waits its turn, which keeps every publisher's order."""
        if not self.up or self.closing:
            return
        src = msg.src
        backlog_ahead = seq > self._cursor + 1 or self._inflight_msgs >= self.options.window
        if backlog_ahead and self._unsent.get(src, 0) == 0:
            defs, base_ts, blob = self.encoder.encode_batch([(msg, self.core.proofs.get(msg.proof_id))])
            self._send(FrameType.T_PUB, seq, defs, base_ts, blob, [], True)
            self._live_sent.add(seq)
            self.uplink.stats.sent += 1
            self.uplink.stats.live += 1
        else:
            self._unsent[src] = self._unsent.get(src, 0) + 1

    def fail_pending(self, now: float) -> None:
        """The connection is gone: queries waiting for the DR are answered from the site's store."""
        for p in self._pending.values():
            if p.kind == "query" and p.reply is not None and p.results == []:
                p.reply.query_refused(int(ErrorCode.INTERNAL), "the uplink to the designated router was lost "
                                      "during the query; retry (it is answered locally while the uplink is down)")
        self._pending.clear()

    def pump(self, now: float) -> None:
        """Send trunk batches while the in-flight window has room."""
        if not self.up or self.closing:
            return
        queues = self.core.queues
        qid = self.uplink.queue_id
        while self._inflight_msgs < self.options.window:
            room = min(BATCH_MESSAGES, self.options.window - self._inflight_msgs)
            items = queues.peek(qid, self._cursor, room)
            if not items:
                return
            size = 0
            cut = len(items)
            for i, (_seq, raw) in enumerate(items):
                size += len(raw)
                if size > BATCH_BYTES and i > 0:
                    cut = i
                    break
            items = items[:cut]
            first = items[0][0]
            last = items[-1][0]
            to_send = [(q, raw) for q, raw in items if q not in self._live_sent]
            skipped = [q for q, _raw in items if q in self._live_sent]
            self._live_sent.difference_update(skipped)
            for _q, raw in to_send:
                src = _source_of(raw)
                left = self._unsent.get(src, 0) - 1
                if left > 0:
                    self._unsent[src] = left
                else:
                    self._unsent.pop(src, None)
            seqs, defs, base_ts, blob = self._batch(to_send)
            sent = {q for q in seqs}
            skipped += [q for q, _raw in to_send if q not in sent]  # unparsable: skipped, counted in logs
            self._cursor = last
            self._send(FrameType.T_PUB, first, defs, base_ts, blob, sorted(skipped), False)
            self._inflight.append((last, now))
            self._inflight_msgs += len(items)
            self.uplink.stats.sent += len(seqs)

    def _dispatch(self, frame: Frame, now: float) -> None:
        kind = frame.type
        up = self.uplink
        if kind is FrameType.T_ACK:
            upto, refused = _fields(frame, 2)
            upto = _int(upto)
            if not isinstance(refused, list):
                raise _Violation("T_ACK refused list")
            for r in refused:
                log.warning("event=trunk_message_refused namespace=%s detail=%r", format_id(up.namespace), r)
            up.stats.refused += len(refused)
            if upto < 0:  # refusals of live-lane messages only; they stay queued until the cursor acks them
                return
            before = self.core.queues.stats(up.queue_id).depth
            self.core.queues.ack(up.queue_id, upto, now)
            up.stats.acked += before - self.core.queues.stats(up.queue_id).depth
            while self._inflight and self._inflight[0][0] <= upto:
                _last, sent = self._inflight.pop(0)
                self.uplink.stats.rtt_ms = 1000.0 * (now - sent)
            self._inflight_msgs = max(0, self._cursor - upto) if self._inflight else 0
            self.pump(now)
        elif kind is FrameType.T_SUBSCRIBED:
            req, ref, _expiry = _fields(frame, 3)
            p = self._pending.pop(_int(req), None)
            if p is not None and p.kind == "sub" and isinstance(ref, str):
                self._ref_to_key[ref] = p.sub_key
                self._key_to_ref[p.sub_key] = ref
        elif kind is FrameType.T_REFUSED:
            req, code, reason = _fields(frame, 3)
            p = self._pending.pop(_int(req), None)
            if p is not None and p.kind == "query" and p.reply is not None:
                p.reply.query_refused(_int(code), str(reason))
            elif p is not None:
                log.warning("event=trunk_request_refused kind=%s code=%s reason=%r", p.kind, code, reason)
        elif kind is FrameType.T_OK:
            self._pending.pop(_int(_fields(frame, 1)[0]), None)
        elif kind is FrameType.T_DELIVER:
            ref, seqs, defs, base_ts, blob = _fields(frame, 5)
            seq_list = _int_list(seqs)
            self.decoder.apply_defs(defs)
            msgs = self.decoder.decode_batch(_int(base_ts), _bytes(blob))
            if len(msgs) != len(seq_list):
                raise _Violation("T_DELIVER sequence count does not match its messages")
            key = self._ref_to_key.get(str(ref))
            for msg, proof in msgs:
                if key is not None and proof is not None and self.core.deliver_from_upstream(key, msg, proof, now):
                    up.stats.delivered_down += 1
            # acknowledged whatever happened: dropped ones were dropped on purpose (published here,
            # failing re-verification, or for a subscription that has ended)
            self._send(FrameType.T_DACK, ref, seq_list)
        elif kind is FrameType.T_SUB_END:
            ref, code, reason = _fields(frame, 3)
            key = self._ref_to_key.pop(str(ref), None)
            if key is not None:
                self._key_to_ref.pop(key, None)
            log.info("event=forwarded_subscription_ended ref=%s code=%s reason=%r", ref, code, reason)
        elif kind is FrameType.T_RESULT:
            req, raw = _fields(frame, 2)
            p = self._pending.get(_int(req))
            if p is not None:
                p.results.append(_bytes(raw))
        elif kind is FrameType.T_QUERY_END:
            req, _count, continuation = _fields(frame, 3)
            p = self._pending.pop(_int(req), None)
            if p is not None and p.reply is not None:
                p.reply.query_results(p.results, continuation if isinstance(continuation, str) else None,
                                      "designated")
        elif kind is FrameType.T_REVOKE:
            (revs,) = _fields(frame, 1)
            if isinstance(revs, list) and self.uplink.on_revocations is not None:
                self.uplink.on_revocations([r for r in revs if isinstance(r, bytes)])
        else:
            raise _Violation(f"{kind.name} is not a frame a designated router sends")


# ---------------------------------------------------------------------------------- DR side


class PeerSession(_TrunkEnd):
    """The designated router's end of one site's trunk; the consumer of that site's subscriptions."""

    def __init__(self, core: RouterCore, me: EntitySecret, verifier: Verifier, route_proofs: dict[bytes, bytes],
                 options: TrunkOptions, now: float, peer: str = "?",
                 on_revocations: Callable[[list[bytes]], None] | None = None,
                 revocations: Callable[[], list[bytes]] | None = None) -> None:
        channel = SecureChannel(ChannelRole.RESPONDER, me, verifier=verifier, now_wall=core.wall(now),
                                max_frame_bytes=options.max_frame_bytes, route_proofs=route_proofs)
        super().__init__(core, channel, options, now)
        self.peer_address = peer
        self.site_id = b""
        self.on_revocations = on_revocations
        self.revocations = revocations or (lambda: [])
        self.subscriptions: dict[str, Subscription] = {}
        self._inflight: dict[str, int] = {}
        self._out_deliveries: dict[str, list[tuple[int, bytes]]] = {}
        self.received = 0

    def _opened(self, now: float) -> None:
        assert self.channel.peer is not None
        self.site_id = self.channel.peer.id
        log.info("event=site_connected site=%s peer=%s namespace=%s", format_id(self.site_id), self.peer_address,
                 format_id(self.channel.namespace))
        revs = self.revocations()
        if revs:
            self._send(FrameType.T_REVOKE, revs)

    def connection_lost(self, now: float) -> None:
        self.closing = True
        for sub in list(self.subscriptions.values()):
            self.core.detach(self, sub, now)
        self.subscriptions.clear()
        self._out_deliveries.clear()

    # -- Consumer ---------------------------------------------------------------------------------

    def credit(self, sub: Subscription) -> int:
        if self.closing or not self.channel.is_open:
            return 0
        return self.options.delivery_window - self._inflight.get(sub.key, 0)

    def deliver(self, sub: Subscription, seq: int, item: bytes) -> None:
        self._inflight[sub.key] = self._inflight.get(sub.key, 0) + 1
        pending = self._out_deliveries.get(sub.key)
        if pending is None:
            self._out_deliveries[sub.key] = [(seq, item)]
            if self.on_output is not None:
                self.on_output()
        else:
            pending.append((seq, item))

    def subscription_ended(self, sub: Subscription, code: int, reason: str) -> None:
        self.subscriptions.pop(sub.key, None)
        self._inflight.pop(sub.key, None)
        self._out_deliveries.pop(sub.key, None)
        if self.channel.is_open and not self.closing:
            self._send(FrameType.T_SUB_END, sub.key, code, reason)

    def flush_deliveries(self) -> None:
        """Encode what ``deliver`` collected into compact ``T_DELIVER`` batches."""
        if not self._out_deliveries or self.closing:
            return
        pending, self._out_deliveries = self._out_deliveries, {}
        for key, items in pending.items():
            for start in range(0, len(items), BATCH_MESSAGES):
                chunk = items[start : start + BATCH_MESSAGES]
                seqs, defs, base_ts, blob = self._batch(chunk)
                self.channel.send(FrameType.T_DELIVER, key, seqs, defs, base_ts, blob)

    # -- requests from the site ---------------------------------------------------------------------

    def _dispatch(self, frame: Frame, now: float) -> None:
        kind = frame.type
        if not self.site_id:
            raise _Violation("trunk frame before the handshake")
        if kind is FrameType.T_PUB:
            first, defs, base_ts, blob, skipped, live = _fields(frame, 6)
            first = _int(first)
            skip = set(_int_list(skipped))
            self.decoder.apply_defs(defs)
            msgs = self.decoder.decode_batch(_int(base_ts), _bytes(blob))
            refused: list[list[object]] = []
            seq = first - 1
            for msg, carried in msgs:
                seq += 1
                while seq in skip:
                    seq += 1
                proof = carried if carried is not None else self.core.proofs.get(msg.proof_id)
                try:
                    if proof is None:
                        raise RouterError(ErrorCode.NO_PROOF, f"proof {format_id(msg.proof_id)} unknown here")
                    self.core.publish_from_site(self.site_id, msg, proof, now)
                except RouterError as exc:
                    self.core.counters.refuse(exc.code)
                    refused.append([seq, int(exc.code), str(exc)])
            self.received += len(msgs)
            if live is True:  # a live-lane message: acknowledged later with the in-order batches
                if refused:
                    self._send(FrameType.T_ACK, -1, refused)
                return
            self._send(FrameType.T_ACK, first + len(msgs) + len(skip) - 1, refused)
        elif kind is FrameType.T_SUB:
            req, raw, sub_proof = _fields(frame, 3)
            try:
                forwarded = self.core.subscribe_from_site(self, self.site_id, _bytes(raw), _bytes(sub_proof), now)
            except RouterError as exc:
                self._send(FrameType.T_REFUSED, _int(req), int(exc.code), str(exc))
                return
            self.subscriptions[forwarded.key] = forwarded
            self._send(FrameType.T_SUBSCRIBED, _int(req), forwarded.key, int(forwarded.expiry))
        elif kind is FrameType.T_DACK:
            ref, seqs = _fields(frame, 2)
            sub = self.subscriptions.get(str(ref))
            if sub is not None:
                n = self.core.acknowledge(self, sub, _int_list(seqs), now)
                self._inflight[sub.key] = max(0, self._inflight.get(sub.key, 0) - n)
        elif kind is FrameType.T_UNSUB:
            req, ref, raw = _fields(frame, 3)
            if raw is not None:
                raw = _bytes(raw)
            try:
                self.core.unsubscribe_from_site(self.site_id, str(ref), raw, now)
            except RouterError as exc:
                self._send(FrameType.T_REFUSED, _int(req), int(exc.code), str(exc))
                return
            self.subscriptions.pop(str(ref), None)
            self._send(FrameType.T_OK, _int(req))
        elif kind is FrameType.T_QUERY:
            req, raw, q_proof, after, limit = _fields(frame, 5)
            req = _int(req)
            try:
                result = self._query(_bytes(raw), _bytes(q_proof), after if isinstance(after, str) else None,
                                     _int(limit), now)
            except RouterError as exc:
                self._send(FrameType.T_REFUSED, req, int(exc.code), str(exc))
                return
            for _uri, message in result.messages:
                self._send(FrameType.T_RESULT, req, message)
            self._send(FrameType.T_QUERY_END, req, len(result.messages), result.continuation)
        elif kind is FrameType.T_REVOKE:
            (revs,) = _fields(frame, 1)
            if isinstance(revs, list) and self.on_revocations is not None:
                self.on_revocations([r for r in revs if isinstance(r, bytes)])
        else:
            raise _Violation(f"{kind.name} is not a frame a site sends")

    def _query(self, raw: bytes, proof: bytes, after: str | None, limit: int, now: float) -> QueryResult:
        core = self.core
        try:
            q = Query.parse(raw)
            if q.namespace not in core.designated:
                raise RouterError(ErrorCode.WRONG_NAMESPACE, f"not designated for {format_id(q.namespace)}")
            entity = core.entity_from_proof(proof, object_id(proof), q.src)
            q.verify(entity, now=core.wall(now), skew_s=core.options.skew_s,
                     max_age_s=core.options.request_max_age_s)
        except VerificationError as exc:
            raise RouterError(code_for_reason(exc.reason), str(exc)) from None
        return core.local_query(q, proof, after, limit, now)

