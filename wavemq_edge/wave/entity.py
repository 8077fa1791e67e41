"""Entities: a public identity (Ed25519 + X25519 keys, validity window, revocation commitment) and its
secret file.

Entity TBS (reference §7.2), times in uint seconds since the epoch:
``{1: ed25519_pk, 2: x25519_pk, 3: not_before, 4: not_after, 5: revocation_commitment,
6: revocation_location?, 7: e2ee?, 8: nonce(16), 9: label?}``, self-signed with the Ed25519 key under
``DOMAIN("entity")``. The ID is the hash of the whole envelope, so renewing an entity gives a new ID.
One Ed25519 key signs every kind (the domain tags keep uses apart); the X25519 key is generated
separately, never converted from the signing key.

Secret file: ``[4, 1, {1: public entity envelope, 2: keyring}]`` where the keyring is either plaintext
``{1: ed25519_seed, 2: x25519_sk, 3: revocation_seed}`` or, with a passphrase,
``{10: "argon2id13", 11: opslimit, 12: memlimit, 13: salt, 14: nonce, 15: ciphertext}`` sealed with
XChaCha20-Poly1305 under an argon2id key and the entity ID as associated data (a keyring cannot be moved
under another public entity). An empty passphrase means a plaintext keyring, as in WAVE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

import nacl.bindings
import nacl.exceptions
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from .canonical import CborValue, decode, encode
from .envelope import ObjectType, Opened, open_envelope, seal_envelope, verify_signature
from .errors import PassphraseError, Reason, VerificationError
from .fields import check_keys, get_bytes, get_map, get_optional_text, get_text, get_uint
from .ids import format_id, object_id
from .revocation import Revocation, commitment_of, revocation_preimage

__all__ = [
    "DEFAULT_MEMLIMIT_BYTES",
    "DEFAULT_OPSLIMIT",
    "MAX_ENTITY_BYTES",
    "MAX_MEMLIMIT_BYTES",
    "Entity",
    "EntitySecret",
    "create_entity",
]

#: Bounds on what we parse: an entity is ~170 bytes; labels and locations are short names.
MAX_ENTITY_BYTES: Final = 1024
MAX_SECRET_BYTES: Final = 2048
MAX_NAME_BYTES: Final = 128
NONCE_BYTES: Final = 16
#: argon2id "interactive" limits: 64 MiB of memory fits a 1 GB Pi and takes ~0.1-0.5 s there.
#: (``nacl.pwhash.argon2id``'s constants, read from ``nacl.bindings`` so that loading an entity without a
#: passphrase does not import the KDF modules: ``_kdf_key`` does, when a passphrase is used.)
DEFAULT_OPSLIMIT: Final = nacl.bindings.crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE
DEFAULT_MEMLIMIT_BYTES: Final = nacl.bindings.crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE
_SALT_BYTES: Final = nacl.bindings.crypto_pwhash_SALTBYTES
#: A secret file names its own KDF cost; refuse costs that would exhaust a gateway (a hostile file must
#: not be able to ask for 4 GiB of RAM).
MAX_MEMLIMIT_BYTES: Final = 256 * 1024 * 1024
MAX_OPSLIMIT: Final = 16
_KDF_NAME: Final = "argon2id13"

_WHAT: Final = "entity"


@dataclass(frozen=True, slots=True)
class Entity:
    """A verified public entity. Build with :meth:`from_bytes` (checks the self-signature)."""

    ed25519_pk: bytes
    x25519_pk: bytes
    not_before: int
    not_after: int
    revocation_commitment: bytes
    revocation_location: str
    nonce: bytes
    label: str | None
    e2ee: dict[int, CborValue] | None
    raw: bytes
    id: bytes
    verify_key: VerifyKey = field(repr=False, compare=False)

    @classmethod
    def from_bytes(cls, data: bytes) -> Entity:
        opened = open_envelope(bytes(data), ObjectType.ENTITY, MAX_ENTITY_BYTES)
        entity = cls._from_opened(opened, bytes(data))
        verify_signature(entity.verify_key, opened, "the entity itself")
        return entity

    @classmethod
    def _from_opened(cls, opened: Opened, raw: bytes) -> Entity:
        tbs = opened.tbs
        check_keys(tbs, range(1, 10), _WHAT)
        pk = get_bytes(tbs, 1, "ed25519_pk", _WHAT, 32)
        not_before = get_uint(tbs, 3, "not_before", _WHAT)
        not_after = get_uint(tbs, 4, "not_after", _WHAT)
        if not_after <= not_before:
            raise VerificationError(Reason.MALFORMED, "entity: not_after is not after not_before")
        try:
            verify_key = VerifyKey(pk)
        except (nacl.exceptions.CryptoError, ValueError):
            raise VerificationError(Reason.MALFORMED, "entity: ed25519_pk is not a valid public key") from None
        return cls(
            ed25519_pk=pk,
            x25519_pk=get_bytes(tbs, 2, "x25519_pk", _WHAT, 32),
            not_before=not_before,
            not_after=not_after,
            revocation_commitment=get_bytes(tbs, 5, "revocation_commitment", _WHAT, 32),
            revocation_location=get_optional_text(tbs, 6, "revocation_location", _WHAT, MAX_NAME_BYTES) or "default",
            nonce=get_bytes(tbs, 8, "nonce", _WHAT, NONCE_BYTES),
            label=get_optional_text(tbs, 9, "label", _WHAT, MAX_NAME_BYTES),
            e2ee=get_map(tbs, 7, "e2ee", _WHAT) if 7 in tbs else None,
            raw=raw,
            id=object_id(raw),
            verify_key=verify_key,
        )

    def to_bytes(self) -> bytes:
        return self.raw

    @property
    def printable_id(self) -> str:
        return format_id(self.id)

    def is_valid_at(self, now: float, skew_s: float = 0.0) -> bool:
        return self.not_before - skew_s <= now < self.not_after


@dataclass(frozen=True, slots=True)
class EntitySecret:
    """An entity with its private keys. ``encrypted`` tells whether it was loaded from a passphrase file."""

    entity: Entity
    signing_key: SigningKey = field(repr=False)
    x25519_sk: PrivateKey = field(repr=False)
    revocation_seed: bytes = field(repr=False)
    encrypted: bool = False

    @property
    def id(self) -> bytes:
        return self.entity.id

    def revocation(self) -> Revocation:
        """The revocation object for this entity (only the secret holder can make it)."""
        return Revocation.from_preimage(revocation_preimage(self.revocation_seed, self.entity.nonce))

    def to_bytes(
        self,
        passphrase: str | None = None,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT_BYTES,
    ) -> bytes:
        plain: dict[int, CborValue] = {
            1: bytes(self.signing_key),
            2: bytes(self.x25519_sk),
            3: self.revocation_seed,
        }
        keyring: dict[int, CborValue]
        if passphrase:
            from nacl.secret import Aead

            salt = os.urandom(_SALT_BYTES)
            key = _kdf_key(passphrase, salt, opslimit, memlimit)
            nonce = os.urandom(Aead.NONCE_SIZE)
            ct = Aead(key).encrypt(encode(plain), aad=self.entity.id, nonce=nonce).ciphertext
            keyring = {10: _KDF_NAME, 11: opslimit, 12: memlimit, 13: salt, 14: nonce, 15: ct}
        else:
            keyring = plain
        return seal_envelope(ObjectType.ENTITY_SECRET, {1: self.entity.raw, 2: keyring}, None)

    @classmethod
    def from_bytes(cls, data: bytes, passphrase: str | None = None) -> EntitySecret:
        what = "entity secret"
        opened = open_envelope(bytes(data), ObjectType.ENTITY_SECRET, MAX_SECRET_BYTES)
        check_keys(opened.tbs, (1, 2), what)
        entity = Entity.from_bytes(get_bytes(opened.tbs, 1, "entity", what))
        keyring = get_map(opened.tbs, 2, "keyring", what)
        encrypted = 10 in keyring
        if encrypted:
            keyring = _open_keyring(keyring, entity, passphrase)
        check_keys(keyring, (1, 2, 3), "keyring")
        signing_key = SigningKey(get_bytes(keyring, 1, "ed25519_seed", "keyring", 32))
        x25519_sk = PrivateKey(get_bytes(keyring, 2, "x25519_sk", "keyring", 32))
        seed = get_bytes(keyring, 3, "revocation_seed", "keyring", 32)
        if bytes(signing_key.verify_key) != entity.ed25519_pk or bytes(x25519_sk.public_key) != entity.x25519_pk:
            raise VerificationError(Reason.MALFORMED, "entity secret: keyring keys do not match the public entity")
        return cls(entity, signing_key, x25519_sk, seed, encrypted)



def _kdf_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """The keyring's key: argon2id of the passphrase (``nacl.pwhash`` is imported here, when needed)."""
    import nacl.pwhash.argon2id as argon2id
    from nacl.secret import Aead

    return argon2id.kdf(Aead.KEY_SIZE, passphrase.encode("utf-8"), salt, opslimit=opslimit, memlimit=memlimit)


