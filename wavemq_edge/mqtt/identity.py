"""Who a device is: MQTT users, their passwords, and the WAVE entity and proofs the router signs with.

Devices hold no WAVE keys. Each configured user (``[[MqttConfig.User]]``) names an entity secret file
the router signs that user's publishes and subscriptions with, the namespace its topics live in, and
the proofs (``wv rtprove``) that carry its grants. The router core then checks every signed object
exactly as an agent's: the user can do only what the entity's grants allow.

Passwords are stored as argon2id hashes (libsodium ``crypto_pwhash_str``, PyNaCl's
``nacl.pwhash.argon2id``), made by ``wavemq-edge mqtt-passwd``. Verifying one costs ~64 MiB and tens to
hundreds of milliseconds on a Pi, so a successful (hash, password) pair is remembered (by a keyed
BLAKE2b digest, never the password) in a small LRU: a device reconnecting every few seconds costs one
hash per process lifetime.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions

from ..lru import LRU
from ..uri import Pattern
from ..wave import (
    PSET_WAVEMQ,
    EntitySecret,
    Proof,
    VerificationError,
    WaveError,
    load_entity_secret,
    load_object,
    object_id,
    verify_proof,
)

__all__ = ["MqttUser", "MqttUsers", "PasswordCheck", "hash_password", "load_user", "verify_password"]

#: argon2id cost of new hashes: libsodium's "interactive" limits (64 MiB, 2 passes), what a Pi 3 can
#: afford at each device connection.
OPSLIMIT: Final = nacl.bindings.crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE
MEMLIMIT: Final = nacl.bindings.crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE
#: verified (hash, password) digests remembered
_VERIFIED_CACHE: Final = 256
_PROOF_CACHE: Final = 256


def hash_password(password: str | bytes) -> str:
    import nacl.pwhash  # only where passwords are hashed or checked: `run` without MQTT never loads it

    pw = password.encode("utf-8") if isinstance(password, str) else password
    return nacl.pwhash.argon2id.str(pw, opslimit=OPSLIMIT, memlimit=MEMLIMIT).decode("ascii")


_CACHE_KEY: Final = os.urandom(32)
_verified: LRU[bytes, bool] = LRU(_VERIFIED_CACHE)


def _digest(password_hash: str, password: bytes) -> bytes:
    return hashlib.blake2b(password_hash.encode("ascii", "replace") + b"\x00" + password, key=_CACHE_KEY).digest()


def verified_before(password_hash: str, password: bytes) -> bool:
    """True when this (hash, password) pair verified recently: no argon2id run needed."""
    return bool(_verified.get(_digest(password_hash, password)))


def verify_password(password_hash: str, password: bytes) -> bool:
    """argon2id verification (slow by design: the glue runs it off the event loop), remembered on success."""
    import nacl.pwhash

    digest = _digest(password_hash, password)
    if _verified.get(digest):
        return True
    try:
        ok = bool(nacl.pwhash.verify(password_hash.encode("ascii", "replace"), password))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        ok = False
    if ok:
        _verified.put(digest, True)
    return ok


@dataclass(slots=True)
class MqttUser:
    """One device identity. ``username`` None is the anonymous user (``anonymousEntity``)."""

    username: str | None
    password_hash: str | None
    secret: EntitySecret
    namespace: bytes
    proofs: tuple[bytes, ...] = ()
    _by_id: dict[bytes, bytes] = field(default_factory=dict)
    _chosen: LRU[tuple[str, Pattern], bytes] = field(default_factory=lambda: LRU(_PROOF_CACHE))

    def __post_init__(self) -> None:
        self._by_id = {object_id(p): p for p in self.proofs}

    @property
    def name(self) -> str:
        return self.username if self.username is not None else "(anonymous)"

    def proof_for(self, proof_id: bytes) -> bytes | None:
        """What ``RouterCore.publish``/``subscribe`` look a proof up with."""
        return self._by_id.get(proof_id)

    def choose_proof(self, permission: str, resource: Pattern, wall: float) -> bytes:
        """The id of a proof granting ``wavemq:permission`` on ``resource`` (verified here only to pick
        one; the core checks it again, with revocations). When none does, the first proof (or 36 zero
        bytes) is returned and the core's refusal says why: the router is the judge, not this guess."""
        key = (permission, resource)
        cached = self._chosen.get(key)
        if cached is not None:
            return cached
        for raw in self.proofs:
            try:
                verify_proof(raw, now=wall, revoked=frozenset()).require(
                    self.secret.id, self.namespace, PSET_WAVEMQ, permission, resource)
            except VerificationError:
                continue
            chosen = object_id(raw)
            self._chosen.put(key, chosen)
            return chosen
        return object_id(self.proofs[0]) if self.proofs else bytes(36)


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A password to verify before ``user`` is admitted: ``run()`` is the slow argon2id call, which the
    glue makes in a worker thread and the session learns of through ``MqttSession.auth_done``."""

    user: MqttUser
    password: bytes

    def run(self) -> bool:
        assert self.user.password_hash is not None
        return verify_password(self.user.password_hash, self.password)


class MqttUsers:
    """The configured users, and the anonymous one when ``anonymousEntity`` is set."""

    def __init__(self, users: list[MqttUser], anonymous: MqttUser | None = None) -> None:
        self.by_name = {u.username: u for u in users if u.username is not None}
        self.anonymous = anonymous

    def authenticate(self, username: str | None, password: bytes | None) -> MqttUser | PasswordCheck | str:
        """The user (anonymous, or a password verified before), a ``PasswordCheck`` still to run, or why
        the device is refused (for the log line, never for the device)."""
        if username is None:
            if self.anonymous is None:
                return "no user name and anonymous access is off (MqttConfig.anonymousEntity unset)"
            return self.anonymous
        user = self.by_name.get(username)
        if user is None or user.password_hash is None:
            return "unknown user"
        if password is None:
            return "no password"
        if verified_before(user.password_hash, password):
            return user
        return PasswordCheck(user, password)


def load_user(username: str | None, password_hash: str | None, entity: str, namespace: bytes,
              proofs: list[str], passphrase: str | None = None) -> MqttUser:
    """A user from its entity secret file and proof files; ``WaveError``/``OSError`` name the file."""
    secret = load_entity_secret(entity, passphrase)
    raws: list[bytes] = []
    for path in proofs:
        obj = load_object(path)
        if not isinstance(obj, Proof):
            raise WaveError(f"{path}: expected a proof file (wv rtprove), found a {type(obj).__name__}")
        raws.append(obj.raw)
    return MqttUser(username, password_hash, secret, namespace, tuple(raws))
