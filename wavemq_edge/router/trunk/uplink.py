"""The site end of the trunk: ``Uplink`` (one per ``[[RoutingConfig.Router]]``), ``UplinkSession`` (one per
connection) and ``UplinkSet`` (the core's tiering hooks). See the package docstring."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from ...wave import EntitySecret, Message, Verifier, format_id
from ...wire import Frame, FrameType
from ..channel import ChannelRole, SecureChannel
from ..core import RouterCore
from ..errors import ErrorCode
from ..hooks import QueryForwarder, QueryReply, SubscriptionChange
from ..subscription import RouterSubscription
from ..tiering import trunk_queue_id
from .end import (
    BATCH_BYTES,
    BATCH_MESSAGES,
    TrunkEnd,
    TrunkOptions,
    TrunkViolation,
    as_bytes,
    as_int,
    as_int_list,
    fields,
    source_of,
)

__all__ = ["Uplink", "UplinkSession", "UplinkSet", "UplinkStats", "UplinkStatus"]

log = logging.getLogger("wavemq_edge.router.trunk")

#: Queued messages read per ``peek`` when a connection opens and counts who has messages waiting.
_SCAN_BATCH: Final = 4096


@dataclass(slots=True)
class UplinkStats:
    state: str = "down"
    #: wall-clock seconds of the last change of state
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


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    """One uplink's figures, copied for a status snapshot."""

    namespace: str
    address: str
    stats: UplinkStats
    backlog: int


class _Pending:
    __slots__ = ("kind", "reply", "results", "sub_key")

    def __init__(self, kind: str, sub_key: str = "", reply: QueryReply | None = None) -> None:
        self.kind = kind
        self.sub_key = sub_key
        self.reply = reply
        self.results: list[bytes] = []


class Uplink:
    """The site end of one ``[[RoutingConfig.Router]]``: trunk queue, forwarded subscriptions, stats.
    The core created the trunk queue (``RouterCore(trunked=...)``)."""

    def __init__(self, core: RouterCore, me: EntitySecret, namespace: bytes, address: str, options: TrunkOptions,
                 wall: float, revocations: Callable[[], list[bytes]] | None = None,
                 on_revocations: Callable[[list[bytes]], None] | None = None) -> None:
        self.core = core
        self.me = me
        self.namespace = namespace
        self.address = address
        self.options = options
        self.queue_id = trunk_queue_id(namespace)
        self.stats = UplinkStats(since=wall)
        self.session: UplinkSession | None = None
        self.revocations = revocations or (lambda: [])
        self.on_revocations = on_revocations
        #: local subscriptions in this namespace, forwarded on every connection
        self.forwarded: dict[str, RouterSubscription] = {}
        for sub in core.subscriptions():
            if sub.namespace == namespace and not sub.bound_site:
                self.forwarded[sub.key] = sub

    def backlog(self) -> int:
        return self.core.queues.stats(self.queue_id).depth

    def status(self) -> UplinkStatus:
        st = self.stats
        return UplinkStatus(format_id(self.namespace), self.address, replace(st, rtt_ms=st.rtt_ms), self.backlog())

    def new_session(self, verifier: Verifier, now: float) -> UplinkSession:
        self.session = UplinkSession(self, verifier, now)
        self.stats.state = "connecting"
        return self.session

    def session_closed(self, now: float, wall: float) -> None:
        session = self.session
        self.session = None
        was_up = self.stats.state == "up"
        self.stats.state = "down"
        self.stats.since = wall
        if session is not None:
            self.stats.last_error = session.close_reason
            session.fail_pending()
        if was_up:
            log.warning("event=uplink_down namespace=%s backlog=%d reason=%r", format_id(self.namespace),
                        self.backlog(), self.stats.last_error)

    def trunk_appended(self, seq: int, msg: Message) -> None:
        if self.session is not None:
            self.session.offer_live(seq, msg)
            self.session.wake()

    def subscription_changed(self, sub: RouterSubscription, change: SubscriptionChange,
                             unsubscribe: bytes | None) -> None:
        live = self.session is not None and self.session.up
        if change is SubscriptionChange.ADDED:
            self.forwarded[sub.key] = sub
            if live and self.session is not None:
                self.session.forward_subscription(sub)
        else:
            self.forwarded.pop(sub.key, None)
            if live and self.session is not None:
                self.session.forward_unsubscribe(sub.key, unsubscribe)

    def forwarder(self) -> UplinkSession | None:
        s = self.session
        return s if s is not None and s.up else None


