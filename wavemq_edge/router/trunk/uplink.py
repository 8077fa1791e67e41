"""The site end of the trunk: ``Uplink`` (one per ``[[RoutingConfig.Router]]``), ``UplinkSession`` (one per
connection) and ``UplinkSet`` (the core's tiering hooks). See the package docstring."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

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
from .lanes import BACKLOG, LIVE, MAX_HOLES, AckedRanges, Item, Lane, SentFrame, cut, pick, plan, runs

__all__ = ["Uplink", "UplinkSession", "UplinkSet", "UplinkStats", "UplinkStatus"]

log = logging.getLogger("wavemq_edge.router.trunk")


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
    #: messages sent by the live lane while a backlog was still draining
    live: int = 0
    #: publishers held in the backlog lane on this connection (more than ``PROMOTE_MAX`` queued)
    held: int = 0


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
        #: queued messages the DR acknowledged that the queue cannot drop yet (``lanes.py``)
        self.acked = AckedRanges()
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
            self.session.wake()  # the glue calls prepare_output once per write pass: messages batch

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
        self._req = 0
        self._pending: dict[int, _Pending] = {}
        self._ref_to_key: dict[str, str] = {}
        self._key_to_ref: dict[str, str] = {}
        #: the last sequence queued when the connection opened: what is at or below it is the backlog
        self._boundary = -1
        #: last sequence the backlog lane / the live lane has looked at
        self._backlog_cursor = -1
        self._live_cursor = -1
        #: backlog of publishers with a small one, sent first by the live lane (their order is kept)
        self._promote: list[int] = []
        self._promoted: set[int] = set()
        #: publishers with a larger backlog: their new messages follow it in the backlog lane
        self._held: set[bytes] = set()
        self._backlog_lane = Lane()
        self._live_lane = Lane()

    def _opened(self, now: float, wall: float) -> None:
        up = self.uplink
        assert self.channel.peer is not None
        self.up = True
        up.stats.state = "up"
        up.stats.since = wall
        st = self.core.queues.stats(up.queue_id)
        self._boundary = self._live_cursor = st.tail - 1
        self._backlog_cursor = st.head - 1
        lanes = plan(self._peek, up.acked, st.head - 1, self.options.window)
        self._promote, self._held = lanes.promote, lanes.held
        self._promoted = set(self._promote)
        up.stats.held = len(self._held)
        log.info("event=uplink_up namespace=%s dr=%s backlog=%d promoted=%d held=%d", format_id(up.namespace),
                 format_id(self.channel.peer.id), up.backlog(), len(self._promote), len(self._held))
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

    def fail_pending(self) -> None:
        """The connection is gone: queries waiting for the DR are answered from the site's store."""
        for p in self._pending.values():
            if p.kind == "query" and p.reply is not None and p.results == []:
                p.reply.query_refused(int(ErrorCode.INTERNAL), "the uplink to the designated router was lost "
                                      "during the query; retry (it is answered locally while the uplink is down)")
        self._pending.clear()

    # ------------------------------------------------------------------ the two lanes

    def prepare_output(self, now: float) -> None:
        """Send the live lane (small backlogs, then what publishers not held published since the
        connection opened) while its window has room, then one batch of the backlog (once it is all
        sent: what held publishers published since, after it). The glue calls again while ``has_work``,
        so each backlog batch is written in its own loop iteration and a live message never waits for a
        window's worth of backlog to be encoded."""
        if not self.up or self.closing:
            return
        self._send_live(now)
        self._send_backlog(now)

    def has_work(self) -> bool:
        return (self.up and not self.closing and not self.backlog_sent()
                and self.options.window - self._backlog_lane.inflight >= self._room_needed())

    def backlog_sent(self) -> bool:
        return self._backlog_cursor >= self._boundary

    def _room_needed(self) -> int:
        return 1 if self._backlog_lane.inflight == 0 else self._full_frame()

    def _peek(self, after: int, n: int) -> list[Item]:
        return self.core.queues.peek(self.uplink.queue_id, after, n)

    def _send_live(self, now: float) -> None:
        lane, window = self._live_lane, self.options.window
        while self._promote and lane.inflight < window:
            items = self._take_promoted(min(BATCH_MESSAGES, window - lane.inflight))
            if items:
                self._send_frame(True, items, now)
        self._send_new(True, now)

    def _send_new(self, live: bool, now: float) -> None:
        """Send messages published since the connection opened by one lane: the live lane takes those of
        publishers not held, the backlog lane (once its backlog is sent) those of held publishers."""
        lane, window, held = (self._live_lane if live else self._backlog_lane), self.options.window, self._held
        mine = None if not held else (lambda raw: (source_of(raw) in held) != live)
        while lane.inflight < window:
            cursor = self._live_cursor if live else self._backlog_cursor
            items, skip_to, cut_short = pick(self._peek, cursor, min(BATCH_MESSAGES, window - lane.inflight), mine)
            if not items or (not cut_short and len(items) < self._full_frame() and lane.inflight > 0):
                items = []  # a small frame only when the lane is idle; else the next ack brings more
            cursor = items[-1][0] if items else skip_to
            if live:
                self._live_cursor = cursor
            else:
                self._backlog_cursor = cursor
            if not items:
                return
            self._send_frame(live, items, now)

    def _full_frame(self) -> int:
        """Messages of a frame worth sending while the lane still has one in flight (Nagle's rule: a
        fast publisher's messages batch while the DR acknowledges, instead of a frame each)."""
        return min(BATCH_MESSAGES, max(1, self.options.window // 4))

    def _take_promoted(self, room: int) -> list[tuple[int, bytes]]:
        """The next promoted messages, in order, with few enough gaps between them for one frame."""
        queues, qid = self.core.queues, self.uplink.queue_id
        items: list[tuple[int, bytes]] = []
        size = 0
        while self._promote and len(items) < room:
            seq = self._promote[0]
            if items and (seq - items[0][0] + 1 - len(items) - 1 > MAX_HOLES or size > BATCH_BYTES):
                break
            self._promote.pop(0)
            got = queues.peek(qid, seq - 1, 1)
            if got and got[0][0] == seq:  # else dropped meanwhile (queue bound)
                items.append(got[0])
                size += len(got[0][1])
        return items

    def _send_backlog(self, now: float) -> None:
        """One batch of the backlog; once it is all sent, held publishers' new messages."""
        lane, window, acked = self._backlog_lane, self.options.window, self.uplink.acked
        while window - lane.inflight >= self._room_needed() and self._backlog_cursor < self._boundary:
            end = acked.covering(self._backlog_cursor + 1)
            if end is not None:  # acknowledged on an earlier connection
                self._backlog_cursor = end
                continue
            room = min(BATCH_MESSAGES, window - lane.inflight)
            stop = min(self._boundary, (acked.next_start(self._backlog_cursor) or self._boundary + 1) - 1)
            items = [it for it in self.core.queues.peek(self.uplink.queue_id, self._backlog_cursor, room)
                     if it[0] <= stop]
            if not items:
                self._backlog_cursor = stop
                continue
            items = cut(items)
            self._backlog_cursor = items[-1][0]
            entries = [it for it in items if it[0] not in self._promoted]
            if entries:
                self._send_frame(False, entries, now)
                return  # one batch per call (see prepare_output)
        if self._held and self.backlog_sent():
            self._send_new(False, now)

    def _send_frame(self, live: bool, items: list[tuple[int, bytes]], now: float) -> None:
        seqs, defs, base_ts, blob = self._batch(items)
        ranges = runs([q for q, _raw in items])
        if not seqs:  # only unparsable messages (logged): nothing to send, nothing to wait for
            for a, b in ranges:
                self.uplink.acked.add(a, b)
            self._advance_queue(now)
            return
        first, last = seqs[0], seqs[-1]
        included = set(seqs)
        skipped = [q for q in range(first, last + 1) if q not in included]
        self._send(FrameType.T_PUB, first, defs, base_ts, blob, skipped, LIVE if live else BACKLOG)
        (self._live_lane if live else self._backlog_lane).sent(SentFrame(last, ranges, len(items), now))
        stats = self.uplink.stats
        stats.sent += len(seqs)
        if live and not (self.backlog_sent() and not self._backlog_lane.frames):
            stats.live += len(seqs)

    def _advance_queue(self, now: float) -> None:
        up = self.uplink
        queues = self.core.queues
        upto = up.acked.take_prefix(queues.stats(up.queue_id).head)
        if upto is not None:
            before = queues.stats(up.queue_id).depth
            queues.ack(up.queue_id, upto, now)
            up.stats.acked += before - queues.stats(up.queue_id).depth

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
        if upto < 0:  # refusals only (a DR answering single live messages of an earlier site)
            return
        done = self._live_lane.acknowledge(upto) or self._backlog_lane.acknowledge(upto)
        if done is None:
            raise TrunkViolation(f"T_ACK {upto} matches no batch in flight")
        for f in done:
            for a, b in f.ranges:
                up.acked.add(a, b)
        up.stats.rtt_ms = 1000.0 * (now - done[-1].sent_at)
        self._advance_queue(now)
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
