"""The WAVE database: entities, attestations and revocations, indexed by subject and by attester.

Two implementations of one small interface: :class:`WaveStore` on LMDB (``WaveConfig.database``, the
``wv`` database) and :class:`MemoryStore`, its in-memory twin for tests and for routers that keep the
graph in RAM. Both re-verify on the way in (an entity's self-signature, an attestation's signature by
its attester, which must already be stored) and key everything by content-hash ID, so a corrupted or
substituted record is detected on the way out (:func:`.ids.check_id`).

Layout (named LMDB databases, one environment): ``entities`` id -> envelope; ``attestations`` id ->
envelope; ``by_subject`` and ``by_attester`` (dupsort) entity id -> attestation id; ``revocations``
commitment -> revocation envelope. Writes are rare (``wv`` commands, gossiped revocations) so each is
one short transaction.

``defaultToUnrevoked``: the local store is always reachable, so a commitment absent here is simply not
revoked. Freshness of the *gossiped* revocation feed is the verifier's business
(:class:`.proof_cache.Verifier`, ``max_revocation_staleness_s``), where WAVE's flag keeps its meaning.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import lmdb

from .attestation import Attestation
from .entity import Entity
from .errors import StoreError, UnknownObjectError, WaveError
from .ids import check_id, format_id
from .revocation import Revocation

__all__ = ["WAVE_DB_MAP_BYTES", "MemoryStore", "WaveStore", "default_database_path"]

#: LMDB map size. Objects are 0.2-4 KiB, so 256 MiB holds ~100k grants; it is address space, not disk,
#: and small enough for a 32-bit Pi userland.
WAVE_DB_MAP_BYTES: Final = 256 * 1024 * 1024
_MAX_DBS: Final = 8


def default_database_path() -> Path:
    """``$WAVE_HOME``, else the per-user data directory (XDG)."""
    home = os.environ.get("WAVE_HOME")
    if home:
        return Path(home)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "wavemq-edge" / "wave"


class MemoryStore:
    """In-memory twin of :class:`WaveStore` (same methods, same checks)."""

    def __init__(self) -> None:
        self._entities: dict[bytes, Entity] = {}
        self._attestations: dict[bytes, Attestation] = {}
        self._by_subject: dict[bytes, list[bytes]] = {}
        self._by_attester: dict[bytes, list[bytes]] = {}
        self._revocations: dict[bytes, Revocation] = {}

    def put_entity(self, entity: Entity) -> bool:
        new = entity.id not in self._entities
        self._entities[entity.id] = entity
        return new

    def get_entity(self, entity_id: bytes) -> Entity | None:
        return self._entities.get(entity_id)

    def put_attestation(self, attestation: Attestation) -> bool:
        attester = self.get_entity(attestation.attester_id)
        if attester is None:
            raise UnknownObjectError(f"attester {format_id(attestation.attester_id)} is not in the store")
        attestation.verify(attester)
        if attestation.id in self._attestations:
            return False
        self._attestations[attestation.id] = attestation
        self._by_subject.setdefault(attestation.subject_id, []).append(attestation.id)
        self._by_attester.setdefault(attestation.attester_id, []).append(attestation.id)
        return True

    def get_attestation(self, attestation_id: bytes) -> Attestation | None:
        return self._attestations.get(attestation_id)

    def attestations_by_attester(self, attester_id: bytes) -> list[Attestation]:
        return [self._attestations[i] for i in self._by_attester.get(attester_id, [])]

    def attestations_by_subject(self, subject_id: bytes) -> list[Attestation]:
        return [self._attestations[i] for i in self._by_subject.get(subject_id, [])]

    def put_revocation(self, revocation: Revocation) -> bool:
        new = revocation.commitment not in self._revocations
        self._revocations[revocation.commitment] = revocation
        return new

    def is_revoked(self, commitment: bytes) -> bool:
        return commitment in self._revocations

    def revocations(self) -> list[Revocation]:
        return list(self._revocations.values())

    def revoked_commitments(self) -> frozenset[bytes]:
        return frozenset(self._revocations)

    def entities(self) -> Iterator[Entity]:
        return iter(list(self._entities.values()))


class WaveStore:
    """The LMDB-backed WAVE database at ``path`` (a directory, created if missing)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if not readonly and not self.path.is_dir():
                self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.path.chmod(0o700)  # mkdir's mode is masked by the umask
            self._env: Any = lmdb.open(
                str(self.path), map_size=WAVE_DB_MAP_BYTES, max_dbs=_MAX_DBS, subdir=True, readonly=readonly,
                mode=0o600,  # data.mdb and lock.mdb: private whatever the umask
            )
            self._entities = self._env.open_db(b"entities")
            self._attestations = self._env.open_db(b"attestations")
            self._by_subject = self._env.open_db(b"by_subject", dupsort=True)
            self._by_attester = self._env.open_db(b"by_attester", dupsort=True)
            self._revocations = self._env.open_db(b"revocations")
        except (lmdb.Error, OSError) as exc:
            raise StoreError(f"cannot open the WAVE database at {self.path}: {exc}") from None

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> WaveStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, db: Any, key: bytes) -> bytes | None:
        with self._env.begin(db=db) as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def put_entity(self, entity: Entity) -> bool:
        with self._env.begin(write=True, db=self._entities) as txn:
            return bool(txn.put(entity.id, entity.raw, overwrite=False))

    def get_entity(self, entity_id: bytes) -> Entity | None:
        raw = self._get(self._entities, entity_id)
        if raw is None:
            return None
        check_id(entity_id, raw, "stored entity")
        return Entity.from_bytes(raw)

    def put_attestation(self, attestation: Attestation) -> bool:
        attester = self.get_entity(attestation.attester_id)
        if attester is None:
            raise UnknownObjectError(f"attester {format_id(attestation.attester_id)} is not in the database")
        attestation.verify(attester)
        with self._env.begin(write=True) as txn:
            if not txn.put(attestation.id, attestation.raw, db=self._attestations, overwrite=False):
                return False
            txn.put(attestation.subject_id, attestation.id, db=self._by_subject)
            txn.put(attestation.attester_id, attestation.id, db=self._by_attester)
        return True

    def get_attestation(self, attestation_id: bytes) -> Attestation | None:
        raw = self._get(self._attestations, attestation_id)
        if raw is None:
            return None
        check_id(attestation_id, raw, "stored attestation")
        return Attestation.parse(raw)

    def _index(self, db: Any, key: bytes) -> list[Attestation]:
        with self._env.begin(db=db) as txn:
            cursor = txn.cursor()
            ids = [bytes(v) for v in cursor.iternext_dup()] if cursor.set_key(key) else []
        out: list[Attestation] = []
        for att_id in ids:
            att = self.get_attestation(att_id)
            if att is not None:
                out.append(att)
        return out

    def attestations_by_attester(self, attester_id: bytes) -> list[Attestation]:
        return self._index(self._by_attester, attester_id)

    def attestations_by_subject(self, subject_id: bytes) -> list[Attestation]:
        return self._index(self._by_subject, subject_id)

    def put_revocation(self, revocation: Revocation) -> bool:
        with self._env.begin(write=True, db=self._revocations) as txn:
            return bool(txn.put(revocation.commitment, revocation.raw, overwrite=False))

    def is_revoked(self, commitment: bytes) -> bool:
        return self._get(self._revocations, commitment) is not None

    def revocations(self) -> list[Revocation]:
        """Every revocation object recorded (exchanged over trunks so revocations travel)."""
        out: list[Revocation] = []
        with self._env.begin(db=self._revocations) as txn:
            for _key, raw in txn.cursor():
                try:
                    out.append(Revocation.from_bytes(bytes(raw)))
                except WaveError:
                    continue
        return out

    def revoked_commitments(self) -> frozenset[bytes]:
        with self._env.begin(db=self._revocations) as txn:
            return frozenset(bytes(k) for k in txn.cursor().iternext(keys=True, values=False))

    def entities(self) -> Iterator[Entity]:
        with self._env.begin(db=self._entities) as txn:
            raws = [bytes(v) for v in txn.cursor().iternext(keys=False, values=True)]
        return (Entity.from_bytes(r) for r in raws)
