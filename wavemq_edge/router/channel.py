"""The trunk's secure channel: mutual authentication by entity keys, then AEAD records (sans-I/O).

Theory of operation
-------------------
Three plaintext handshake frames, then encrypted records::

    site (initiator)                                   DR (responder)
    CH_HELLO  [version, e_i, n_i, namespace]   ->
                                               <-   CH_ACCEPT [e_r, n_r, dr_entity, route_proof, sig_r]
    CH_AUTH   [site_entity, sig_i]             ->
    records (AEAD, key i->r)                  <->   records (AEAD, key r->i)

``e_*`` are fresh X25519 keys and ``n_*`` fresh 32-byte nonces, so every channel has a new transcript.
``T1 = H(hello || e_r || n_r || dr_entity_id || route_proof_id)``; the DR signs ``T1`` with its entity
key under WAVE-lite's ``handshake`` domain. ``T2 = H(T1 || sig_r || site_entity_id)``; the site signs
``T2``. A signature therefore binds one channel and cannot be replayed on another (WAVEMQ signed only
its TLS certificate's bytes, and authenticated only the DR: ``wavemq-behaviour.md`` §5.4, §12 row 18).

The site accepts the DR only if its route proof grants the DR entity ``wavemq:route`` on ``*`` of the
namespace the site asked for (not a sub-resource, not another namespace, not expired or revoked). The DR
accepts any site whose entity signature verifies and which is not expired or revoked: what a site may
do is decided per request by the requests' own signatures and proofs.

Keys: ``k = BLAKE2b(key = X25519(e, e_peer) || T2, person = direction)``, one per direction; records
are ``u32 length || XChaCha20-Poly1305(frame body)`` with the record counter as nonce, so a dropped,
replayed, reordered or modified record fails authentication and ends the channel.

Every failure raises ``ChannelError`` with a ``reason`` (a short stable string tests assert) and puts
the channel in ``FAILED``; nothing is retried inside the channel.
"""

from __future__ import annotations

import hashlib
import os
import struct
from enum import Enum
from typing import Final

import nacl.bindings as sodium
from nacl.exceptions import CryptoError

from ..uri import STAR
from ..wave import (
    PSET_WAVEMQ,
    Entity,
    EntitySecret,
    Proof,
    VerificationError,
    Verifier,
    WaveError,
    format_id,
    sign_handshake,
    verify_handshake,
)
from ..wire import NEED_DATA, Frame, FrameDecoder, FrameType, RemoteWireError, decode_body, encode_frame

__all__ = ["CHANNEL_VERSION", "ChannelError", "ChannelRole", "ChannelState", "SecureChannel"]

CHANNEL_VERSION: Final = 1
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 32
_TAG_BYTES: Final = 16
_LEN: Final = struct.Struct(">I")
#: Handshake frames carry an entity and a route proof (proofs are at most 64 KiB).
MAX_HANDSHAKE_FRAME_BYTES: Final = 160 * 1024
_DOMAIN: Final = b"wavemq-edge trunk channel v1\x00"


class ChannelRole(Enum):
    INITIATOR = "site"
    RESPONDER = "designated-router"


