"""The designated router's end of one site's trunk, and the consumer of that site's subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ...wave import EntitySecret, Message, Verifier, format_id
from ...wire import Frame, FrameType
from ..channel import ChannelRole, SecureChannel
from ..core import RouterCore
from ..errors import RouterError
from ..subscription import RouterSubscription
from .end import BATCH_MESSAGES, TrunkEnd, TrunkOptions, TrunkViolation, as_bytes, as_int, as_int_list, fields
from .intake import MAX_PENDING, Entry, Intake, PubBatch
from .lanes import BACKLOG, LIVE

__all__ = ["PeerSession"]

log = logging.getLogger("wavemq_edge.router.trunk")


class PeerSession(TrunkEnd):
    def __init__(self, core: RouterCore, me: EntitySecret, verifier: Verifier, route_proofs: dict[bytes, bytes],
                 options: TrunkOptions, now: float, peer: str = "?",
                 on_revocations: Callable[[list[bytes]], None] | None = None,
                 revocations: Callable[[], list[bytes]] | None = None) -> None:
        channel = SecureChannel(ChannelRole.RESPONDER, me, verifier=verifier,
                                max_frame_bytes=options.max_frame_bytes, route_proofs=route_proofs)
        super().__init__(core, channel, options, now)
        self.peer_address = peer
        self.site_id = b""
        self.on_revocations = on_revocations
        self.revocations = revocations or (lambda: [])
        self.subscriptions: dict[str, RouterSubscription] = {}
        self._inflight: dict[str, int] = {}
        self._out_deliveries: dict[str, list[tuple[int, bytes]]] = {}
        self.received = 0
        self._intake = Intake()

    def _opened(self, now: float, wall: float) -> None:
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
        self._intake.clear()  # not acknowledged: the site sends them again

    # ------------------------------------------------------------------ Consumer

    def credit(self, sub: RouterSubscription) -> int:
        if self.closing or not self.channel.is_open:
            return 0
        return self.options.delivery_window - self._inflight.get(sub.key, 0)

    def deliver(self, sub: RouterSubscription, seq: int, item: bytes) -> None:
        self._inflight[sub.key] = self._inflight.get(sub.key, 0) + 1
        pending = self._out_deliveries.get(sub.key)
        if pending is None:
            self._out_deliveries[sub.key] = [(seq, item)]
            self.wake()
        else:
            pending.append((seq, item))

    def subscription_ended(self, sub: RouterSubscription, code: int, reason: str) -> None:
        self.subscriptions.pop(sub.key, None)
        self._inflight.pop(sub.key, None)
        self._out_deliveries.pop(sub.key, None)
        if self.channel.is_open and not self.closing:
            self._send(FrameType.T_SUB_END, sub.key, code, reason)

    def prepare_output(self, now: float) -> None:
        """Encode what ``deliver`` collected into compact ``T_DELIVER`` batches."""
        if not self._out_deliveries or self.closing:
            return
        pending, self._out_deliveries = self._out_deliveries, {}
        for key, items in pending.items():
            for start in range(0, len(items), BATCH_MESSAGES):
                chunk = items[start : start + BATCH_MESSAGES]
                seqs, defs, base_ts, blob = self._batch(chunk)
                self.channel.send(FrameType.T_DELIVER, key, seqs, defs, base_ts, blob)

    # ------------------------------------------------------------------ frames from the site

    def _dispatch(self, frame: Frame, now: float, wall: float) -> None:
        if not self.site_id:
            raise TrunkViolation("trunk frame before the handshake")
        handler = _HANDLERS.get(frame.type)
        if handler is None:
            raise TrunkViolation(f"{frame.type.name} is not a frame a site sends")
        handler(self, frame, now, wall)

    def has_work(self) -> bool:
        return self._intake.has_work() and not self.closing

    def work(self, now: float, wall: float, budget: int) -> None:
        """Admit up to ``budget`` messages of the batches received (live lane first)."""
        if self.closing:
            return

        def admit(seq: int, msg: Message, carried: bytes | None) -> list[object] | None:
            try:
                self.core.tiering.publish_from_site(self.site_id, msg, carried, now, wall)
            except RouterError as exc:  # counted by admission
                return [seq, int(exc.code), str(exc)]
            return None

        self._intake.run(admit, self._acknowledge, budget)

    def _acknowledge(self, batch: PubBatch) -> None:
        if batch.ack >= 0:
            self._send(FrameType.T_ACK, batch.ack, batch.refused)
        elif batch.refused:  # a single live message of an earlier site: acknowledged with its backlog
            self._send(FrameType.T_ACK, -1, batch.refused)

    def _on_pub(self, frame: Frame, now: float, wall: float) -> None:
        first_f, defs, base_ts, blob, skipped, lane = fields(frame, 6)
        first = as_int(first_f)
        skip = set(as_int_list(skipped))
        if not (lane is True or lane is BACKLOG or (type(lane) is int and lane == LIVE)):
            raise TrunkViolation(f"T_PUB lane {lane!r}")
        self.decoder.apply_defs(defs)
        msgs = self.decoder.decode_batch(as_int(base_ts), as_bytes(blob))
        entries: list[Entry | None] = []
        seq = first - 1
        for msg, carried in msgs:
            seq += 1
            while seq in skip:
                seq += 1
            entries.append((seq, msg, carried))
        self.received += len(msgs)
        ack = -1 if lane is True else first + len(msgs) + len(skip) - 1
        self._intake.add(PubBatch(ack, lane is not BACKLOG, entries))
        if self._intake.pending > MAX_PENDING:  # more than any window: admit now (the site waits meanwhile)
            self.work(now, wall, self._intake.pending)

    def _on_sub(self, frame: Frame, now: float, wall: float) -> None:
        req, raw, sub_proof = fields(frame, 3)
        try:
            forwarded = self.core.tiering.subscribe_from_site(self, self.site_id, as_bytes(raw), as_bytes(sub_proof),
                                                              now, wall)
        except RouterError as exc:
            self._send(FrameType.T_REFUSED, as_int(req), int(exc.code), str(exc))
            return
        self.subscriptions[forwarded.key] = forwarded
        self._send(FrameType.T_SUBSCRIBED, as_int(req), forwarded.key, int(forwarded.expiry))

    def _on_dack(self, frame: Frame, now: float, wall: float) -> None:
        ref, seqs_f = fields(frame, 2)
        seqs = as_int_list(seqs_f)  # checked even when the subscription has ended meanwhile
        sub = self.subscriptions.get(str(ref))
        if sub is not None:
            n = self.core.acknowledge(self, sub, seqs, now)
            self._inflight[sub.key] = max(0, self._inflight.get(sub.key, 0) - n)

    def _on_unsub(self, frame: Frame, now: float, wall: float) -> None:
        req, ref, raw = fields(frame, 3)
        try:
            self.core.tiering.unsubscribe_from_site(self.site_id, str(ref), None if raw is None else as_bytes(raw),
                                                    now, wall)
        except RouterError as exc:
            self._send(FrameType.T_REFUSED, as_int(req), int(exc.code), str(exc))
            return
        self.subscriptions.pop(str(ref), None)
        self._send(FrameType.T_OK, as_int(req))

    def _on_query(self, frame: Frame, now: float, wall: float) -> None:
        req_f, raw, q_proof, after, limit = fields(frame, 5)
        self.work(now, wall, self._intake.pending)  # the site's earlier messages count for its query
        req = as_int(req_f)
        try:
            answer = self.core.tiering.query_from_site(as_bytes(raw), as_bytes(q_proof),
                                                       after if isinstance(after, str) else None, as_int(limit), wall)
        except RouterError as exc:
            self._send(FrameType.T_REFUSED, req, int(exc.code), str(exc))
            return
        for _uri, message in answer.messages:
            self._send(FrameType.T_RESULT, req, message)
        self._send(FrameType.T_QUERY_END, req, len(answer.messages), answer.continuation)

    def _on_revoke(self, frame: Frame, now: float, wall: float) -> None:
        (revs,) = fields(frame, 1)
        if isinstance(revs, list) and self.on_revocations is not None:
            self.on_revocations([r for r in revs if isinstance(r, bytes)])


_HANDLERS: dict[FrameType, Callable[[PeerSession, Frame, float, float], None]] = {
    FrameType.T_PUB: PeerSession._on_pub,
    FrameType.T_SUB: PeerSession._on_sub,
    FrameType.T_DACK: PeerSession._on_dack,
    FrameType.T_UNSUB: PeerSession._on_unsub,
    FrameType.T_QUERY: PeerSession._on_query,
    FrameType.T_REVOKE: PeerSession._on_revoke,
}
