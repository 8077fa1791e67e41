"""Reading and writing WAVE-lite files: armored (or raw CBOR) entities, secrets, grants, proofs, revocations.

The only module besides :mod:`.store` that touches the file system. Secret files are
created with ``O_CREAT | O_EXCL`` and mode 0600, so an existing file is never overwritten and a secret
is never readable by others, even briefly.
"""

from __future__ import annotations

import os
from typing import Final, Union

from .armor import (
    LABEL_ATTESTATION,
    LABEL_ENTITY,
    LABEL_ENTITY_SECRET,
    LABEL_PROOF,
    LABEL_REVOCATION,
    MAX_ARMORED_BYTES,
    armor,
    dearmor,
    is_armored,
)
from .attestation import Attestation
from .entity import MAX_SECRET_BYTES, Entity, EntitySecret
from .envelope import ObjectType, open_envelope
from .errors import ArmorError, InputError
from .fields import get_bytes
from .proof import Proof
from .revocation import Revocation

__all__ = [
    "LoadedObject",
    "SecretFile",
    "load_entity",
    "load_entity_secret",
    "load_object",
    "read_payload",
    "save_entity_secret",
    "write_armored",
]


class SecretFile:
    """An entity secret file not yet decrypted: its public entity is readable without a passphrase."""

    __slots__ = ("data", "encrypted", "entity")

    def __init__(self, data: bytes) -> None:
        opened = open_envelope(data, ObjectType.ENTITY_SECRET, MAX_SECRET_BYTES)
        self.data = data
        self.entity = Entity.from_bytes(get_bytes(opened.tbs, 1, "entity", "entity secret"))
        keyring = opened.tbs.get(2)
        self.encrypted = isinstance(keyring, dict) and 10 in keyring

    def unlock(self, passphrase: str | None) -> EntitySecret:
        return EntitySecret.from_bytes(self.data, passphrase)


LoadedObject = Union[Entity, SecretFile, Attestation, Proof, Revocation]  # noqa: UP007 (runtime alias, py3.10)

_TYPE_BY_LABEL: Final = {
    LABEL_ENTITY: ObjectType.ENTITY,
    LABEL_ENTITY_SECRET: ObjectType.ENTITY_SECRET,
    LABEL_ATTESTATION: ObjectType.ATTESTATION,
    LABEL_PROOF: ObjectType.PROOF,
    LABEL_REVOCATION: ObjectType.REVOCATION,
}
_LABEL_BY_TYPE: Final = {v: k for k, v in _TYPE_BY_LABEL.items()}


def read_payload(path: str | os.PathLike[str]) -> tuple[ObjectType, bytes]:
    """The envelope type and bytes in a file, armored or raw."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_ARMORED_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}") from None
    if is_armored(data):
        label, payload = dearmor(data, p)
        return _TYPE_BY_LABEL[label], payload
    if not data:
        raise ArmorError(f"{p}: empty file")
    # Raw CBOR: the envelope's first element is its type (0x83/0x84 array head, then the type byte).
    if len(data) < 3 or data[0] not in (0x83, 0x84):
        raise ArmorError(f"{p}: neither a PEM-armored WAVE-lite file nor a raw WAVE-lite object")
    try:
        return ObjectType(data[1]), data
    except ValueError:
        raise ArmorError(f"{p}: unknown object type {data[1]}") from None


def load_object(path: str | os.PathLike[str]) -> LoadedObject:
    """Parse any WAVE-lite file. Attestation signatures are *not* checked here (the attester may be
    unknown); callers verify through a store or a proof."""
    kind, payload = read_payload(path)
    if kind is ObjectType.ENTITY:
        return Entity.from_bytes(payload)
    if kind is ObjectType.ENTITY_SECRET:
        return SecretFile(payload)
    if kind is ObjectType.ATTESTATION:
        return Attestation.parse(payload)
    if kind is ObjectType.PROOF:
        return Proof.from_bytes(payload)
    if kind is ObjectType.REVOCATION:
        return Revocation.from_bytes(payload)
    raise ArmorError(f"{path}: a {kind.kind} object is not a file type")


def load_entity(path: str | os.PathLike[str]) -> Entity:
    """The public entity in a public or secret entity file."""
    obj = load_object(path)
    if isinstance(obj, Entity):
        return obj
    if isinstance(obj, SecretFile):
        return obj.entity
    raise InputError(f"{path}: expected an entity file, found a {type(obj).__name__.lower()}")


def load_entity_secret(path: str | os.PathLike[str], passphrase: str | None = None) -> EntitySecret:
    obj = load_object(path)
    if not isinstance(obj, SecretFile):
        raise InputError(f"{path}: expected an entity secret file (made by wv mke)")
    return obj.unlock(passphrase)


def write_armored(path: str | os.PathLike[str], kind: ObjectType, data: bytes, *, secret: bool = False) -> None:
    """Write one armored object. Secrets: new file only, mode 0600."""
    text = armor(_LABEL_BY_TYPE[kind], data).encode("ascii")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if secret else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600 if secret else 0o644)
    except FileExistsError:
        raise InputError(f"{path} already exists; refusing to overwrite an entity secret") from None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(text)


def save_entity_secret(
    path: str | os.PathLike[str],
    secret: EntitySecret,
    passphrase: str | None = None,
    *,
    opslimit: int | None = None,
    memlimit: int | None = None,
) -> None:
    kwargs: dict[str, int] = {}
    if opslimit is not None:
        kwargs["opslimit"] = opslimit
    if memlimit is not None:
        kwargs["memlimit"] = memlimit
    write_armored(path, ObjectType.ENTITY_SECRET, secret.to_bytes(passphrase, **kwargs), secret=True)