def _open_keyring(keyring: dict[int, CborValue], entity: Entity, passphrase: str | None) -> dict[int, CborValue]:
    from nacl.secret import Aead

    what = "encrypted keyring"
    check_keys(keyring, range(10, 16), what)
    if get_text(keyring, 10, "kdf", what, 32) != _KDF_NAME:
        raise VerificationError(Reason.MALFORMED, f"{what}: unsupported KDF {keyring[10]!r}")
    opslimit = get_uint(keyring, 11, "opslimit", what, MAX_OPSLIMIT)
    memlimit = get_uint(keyring, 12, "memlimit", what, MAX_MEMLIMIT_BYTES)
    salt = get_bytes(keyring, 13, "salt", what, _SALT_BYTES)
    nonce = get_bytes(keyring, 14, "nonce", what, Aead.NONCE_SIZE)
    ct = get_bytes(keyring, 15, "ciphertext", what)
    if not passphrase:
        raise PassphraseError("the entity secret is passphrase-protected; give --passphrase")
    try:
        plain = Aead(_kdf_key(passphrase, salt, opslimit, memlimit)).decrypt(ct, aad=entity.id, nonce=nonce)
    except nacl.exceptions.CryptoError:
        raise PassphraseError("wrong passphrase for the entity secret (or the file is corrupted)") from None
    value = decode(plain)
    if not isinstance(value, dict):
        raise VerificationError(Reason.MALFORMED, f"{what}: decrypted keyring is not a map")
    return value


def create_entity(
    now: float,
    expiry_s: int,
    *,
    revocation_location: str = "default",
    label: str | None = None,
) -> EntitySecret:
    """A fresh entity valid from ``now`` for ``expiry_s`` seconds."""
    signing_key = SigningKey.generate()
    x25519_sk = PrivateKey.generate()
    revocation_seed = os.urandom(32)
    nonce = os.urandom(NONCE_BYTES)
    not_before = int(now)
    tbs: dict[int, CborValue] = {
        1: bytes(signing_key.verify_key),
        2: bytes(x25519_sk.public_key),
        3: not_before,
        4: not_before + int(expiry_s),
        5: commitment_of(revocation_preimage(revocation_seed, nonce)),
        8: nonce,
    }
    if revocation_location != "default":
        tbs[6] = revocation_location
    if label is not None:
        tbs[9] = label
    raw = seal_envelope(ObjectType.ENTITY, tbs, signing_key)
    return EntitySecret(Entity.from_bytes(raw), signing_key, x25519_sk, revocation_seed)
