"""The verifier a router holds: bounded caches of proof verification, with revocation eviction.

Why a cache: a router checks a proof for every publish, subscribe and query, on every hop. A cold check
verifies ~2 signatures per link (~100 us each on a desktop, ~10x that on a Pi); a cached check is a hash
of the proof bytes plus two dict lookups. Reference §7.8 decides the keys:

* ``proof_id -> result`` (:class:`.verify.ProofResult`), LRU, at most :data:`PROOF_CACHE_MAX` entries,
  each kept until ``min(result.expiry, verified_at + MAX_RESULT_AGE_S)``;
* inside each entry, ``(pset, permission, resource) -> granted?`` decisions, at most
  :data:`MAX_DECISIONS_PER_PROOF`; the *subject and namespace are compared on every hit*, never part of
  what is trusted from the cache (WAVEMQ's cache omitted the entity, so anyone could reuse a proof
  another party had presented: reference §6 row 3);
* a negative cache of *deterministic* failures (bad signature, broken chain, expired, revoked...) by
  ``proof_id`` for :data:`NEGATIVE_TTL_S`; transient ones (an unknown entity, not yet valid, a stale
  revocation feed) are never cached (WAVEMQ cached storage timeouts for 6 h: reference §6 row 4);
* a reverse map ``commitment or entity id -> {proof_id}``: :meth:`Verifier.add_revocation` evicts every
  dependent entry at once, so a revocation that arrives after a cached success takes effect on the next
  check.

Revocation freshness (reference §7.5) replaces ``defaultToUnrevoked``: with
``max_revocation_staleness_s`` set, a check fails closed (REVOCATION_FEED_STALE) when the last
:meth:`Verifier.mark_revocations_synced` is older than that, unless ``default_to_unrevoked`` is true, in
which case it passes and ``stats.stale_passes`` counts it.

Sans-I/O: every method takes ``now``; nothing here reads a clock or a file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ..lru import LRU
from ..uri import Pattern
from .errors import Reason, VerificationError
from .ids import format_id, object_id
from .revocation import Revocation
from .verify import DEFAULT_SKEW_S, EntityLookup, ProofResult, verify_proof

__all__ = [
    "MAX_DECISIONS_PER_PROOF",
    "MAX_RESULT_AGE_S",
    "NEGATIVE_CACHE_MAX",
    "NEGATIVE_TTL_S",
    "PROOF_CACHE_MAX",
    "Verifier",
    "VerifierStats",
]

#: Distinct proofs cached. A site has tens of services with a few proofs each; a DR sees every site's
#: publishers. 4096 results of ~1 KiB of Python objects each is a few MiB: fine on a 1 GB Pi.
PROOF_CACHE_MAX: Final = 4096
#: Decisions cached per proof: one per (permission, URI) asked. Publishers use few URIs; a proof used for
#: thousands of URIs is re-decided after a clear (cheap: no signatures, only pattern matching).
MAX_DECISIONS_PER_PROOF: Final = 256
#: Re-verify a cached success at least this often (WAVEMQ's 6 h) even if the proof expires later.
MAX_RESULT_AGE_S: Final = 6 * 3600.0
#: Deterministic failures are remembered this long (reference §7.8), at most this many.
NEGATIVE_TTL_S: Final = 6 * 3600.0
NEGATIVE_CACHE_MAX: Final = 1024
#: Proof bytes -> proof id remembered for the proofs presented most recently, each at most 8 KiB (a
#: 2-link proof is ~1.3 KB), so the memo holds at most 1 MiB of proof bytes alive.
PROOF_IDS_MAX: Final = 128
PROOF_ID_MEMO_MAX_BYTES: Final = 8192

#: Failures that verifying the same bytes again cannot change (time only moves forward, and revocation
#: is permanent). UNKNOWN_ENTITY and NOT_YET_VALID can change, so they are not cached.
_DETERMINISTIC: Final = frozenset(
    {
        Reason.MALFORMED,
        Reason.NON_CANONICAL,
        Reason.OVERSIZE,
        Reason.BAD_SIGNATURE,
        Reason.ID_MISMATCH,
        Reason.EXPIRED,
        Reason.REVOKED,
        Reason.TTL_EXCEEDED,
        Reason.WRONG_NAMESPACE,
        Reason.NOT_FROM_NAMESPACE,
        Reason.BROKEN_LINK,
        Reason.BAD_PATH,
        Reason.WRONG_SUBJECT,
        Reason.WRONG_KIND,
    }
)


@dataclass(slots=True)
class VerifierStats:
    """Counters for ``wavemq-edge status``."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    evicted_lru: int = 0
    evicted_expired: int = 0
    evicted_revoked: int = 0
    stale_passes: int = 0


