"""Where a client finds the proof for an operation: the proof files it was given, else the WAVE
database (``wv rtgrant`` records grants there), with a small cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from ..uri import Pattern, parse_pattern
from ..wave import (
    PSET_WAVEMQ,
    NoProofError,
    Proof,
    Statement,
    VerificationError,
    WaveError,
    build_proof,
    format_id,
    load_object,
    verify_proof,
)
from .errors import ClientError

__all__ = ["ProofFinder", "load_proofs"]

#: Proofs remembered by (namespace, permission, resource). A service asks for a handful; past this
#: the cache starts over rather than grow with every distinct URI a publisher uses.
MAX_CACHED_PROOFS: Final = 256


def load_proofs(proofs: Sequence[str | os.PathLike[str] | bytes]) -> list[bytes]:
    """Proofs given as bytes or as proof files (``wv rtprove``)."""
    out: list[bytes] = []
    for p in proofs:
        if isinstance(p, bytes):
            out.append(p)
            continue
        obj = load_object(p)
        if not isinstance(obj, Proof):
            raise ClientError(f"{p}: expected a proof file (wv rtprove), found a {type(obj).__name__}")
        out.append(obj.raw)
    return out


class ProofFinder:
    def __init__(self, entity_id: bytes, proofs: Sequence[bytes], wave_db: str | os.PathLike[str] | None) -> None:
        self.entity_id = entity_id
        self.wave_db = wave_db
        self.given = [(raw, Proof.from_bytes(raw)) for raw in proofs]
        self._cache: dict[tuple[bytes, str, str], bytes] = {}

    def proof_for(self, namespace: bytes, permission: str, resource: str, now: float) -> bytes:
        """A proof granting ``wavemq:permission`` on ``resource`` in ``namespace``, at wall time ``now``."""
        key = (namespace, permission, resource)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        pattern = parse_pattern(resource)
        for raw, _proof in self.given:
            try:
                result = verify_proof(raw, now=now, revoked=frozenset())
                result.require(self.entity_id, namespace, PSET_WAVEMQ, permission, pattern)
            except VerificationError:
                continue
            self._cache[key] = raw
            return raw
        return self._build(key, namespace, permission, resource, pattern, now)

    def _build(self, key: tuple[bytes, str, str], namespace: bytes, permission: str, resource: str,
               pattern: Pattern, now: float) -> bytes:
        """The proof built from the WAVE database (the store, and so LMDB, is imported here: a client given
        proof files never loads it, nor pathlib)."""
        from pathlib import Path

        from ..wave import WaveStore, default_database_path

        db = Path(self.wave_db or os.environ.get("WAVE_HOME") or default_database_path())
        if not db.exists():
            raise ClientError(
                f"no proof for wavemq:{permission}@{format_id(namespace)}/{resource}: none of the given proof files "
                f"grants it and there is no WAVE database at {db} (run `wv rtgrant`, or pass --proof)"
            )
        try:
            with WaveStore(db) as store:
                stmt = Statement(PSET_WAVEMQ, frozenset((permission,)), pattern)
                raw = build_proof(store, self.entity_id, namespace, [stmt], now=now).to_bytes()
        except NoProofError as exc:
            raise ClientError(f"{exc} (WAVE database {db})") from None
        except WaveError as exc:
            raise ClientError(f"cannot build a proof from the WAVE database {db}: {exc}") from None
        if len(self._cache) > MAX_CACHED_PROOFS:
            self._cache.clear()
        self._cache[key] = raw
        return raw