class UplinkSet:
    """Every uplink of this router, by namespace: the ``TieringHooks`` the core is built with (the
    uplinks themselves are added once the core exists)."""

    def __init__(self) -> None:
        self._by_namespace: dict[bytes, Uplink] = {}

    def add(self, uplink: Uplink) -> None:
        self._by_namespace[uplink.namespace] = uplink

    def __iter__(self) -> Iterator[Uplink]:
        return iter(list(self._by_namespace.values()))

    def __len__(self) -> int:
        return len(self._by_namespace)

    def trunk_appended(self, namespace: bytes, seq: int, msg: Message) -> None:
        up = self._by_namespace.get(namespace)
        if up is not None:
            up.trunk_appended(seq, msg)

    def subscription_changed(self, sub: RouterSubscription, change: SubscriptionChange,
                             unsubscribe: bytes | None) -> None:
        up = self._by_namespace.get(sub.namespace)
        if up is not None:
            up.subscription_changed(sub, change, unsubscribe)

    def query_forwarder(self, namespace: bytes) -> QueryForwarder | None:
        up = self._by_namespace.get(namespace)
        return None if up is None else up.forwarder()


class UplinkSession(TrunkEnd):
    def __init__(self, uplink: Uplink, verifier: Verifier, now: float) -> None:
        channel = SecureChannel(ChannelRole.INITIATOR, uplink.me, verifier=verifier,
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

    def _opened(self, now: float, wall: float) -> None:
        up = self.uplink
        assert self.channel.peer is not None
        self.up = True
        up.stats.state = "up"
        up.stats.since = wall
        self._cursor = self.core.queues.stats(up.queue_id).head - 1
        after = self._cursor
        while True:  # who has messages waiting (cheap: the source id sits at a fixed offset)
            batch = self.core.queues.peek(up.queue_id, after, _SCAN_BATCH)
            if not batch:
                break
            for seq, raw in batch:
                src = source_of(raw)
                self._unsent[src] = self._unsent.get(src, 0) + 1
                after = seq
        log.info("event=uplink_up namespace=%s dr=%s backlog=%d", format_id(up.namespace),
                 format_id(self.channel.peer.id), up.backlog())
        revs = up.revocations()
        if revs:
            self._send(FrameType.T_REVOKE, revs)
        for sub in list(up.forwarded.values()):
            self.forward_subscription(sub)
        self.prepare_output(now)

    # ------------------------------------------------------------------ requests to the DR

    def forward_subscription(self, sub: RouterSubscription) -> None:
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

    def fail_pending(self) -> None:
        """The connection is gone: queries waiting for the DR are answered from the site's store."""
        for p in self._pending.values():
            if p.kind == "query" and p.reply is not None and p.results == []:
                p.reply.query_refused(int(ErrorCode.INTERNAL), "the uplink to the designated router was lost "
                                      "during the query; retry (it is answered locally while the uplink is down)")
        self._pending.clear()

    # ------------------------------------------------------------------ the ordered sender

    def prepare_output(self, now: float) -> None:
        """Send trunk batches while the in-flight window has room."""
        if not self.up or self.closing:
            return
        while self._inflight_msgs < self.options.window:
            room = min(BATCH_MESSAGES, self.options.window - self._inflight_msgs)
            items = self.core.queues.peek(self.uplink.queue_id, self._cursor, room)
            if not items:
                return
            self._send_batch(_cut(items), now)

    def _send_batch(self, items: list[tuple[int, bytes]], now: float) -> None:
        first = items[0][0]
        last = items[-1][0]
        to_send = [(q, raw) for q, raw in items if q not in self._live_sent]
        skipped = [q for q, _raw in items if q in self._live_sent]
        self._live_sent.difference_update(skipped)
        for _q, raw in to_send:
            src = source_of(raw)
            left = self._unsent.get(src, 0) - 1
            if left > 0:
                self._unsent[src] = left
            else:
                self._unsent.pop(src, None)
        seqs, defs, base_ts, blob = self._batch(to_send)
        sent = set(seqs)
        skipped += [q for q, _raw in to_send if q not in sent]  # unparsable: skipped, counted in logs
        self._cursor = last
        self._send(FrameType.T_PUB, first, defs, base_ts, blob, sorted(skipped), False)
        self._inflight.append((last, now))
        self._inflight_msgs += len(items)
        self.uplink.stats.sent += len(seqs)

    # ------------------------------------------------------------------ frames from the DR

    def _dispatch(self, frame: Frame, now: float, wall: float) -> None:
        handler = _HANDLERS.get(frame.type)
        if handler is None:
            raise TrunkViolation(f"{frame.type.name} is not a frame a designated router sends")
        handler(self, frame, now, wall)

    def _on_ack(self, frame: Frame, now: float, wall: float) -> None:
        up = self.uplink
        upto_f, refused = fields(frame, 2)
        upto = as_int(upto_f)
        if not isinstance(refused, list):
            raise TrunkViolation("T_ACK refused list")
        for r in refused:
            log.warning("event=trunk_message_refused namespace=%s detail=%r", format_id(up.namespace), r)
        up.stats.refused += len(refused)
        if upto < 0:  # refusals of live-lane messages only; they stay queued until the cursor acks them
            return
        queues = self.core.queues
        before = queues.stats(up.queue_id).depth
        queues.ack(up.queue_id, upto, now)
        up.stats.acked += before - queues.stats(up.queue_id).depth
        while self._inflight and self._inflight[0][0] <= upto:
            _last, sent = self._inflight.pop(0)
            up.stats.rtt_ms = 1000.0 * (now - sent)
        self._inflight_msgs = max(0, self._cursor - upto) if self._inflight else 0
        self.prepare_output(now)

    def _on_subscribed(self, frame: Frame, now: float, wall: float) -> None:
        req, ref, _expiry = fields(frame, 3)
        p = self._pending.pop(as_int(req), None)
        if p is not None and p.kind == "sub" and isinstance(ref, str):
            self._ref_to_key[ref] = p.sub_key
            self._key_to_ref[p.sub_key] = ref

    def _on_refused(self, frame: Frame, now: float, wall: float) -> None:
        req, code, reason = fields(frame, 3)
        p = self._pending.pop(as_int(req), None)
        if p is not None and p.kind == "query" and p.reply is not None:
            p.reply.query_refused(as_int(code), str(reason))
        elif p is not None:
            log.warning("event=trunk_request_refused kind=%s code=%s reason=%r", p.kind, code, reason)

    def _on_ok(self, frame: Frame, now: float, wall: float) -> None:
        self._pending.pop(as_int(fields(frame, 1)[0]), None)

    def _on_deliver(self, frame: Frame, now: float, wall: float) -> None:
        ref, seqs, defs, base_ts, blob = fields(frame, 5)
        seq_list = as_int_list(seqs)
        self.decoder.apply_defs(defs)
        msgs = self.decoder.decode_batch(as_int(base_ts), as_bytes(blob))
        if len(msgs) != len(seq_list):
            raise TrunkViolation("T_DELIVER sequence count does not match its messages")
        key = self._ref_to_key.get(str(ref))
        tiering = self.core.tiering
        for msg, proof in msgs:
            if key is not None and proof is not None and tiering.deliver_from_upstream(key, msg, proof, now, wall):
                self.uplink.stats.delivered_down += 1
        # acknowledged whatever happened: dropped ones were dropped on purpose (published here,
        # failing re-verification, or for a subscription that has ended)
        self._send(FrameType.T_DACK, ref, seq_list)

    def _on_sub_end(self, frame: Frame, now: float, wall: float) -> None:
        ref, code, reason = fields(frame, 3)
        key = self._ref_to_key.pop(str(ref), None)
        if key is not None:
            self._key_to_ref.pop(key, None)
        log.info("event=forwarded_subscription_ended ref=%s code=%s reason=%r", ref, code, reason)

    def _on_result(self, frame: Frame, now: float, wall: float) -> None:
        req, raw = fields(frame, 2)
        p = self._pending.get(as_int(req))
        if p is not None:
            p.results.append(as_bytes(raw))

    def _on_query_end(self, frame: Frame, now: float, wall: float) -> None:
        req, _count, continuation = fields(frame, 3)
        p = self._pending.pop(as_int(req), None)
        if p is not None and p.reply is not None:
            p.reply.query_results(p.results, continuation if isinstance(continuation, str) else None, "designated")

    def _on_revoke(self, frame: Frame, now: float, wall: float) -> None:
        (revs,) = fields(frame, 1)
        if isinstance(revs, list) and self.uplink.on_revocations is not None:
            self.uplink.on_revocations([r for r in revs if isinstance(r, bytes)])


def _cut(items: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The longest prefix within ``BATCH_BYTES`` (at least one item)."""
    size = 0
    for i, (_seq, raw) in enumerate(items):
        size += len(raw)
        if size > BATCH_BYTES and i > 0:
            return items[:i]
    return items


_HANDLERS: dict[FrameType, Callable[[UplinkSession, Frame, float, float], None]] = {
    FrameType.T_ACK: UplinkSession._on_ack,
    FrameType.T_SUBSCRIBED: UplinkSession._on_subscribed,
    FrameType.T_REFUSED: UplinkSession._on_refused,
    FrameType.T_OK: UplinkSession._on_ok,
    FrameType.T_DELIVER: UplinkSession._on_deliver,
    FrameType.T_SUB_END: UplinkSession._on_sub_end,
    FrameType.T_RESULT: UplinkSession._on_result,
    FrameType.T_QUERY_END: UplinkSession._on_query_end,
    FrameType.T_REVOKE: UplinkSession._on_revoke,
}
