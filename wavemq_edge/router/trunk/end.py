"""What both trunk ends share: the channel, the compact codecs, keepalive and dead-link detection."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ...wave import Message, WaveError
from ...wire import CloseCode, Frame, FrameType
from ...wire.errors import FieldError
from ...wire.fields import expect_bytes, expect_fields, expect_int, expect_int_list
from ..channel import ChannelError, SecureChannel
from ..compact import CompactDecoder, CompactEncoder, CompactError
from ..core import RouterCore

__all__ = ["BATCH_BYTES", "BATCH_MESSAGES", "TrunkEnd", "TrunkOptions", "TrunkViolation"]

log = logging.getLogger("wavemq_edge.router.trunk")

#: Messages per trunk batch; with ~150 bytes each a batch is ~20 KB, well under the frame bound.
BATCH_MESSAGES: Final = 128
#: Raw bytes of messages per batch (a few large payloads make small batches).
BATCH_BYTES: Final = 96 * 1024
#: Keepalive tokens awaiting their PONG (older ones are forgotten: their RTT no longer matters).
_MAX_PINGS_IN_FLIGHT: Final = 16


@dataclass(frozen=True, slots=True)
class TrunkOptions:
    #: messages sent but not yet acknowledged by the DR, per lane (``PeerConfig.maxInflight``). The DR
    #: admits live batches ahead of the backlog it holds, so the window no longer bounds live latency;
    #: it bounds what the DR holds and what a reconnect resends.
    window: int = 512
    #: deliveries in flight per forwarded subscription (DR -> site).
    delivery_window: int = 512
    keepalive_s: float = 5.0
    dead_after_s: float = 15.0
    max_frame_bytes: int = 256 * 1024


class TrunkViolation(Exception):
    """The other end broke the trunk protocol: the link is closed with ``PROTOCOL_VIOLATION``."""


# One set of field validators for every end (``wire/fields.py``); a bad field from the other router is a
# trunk violation like any other (``receive_bytes`` closes the link with PROTOCOL_VIOLATION).


def fields(frame: Frame, n: int) -> tuple[object, ...]:
    return expect_fields(frame, n)


def as_int(v: object) -> int:
    return expect_int(v, "trunk integer field")


def as_bytes(v: object) -> bytes:
    return expect_bytes(v, "trunk byte-string field")


def as_int_list(v: object) -> list[int]:
    return expect_int_list(v, "trunk list of integers")


def source_of(raw: bytes) -> bytes:
    """The source id of a signed message without decoding it: canonical encoding puts key 1 (a 36-byte
    byte string) first in the TBS map, right after the envelope head (``84 0a 01 a?``)."""
    if raw[4:7] == b"\x01\x58\x24":
        return raw[7:43]
    return b""


class TrunkEnd:
    """The base of ``UplinkSession`` and ``PeerSession``."""

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
        #: called whenever this end has new output (the glue schedules a write)
        self.on_output: Callable[[], None] | None = None

    # ------------------------------------------------------------------ I/O surface

    def bytes_to_send(self) -> bytes:
        return self.channel.bytes_to_send()

    def prepare_output(self, now: float) -> None:
        """Turn what is pending (queued messages, collected deliveries) into frames; call before
        ``bytes_to_send``."""

    def has_work(self) -> bool:
        """Work left for later loop iterations: received batches not yet admitted (DR), backlog batches not
        yet sent (site). The glue calls ``work`` and then writes while this holds."""
        return False

    def work(self, now: float, wall: float, budget: int) -> None:
        """Process up to ``budget`` messages of pending input; the glue calls it while ``has_work``."""

    def wake(self) -> None:
        """Ask the glue to call ``prepare_output`` soon."""
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
        if now - self._last_ping >= self.options.keepalive_s:
            self._last_ping = now
            if self.channel.is_open:
                self._ping_token += 1
                self._ping_sent_at[self._ping_token] = now
                if len(self._ping_sent_at) > _MAX_PINGS_IN_FLIGHT:
                    self._ping_sent_at.pop(min(self._ping_sent_at))
                self._send(FrameType.PING, self._ping_token)

    def receive_bytes(self, data: bytes, now: float, wall: float) -> None:
        if self.closing:
            return
        self._last_rx = now
        was_open = self.channel.is_open
        try:
            self.channel.receive_bytes(data, wall)
            if not was_open and self.channel.is_open:
                self._opened(now, wall)
            while not self.closing:
                frame = self.channel.next_frame()
                if frame is None:
                    break
                self._dispatch_common(frame, now, wall)
        except ChannelError as exc:
            log.warning("event=trunk_auth_failed role=%s reason=%s detail=%r", self.channel.role.value,
                        exc.reason, str(exc))
            self.close(str(exc))
        except (CompactError, TrunkViolation, FieldError) as exc:
            self.close(f"protocol violation: {exc}")
            self._try_send_error(CloseCode.PROTOCOL_VIOLATION, str(exc))

    # ------------------------------------------------------------------ internals

    def _send(self, kind: FrameType, *fields: object) -> None:
        self.channel.send(kind, *fields)
        self.wake()

    def _try_send_error(self, code: CloseCode, reason: str) -> None:
        if self.channel.is_open:
            with contextlib.suppress(ChannelError):
                self.channel.send(FrameType.ERROR, int(code), reason)

    def _dispatch_common(self, frame: Frame, now: float, wall: float) -> None:
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
            self._dispatch(frame, now, wall)

    def _opened(self, now: float, wall: float) -> None:
        raise NotImplementedError  # pragma: no cover - subclasses

    def _dispatch(self, frame: Frame, now: float, wall: float) -> None:
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