class ChannelState(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    FAILED = "failed"


class ChannelError(Exception):
    """The channel failed; ``reason`` is a stable short name (``bad-signature``, ``route-proof``...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _h(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"wl-trunk-hs")
    for p in parts:
        h.update(_LEN.pack(len(p)))
        h.update(p)
    return h.digest()


def _direction_key(shared: bytes, transcript: bytes, direction: bytes) -> bytes:
    return hashlib.blake2b(direction, key=shared + transcript, digest_size=_KEY_BYTES,
                           person=b"wl-trunk-key").digest()


class SecureChannel:
    """One end of a trunk channel. Feed ``receive_bytes``; pull ``bytes_to_send`` and ``next_frame``."""

    def __init__(
        self,
        role: ChannelRole,
        me: EntitySecret,
        *,
        verifier: Verifier,
        max_frame_bytes: int,
        namespace: bytes = b"",
        route_proofs: dict[bytes, bytes] | None = None,
    ) -> None:
        """``namespace``: what the initiator wants routed. ``route_proofs``: the responder's
        ``wavemq:route`` proofs by namespace id (``DesignatedNamespaceFiles``)."""
        self.role = role
        self.me = me
        self.verifier = verifier
        self.max_frame_bytes = max_frame_bytes
        self.namespace = namespace
        self.route_proofs = route_proofs or {}
        self.state = ChannelState.HANDSHAKE
        self.peer: Entity | None = None
        #: earliest expiry (epoch s) of the DR's route proof, as the site verified it.
        self.route_expiry: float | None = None
        self._eph_sk = os.urandom(32)
        self._eph_pk = sodium.crypto_scalarmult_base(self._eph_sk)
        self._nonce = os.urandom(_NONCE_BYTES)
        self._hs_decoder = FrameDecoder(MAX_HANDSHAKE_FRAME_BYTES)
        self._out: list[bytes] = []
        self._records = bytearray()
        self._frames: list[Frame] = []
        self._send_key = b""
        self._recv_key = b""
        self._send_ctr = 0
        self._recv_ctr = 0
        self._hello = b""
        self._t1 = b""
        if role is ChannelRole.INITIATOR:
            if not namespace:
                raise ValueError("an initiating channel names the namespace it wants routed")
            self._hello = encode_frame(FrameType.CH_HELLO, CHANNEL_VERSION, self._eph_pk, self._nonce, namespace,
                                       max_frame_bytes=MAX_HANDSHAKE_FRAME_BYTES)
            self._out.append(self._hello)

    # ------------------------------------------------------------------ surface

    @property
    def is_open(self) -> bool:
        return self.state is ChannelState.OPEN

    def bytes_to_send(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_frame(self) -> Frame | None:
        return self._frames.pop(0) if self._frames else None

    def send(self, kind: FrameType, *fields: object) -> None:
        """Encrypt and queue one frame (only once the channel is open)."""
        if self.state is not ChannelState.OPEN:
            raise ChannelError("not-open", f"cannot send {kind.name} before the handshake completes")
        frame = encode_frame(kind, *fields, max_frame_bytes=self.max_frame_bytes)
        body = frame[4:]
        nonce = self._send_ctr.to_bytes(24, "little")
        self._send_ctr += 1
        ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(body, None, nonce, self._send_key)
        self._out.append(_LEN.pack(len(ct)) + ct)

    def receive_bytes(self, data: bytes, now_wall: float) -> None:
        """Feed bytes; ``now_wall`` (epoch seconds) judges the peer's entity and route proof."""
        if self.state is ChannelState.FAILED:
            return
        try:
            if self.state is ChannelState.HANDSHAKE:
                self._hs_decoder.receive_bytes(data)
                self._handshake(now_wall)
            else:
                self._records += data
            if self.state is ChannelState.OPEN:
                self._read_records()
        except ChannelError:
            self.state = ChannelState.FAILED
            raise
        except RemoteWireError as exc:
            self.state = ChannelState.FAILED
            raise ChannelError("malformed", str(exc)) from None

    # ------------------------------------------------------------------ handshake

    def _fail(self, reason: str, message: str) -> ChannelError:
        self.state = ChannelState.FAILED
        return ChannelError(reason, message)

    def _handshake(self, now_wall: float) -> None:
        while self.state is ChannelState.HANDSHAKE:
            frame = self._hs_decoder.next_frame()
            if frame is NEED_DATA:
                return
            assert isinstance(frame, Frame)
            if self.role is ChannelRole.RESPONDER:
                if frame.type is FrameType.CH_HELLO and not self._hello:
                    self._on_hello(frame)
                elif frame.type is FrameType.CH_AUTH and self._hello:
                    self._on_auth(frame, now_wall)
                    self._records += self._hs_decoder.take_buffered()
                else:
                    raise self._fail("protocol", f"unexpected {frame.type.name} during the handshake")
            else:
                if frame.type is FrameType.CH_ACCEPT and not self._t1:
                    self._on_accept(frame, now_wall)
                    self._records += self._hs_decoder.take_buffered()
                elif frame.type is FrameType.ERROR:
                    raise self._fail("refused", f"the designated router refused: {frame.fields}")
                else:
                    raise self._fail("protocol", f"unexpected {frame.type.name} during the handshake")

    def _entity(self, raw: object, who: str, now_wall: float) -> Entity:
        if not isinstance(raw, bytes):
            raise self._fail("malformed", f"{who} entity is not bytes")
        try:
            entity = Entity.from_bytes(raw)
        except WaveError as exc:
            raise self._fail("malformed", f"{who} entity: {exc}") from None
        if not entity.is_valid_at(now_wall, self.verifier.skew_s):
            raise self._fail("expired", f"{who} entity {format_id(entity.id)} is expired or not yet valid")
        if self.verifier.is_revoked(entity.revocation_commitment):
            raise self._fail("revoked", f"{who} entity {format_id(entity.id)} is revoked")
        return entity

    def _on_hello(self, frame: Frame) -> None:
        f = frame.fields
        if len(f) != 4 or f[0] != CHANNEL_VERSION or not all(isinstance(x, bytes) for x in f[1:]):
            raise self._fail("protocol", f"bad CH_HELLO (version {f[0] if f else '?'}; this side speaks "
                                         f"{CHANNEL_VERSION})")
        e_i, n_i, namespace = f[1], f[2], f[3]
        assert isinstance(e_i, bytes) and isinstance(n_i, bytes) and isinstance(namespace, bytes)
        if len(e_i) != 32 or len(n_i) != _NONCE_BYTES:
            raise self._fail("malformed", "CH_HELLO key or nonce has the wrong length")
        proof = self.route_proofs.get(namespace)
        if proof is None:
            self._out.append(encode_frame(FrameType.ERROR, 0, f"not a designated router for {format_id(namespace)}"))
            raise self._fail("not-designated", f"site asked for namespace {format_id(namespace)}, which this router "
                                               "is not designated for")
        self.namespace = namespace
        self._hello = encode_frame(FrameType.CH_HELLO, CHANNEL_VERSION, e_i, n_i, namespace,
                                   max_frame_bytes=MAX_HANDSHAKE_FRAME_BYTES)
        self._peer_eph = e_i
        me = self.me.entity
        proof_id = Proof.from_bytes(proof).id
        self._t1 = _h(_DOMAIN, self._hello, self._eph_pk, self._nonce, me.id, proof_id)
        sig = sign_handshake(self.me, self._t1)
        self._out.append(encode_frame(FrameType.CH_ACCEPT, self._eph_pk, self._nonce, me.raw, proof, sig,
                                      max_frame_bytes=MAX_HANDSHAKE_FRAME_BYTES))
        self._sig_r = sig

    def _on_accept(self, frame: Frame, now_wall: float) -> None:
        f = frame.fields
        if len(f) != 5 or not all(isinstance(x, bytes) for x in f):
            raise self._fail("protocol", "bad CH_ACCEPT")
        e_r, n_r, dr_raw, proof, sig = f
        assert isinstance(e_r, bytes) and isinstance(n_r, bytes) and isinstance(proof, bytes)
        assert isinstance(sig, bytes)
        if len(e_r) != 32 or len(n_r) != _NONCE_BYTES:
            raise self._fail("malformed", "CH_ACCEPT key or nonce has the wrong length")
        dr = self._entity(dr_raw, "designated router", now_wall)
        try:
            proof_id = Proof.from_bytes(proof).id
        except WaveError as exc:
            raise self._fail("route-proof", f"malformed route proof: {exc}") from None
        t1 = _h(_DOMAIN, self._hello, e_r, n_r, dr.id, proof_id)
        try:
            verify_handshake(dr, t1, sig)
        except VerificationError as exc:
            raise self._fail("bad-signature", f"designated router {format_id(dr.id)}: {exc}") from None
        try:
            result = self.verifier.check(proof, subject=dr.id, namespace=self.namespace, pset=PSET_WAVEMQ,
                                         permission="route", resource=(STAR,), now=now_wall)
        except VerificationError as exc:
            raise self._fail("route-proof", f"designated router {format_id(dr.id)} has no valid wavemq:route on * "
                                            f"of {format_id(self.namespace)}: {exc}") from None
        self.peer = dr
        self.route_expiry = float(result.expiry)
        self._t1 = t1
        t2 = _h(t1, sig, self.me.id)
        self._out.append(encode_frame(FrameType.CH_AUTH, self.me.entity.raw, sign_handshake(self.me, t2),
                                      max_frame_bytes=MAX_HANDSHAKE_FRAME_BYTES))
        shared = sodium.crypto_scalarmult(self._eph_sk, e_r)
        self._open(shared, t2)

    def _on_auth(self, frame: Frame, now_wall: float) -> None:
        f = frame.fields
        if len(f) != 2 or not isinstance(f[1], bytes):
            raise self._fail("protocol", "bad CH_AUTH")
        site = self._entity(f[0], "site", now_wall)
        t2 = _h(self._t1, self._sig_r, site.id)
        try:
            verify_handshake(site, t2, f[1])
        except VerificationError as exc:
            raise self._fail("bad-signature", f"site {format_id(site.id)}: {exc}") from None
        self.peer = site
        shared = sodium.crypto_scalarmult(self._eph_sk, self._peer_eph)
        self._open(shared, t2)

    def _open(self, shared: bytes, transcript: bytes) -> None:
        i2r = _direction_key(shared, transcript, b"site->designated")
        r2i = _direction_key(shared, transcript, b"designated->site")
        if self.role is ChannelRole.INITIATOR:
            self._send_key, self._recv_key = i2r, r2i
        else:
            self._send_key, self._recv_key = r2i, i2r
        self._eph_sk = b""
        self.state = ChannelState.OPEN

    # ------------------------------------------------------------------ records

    def _read_records(self) -> None:
        buf = self._records
        pos = 0
        limit = self.max_frame_bytes + _TAG_BYTES
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > limit or n < _TAG_BYTES + 1:
                raise self._fail("malformed", f"record of {n} bytes (bound {limit})")
            if len(buf) - pos - 4 < n:
                break
            ct = bytes(buf[pos + 4 : pos + 4 + n])
            pos += 4 + n
            nonce = self._recv_ctr.to_bytes(24, "little")
            try:
                body = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(ct, None, nonce, self._recv_key)
            except CryptoError:
                raise self._fail("bad-record", f"record {self._recv_ctr} fails authentication "
                                               "(modified, replayed, reordered or another key)") from None
            self._recv_ctr += 1
            self._frames.append(decode_body(body, self._recv_ctr))
        if pos:
            del buf[:pos]