@dataclass(slots=True)
class _Entry:
    result: ProofResult
    valid_until: float
    decisions: dict[tuple[bytes, str, Pattern], bool] = field(default_factory=dict)


class Verifier:
    """Checks "does this proof grant subject S permission P on namespace N resource R at ``now``"."""

    def __init__(
        self,
        *,
        skew_s: float = DEFAULT_SKEW_S,
        lookup: EntityLookup | None = None,
        revoked: Iterable[bytes] = (),
        max_proofs: int = PROOF_CACHE_MAX,
        max_revocation_staleness_s: float | None = None,
        default_to_unrevoked: bool = False,
    ) -> None:
        self.skew_s = skew_s
        self._lookup = lookup
        self._revoked: set[bytes] = set(revoked)
        self._max_proofs = max_proofs
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self._negative: LRU[bytes, tuple[VerificationError, float]] = LRU(NEGATIVE_CACHE_MAX)
        self._ids: LRU[bytes, bytes] = LRU(PROOF_IDS_MAX)
        self._dependents: dict[bytes, set[bytes]] = {}
        self._staleness_s = max_revocation_staleness_s
        self._default_to_unrevoked = default_to_unrevoked
        self._last_sync: float | None = None
        self.stats = VerifierStats()

    # -- revocation -----------------------------------------------------------------------------------

    def add_revocation(self, revocation: Revocation | bytes) -> int:
        """Record a revealed commitment (or a Revocation); evict dependent proofs. Returns how many."""
        commitment = revocation.commitment if isinstance(revocation, Revocation) else revocation
        self._revoked.add(commitment)
        evicted = 0
        for proof_id in self._dependents.pop(commitment, set()):
            if self._drop(proof_id):
                evicted += 1
        self.stats.evicted_revoked += evicted
        return evicted

    def is_revoked(self, commitment: bytes) -> bool:
        return commitment in self._revoked

    def mark_revocations_synced(self, now: float) -> None:
        """The revocation feed was complete as of ``now`` (gossip caught up, or the store was read)."""
        self._last_sync = now

    def _check_freshness(self, now: float) -> None:
        if self._staleness_s is None:
            return
        if self._last_sync is not None and now - self._last_sync <= self._staleness_s:
            return
        if self._default_to_unrevoked:
            self.stats.stale_passes += 1
            return
        age = "never synced" if self._last_sync is None else f"last synced {now - self._last_sync:.0f} s ago"
        raise VerificationError(
            Reason.REVOCATION_FEED_STALE,
            f"revocation feed is stale ({age}; max_revocation_staleness_s={self._staleness_s:.0f}) "
            "and default_to_unrevoked is false",
        )

    # -- cache ----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._cache)

    def _drop(self, proof_id: bytes) -> bool:
        entry = self._cache.pop(proof_id, None)
        if entry is None:
            return False
        for dep in entry.result.depends:
            dependents = self._dependents.get(dep)
            if dependents is not None:
                dependents.discard(proof_id)
                if not dependents:
                    del self._dependents[dep]
        return True

    def _store(self, result: ProofResult, now: float) -> _Entry:
        entry = _Entry(result, min(float(result.expiry), now + MAX_RESULT_AGE_S))
        self._cache[result.proof_id] = entry
        for dep in result.depends:
            self._dependents.setdefault(dep, set()).add(result.proof_id)
        while len(self._cache) > self._max_proofs:
            oldest = next(iter(self._cache))
            self._drop(oldest)
            self.stats.evicted_lru += 1
        return entry

    def _remember_failure(self, proof_id: bytes, error: VerificationError, now: float) -> None:
        if error.reason not in _DETERMINISTIC:
            return
        self._negative.put(proof_id, (error, now + NEGATIVE_TTL_S))

    def _entry(self, proof_id: bytes, now: float) -> _Entry | None:
        entry = self._cache.get(proof_id)
        if entry is None:
            return None
        if now >= entry.valid_until:
            self._drop(proof_id)
            self.stats.evicted_expired += 1
            return None
        self._cache.move_to_end(proof_id)
        return entry

    def verify(self, proof: bytes, now: float) -> ProofResult:
        """Verify (or recall) a proof; raise ``VerificationError`` with the reason if it is invalid."""
        self._check_freshness(now)
        return self._verify(object_id(proof), proof, now).result

    def _verify(self, proof_id: bytes, proof: bytes, now: float) -> _Entry:
        entry = self._entry(proof_id, now)
        if entry is not None:
            self.stats.hits += 1
            return entry
        negative = self._negative.peek(proof_id)
        if negative is not None:
            if now < negative[1]:
                self.stats.negative_hits += 1
                raise negative[0]
            self._negative.pop(proof_id)
        self.stats.misses += 1
        try:
            result = verify_proof(proof, now=now, skew_s=self.skew_s, revoked=self._revoked, lookup=self._lookup)
        except VerificationError as exc:
            self._remember_failure(proof_id, exc, now)
            raise
        return self._store(result, now)

    def check(
        self,
        proof: bytes,
        *,
        subject: bytes,
        namespace: bytes,
        pset: bytes,
        permission: str,
        resource: Pattern,
        now: float,
    ) -> ProofResult:
        """Raise unless ``proof`` grants ``subject`` the permission on ``namespace/resource`` at ``now``.

        Returns the result (granted statements, earliest expiry). The subject is compared on every call.
        """
        self._check_freshness(now)
        entry = self._verify(self._proof_id(proof), proof, now)
        return self._decide(entry, subject, namespace, pset, permission, resource)

    def _proof_id(self, proof: bytes) -> bytes:
        """``object_id(proof)``, remembered for recent small proofs: a publisher presents the same proof
        with every message, and hashing 1.3 KB costs ~1.2 us where this lookup costs ~0.1 (the bytes
        object caches its own hash, and a hit on the same object compares by identity)."""
        if len(proof) > PROOF_ID_MEMO_MAX_BYTES:
            return object_id(proof)
        proof_id = self._ids.get(proof)
        if proof_id is None:
            proof_id = object_id(proof)
            self._ids.put(proof, proof_id)
        return proof_id

    def check_id(
        self,
        proof_id: bytes,
        *,
        subject: bytes,
        namespace: bytes,
        pset: bytes,
        permission: str,
        resource: Pattern,
        now: float,
    ) -> ProofResult:
        """Like :meth:`check` for a proof referred to by ID (trunk proof elision); UNKNOWN_PROOF if the
        proof is not cached here, so the peer resends it."""
        self._check_freshness(now)
        entry = self._entry(proof_id, now)
        if entry is None:
            raise VerificationError(Reason.UNKNOWN_PROOF, f"proof {format_id(proof_id)} is not cached here; resend it")
        self.stats.hits += 1
        return self._decide(entry, subject, namespace, pset, permission, resource)

    def _decide(
        self, entry: _Entry, subject: bytes, namespace: bytes, pset: bytes, permission: str, resource: Pattern
    ) -> ProofResult:
        result = entry.result
        key = (pset, permission, resource)
        granted = entry.decisions.get(key)
        if granted is True and subject == result.subject and namespace == result.namespace:
            return result
        # First time for this question, or a refusal to explain: require() names the precise reason
        # (and re-checks subject and namespace, which are never taken from the cache).
        try:
            result.require(subject, namespace, pset, permission, resource)
        except VerificationError as exc:
            if exc.reason is Reason.INSUFFICIENT_PERMISSION:
                self._note(entry, key, False)
            raise
        self._note(entry, key, True)
        return result

    @staticmethod
    def _note(entry: _Entry, key: tuple[bytes, str, Pattern], granted: bool) -> None:
        if len(entry.decisions) >= MAX_DECISIONS_PER_PROOF:
            entry.decisions.clear()
        entry.decisions[key] = granted
