"""The WAVE database (LMDB and its in-memory twin), proof building, and the verifier cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from wave_world import DAY, T0, World, st

from wavemq_edge.uri import parse_pattern
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    MemoryStore,
    NoProofError,
    Reason,
    VerificationError,
    Verifier,
    WaveStore,
    build_proof,
    verify_proof,
)
from wavemq_edge.wave.policy import fold

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path, world: World) -> MemoryStore | WaveStore:
    if request.param == "memory":
        return world.store
    db = WaveStore(tmp_path / "db")
    for e in (world.ns, world.a, world.b, world.c):
        db.put_entity(e.entity)
    request.addfinalizer(db.close)
    return db


def test_store_indexes_and_revocations(world: World, store: MemoryStore | WaveStore) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    assert store.put_attestation(att) is (store is not world.store)
    assert store.put_attestation(att) is False
    assert [x.id for x in store.attestations_by_attester(world.ns.id)] == [att.id]
    assert [x.id for x in store.attestations_by_subject(world.a.id)] == [att.id]
    assert store.get_attestation(att.id) is not None and store.get_entity(world.a.id) == world.a.entity
    assert not store.is_revoked(world.a.entity.revocation_commitment)
    assert store.put_revocation(world.a.revocation()) is True
    assert store.is_revoked(world.a.entity.revocation_commitment)
    assert store.revoked_commitments() == {world.a.entity.revocation_commitment}


def test_store_refuses_attestation_with_unknown_or_wrong_attester(tmp_path: Path, world: World) -> None:
    from wavemq_edge.wave import UnknownObjectError, create_entity

    stranger = create_entity(T0, DAY)
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    with WaveStore(tmp_path / "db") as db:
        with pytest.raises(UnknownObjectError):
            db.put_attestation(att)
        db.put_entity(world.ns.entity)
        db.put_attestation(att)
    mem = MemoryStore()
    mem.put_entity(stranger.entity)
    assert mem.get_entity(world.ns.id) is None


def test_build_proof_shortest_chain_and_multi_path(world: World, store: MemoryStore | WaveStore) -> None:
    grants = [
        world.grant(world.ns, world.a, [st("publish", "x/*")], ttl=2),
        world.grant(world.a, world.b, [st("publish", "x/*")], ttl=1),
        world.grant(world.b, world.c, [st("publish", "x/y/*")]),
        world.grant(world.ns, world.c, [st("subscribe", "z/*")]),
    ]
    if store is not world.store:
        for g in grants:
            store.put_attestation(g)
    required = [st("publish", "x/y/z"), st("subscribe", "z/q")]
    proof = build_proof(store, world.c.id, world.ns.id, required, now=T0)
    assert len(proof.paths) == 2 and sorted(len(p) for p in proof.paths) == [1, 3]
    result = verify_proof(proof.raw, now=T0)
    result.require_all(world.c.id, world.ns.id, tuple(required))
    with pytest.raises(NoProofError, match="no valid chain"):
        build_proof(store, world.c.id, world.ns.id, [st("publish", "x/other")], now=T0)
    # a revoked link is routed around only if there is another way: here there is none
    store.put_revocation(world.b.revocation())
    with pytest.raises(NoProofError):
        build_proof(store, world.c.id, world.ns.id, [st("publish", "x/y/z")], now=T0)


def test_build_proof_respects_ttl(world: World) -> None:
    world.grant(world.ns, world.a, [st("publish", "*")], ttl=0)
    world.grant(world.a, world.b, [st("publish", "*")])
    with pytest.raises(NoProofError):
        build_proof(world.store, world.b.id, world.ns.id, [st("publish", "a")], now=T0)


def _kwargs(world: World) -> dict[str, object]:
    return dict(subject=world.a.id, namespace=world.ns.id, pset=PSET_WAVEMQ, permission="publish")


def test_cache_hit_expiry_and_lru_bound(world: World) -> None:
    verifier = Verifier(max_proofs=2)
    proofs = [world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", f"p{i}/*")], expiry_s=DAY)])
              for i in range(3)]  # fmt: skip
    for i, p in enumerate(proofs):
        result = verifier.check(p.raw, resource=(f"p{i}", "x"), now=T0, **_kwargs(world))  # type: ignore[arg-type]
        assert result.expiry == int(T0) + DAY
    assert len(verifier) == 2 and verifier.stats.evicted_lru == 1
    verifier.check(proofs[2].raw, resource=("p2", "y"), now=T0 + 1, **_kwargs(world))  # type: ignore[arg-type]
    assert verifier.stats.hits == 1
    with pytest.raises(VerificationError) as info:
        verifier.check(proofs[2].raw, resource=("p2", "y"), now=T0 + DAY, **_kwargs(world))  # type: ignore[arg-type]
    assert info.value.reason is Reason.EXPIRED and verifier.stats.evicted_expired == 1


def test_negative_cache_only_for_deterministic_failures(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    unknown = world.proof(world.a.id, [att], entities=[])
    verifier = Verifier()
    for _ in range(2):
        with pytest.raises(VerificationError) as info:
            verifier.verify(unknown.raw, T0)
        assert info.value.reason is Reason.UNKNOWN_ENTITY
    assert verifier.stats.misses == 2 and verifier.stats.negative_hits == 0
    self_issued = world.proof(world.b.id, [world.grant(world.b, world.b, [st("publish", "*")])])
    for _ in range(2):
        with pytest.raises(VerificationError):
            verifier.verify(self_issued.raw, T0)
    assert verifier.stats.negative_hits == 1


def test_verifier_with_store_lookup_and_insufficient_then_granted(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "a/*")])
    lean = world.proof(world.a.id, [att], entities=[])
    verifier = Verifier(lookup=world.store.get_entity)
    kw = _kwargs(world)
    with pytest.raises(VerificationError) as info:
        verifier.check(lean.raw, resource=("b",), now=T0, **kw)  # type: ignore[arg-type]
    assert info.value.reason is Reason.INSUFFICIENT_PERMISSION
    verifier.check(lean.raw, resource=("a", "b"), now=T0, **kw)  # type: ignore[arg-type]
    with pytest.raises(VerificationError):
        verifier.check(lean.raw, resource=("b",), now=T0, **kw)  # type: ignore[arg-type]


# Appendix A of the reference: RestrictBy vectors, through the statement fold the verifier uses.
VECTORS = [
    ("a/b/c", "a/b/c", "a/b/c"), ("a/b/c", "a/*", "a/b/c"), ("a/*", "a/b/c", "a/b/c"), ("a/*", "a/b/*", "a/b/*"),
    ("a/b/*", "a/*", "a/b/*"), ("*", "a/b", "a/b"), ("a/b", "*", "a/b"), ("a/+/c", "a/b/c", "a/b/c"),
    ("a/b/c", "a/+/c", "a/b/c"), ("a/+", "a/b/*", "a/b"), ("a/b", "a/b/*", "a/b"), ("a/b/*", "a/b", "a/b"),
    ("a/b", "a/c", None), ("a/*/z", "a/b/*", "a/b/*/z"), ("a/*", "*/z", "a/*/z"), ("a", "a/*", "a"),
    ("a/*", "a", "a"), ("a/b/c", "a/b", None), ("a/b", "a/b/c", None), ("+", "a", "a"),
    ("a/+/+", "a/b/*", "a/b/+"), ("*", "*", "*"), ("a/*", "a/*", "a/*"),
]  # fmt: skip


@pytest.mark.parametrize(("left", "right", "expected"), VECTORS)
def test_appendix_a_restrictby_through_fold(left: str, right: str, expected: str | None) -> None:
    folded = fold([st("publish", left)], [st("publish", right)])
    if expected is None:
        assert folded == ()
    else:
        assert [s.resource for s in folded] == [parse_pattern(expected)]
