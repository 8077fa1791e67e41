"""The per-message path of wave/: nothing formatted on success, refusals still name what and who."""

from __future__ import annotations

import pytest
from wave_world import T0, World

from wavemq_edge.wave import Message, Reason, VerificationError, format_id, sign_message, sign_query
from wavemq_edge.wave import envelope as envelope_module
from wavemq_edge.wave import messages as messages_module

pytestmark = pytest.mark.timeout(60)


def _no_formatting(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object) -> str:
        raise AssertionError("a printable id was built on the success path")

    monkeypatch.setattr(messages_module, "format_id", fail)
    monkeypatch.setattr(envelope_module.ObjectType, "kind", property(fail))


def test_parse_and_verify_format_nothing_on_success(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[("s", b"1")], proof_id=b"\0" * 36, now=T0)
    qry = sign_query(world.a, namespace=world.ns.id, uri="a/+", proof_id=b"\0" * 36, now=T0)
    _no_formatting(monkeypatch)
    Message.parse(msg.raw).verify(world.a.entity, now=T0)
    type(qry).parse(qry.raw).verify(world.a.entity, now=T0)


def test_refusals_still_name_the_source(world: World) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[], proof_id=b"\0" * 36, now=T0)
    with pytest.raises(VerificationError) as info:
        msg.verify(world.a.entity, now=T0 + 3600, max_age_s=60)
    assert info.value.reason is Reason.STALE_TIMESTAMP
    assert f"message from {format_id(world.a.id)}: timestamp" in str(info.value)
    with pytest.raises(VerificationError) as info:
        msg.verify(world.b.entity, now=T0)
    assert info.value.reason is Reason.ID_MISMATCH
    assert format_id(world.b.id) in str(info.value)


def test_the_uri_cache_never_admits_a_bad_uri(world: World) -> None:
    """Only URIs that parsed are remembered: a wildcard or malformed one is refused every time."""
    good = sign_message(world.a, namespace=world.ns.id, uri="x/y", payload=[], proof_id=b"\0" * 36, now=T0)
    good.verify(world.a.entity, now=T0)
    good.verify(world.a.entity, now=T0)
    tbs = {1: world.a.id, 2: world.ns.id, 3: "x/+", 4: [], 5: b"", 6: int(T0 * 1000), 8: b"\0" * 36, 9: False}
    sealed = envelope_module.seal_envelope(envelope_module.ObjectType.MESSAGE, tbs, world.a.signing_key)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(VerificationError) as info:
            Message.parse(sealed).verify(world.a.entity, now=T0)
        assert info.value.reason is Reason.WILDCARD_URI


def test_a_proof_presented_again_is_not_hashed_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verifier.check remembers the id of recent small proof bytes; another proof gets its own id, and
    a revocation still takes effect on the next check."""
    from wave_world import st

    from wavemq_edge.uri import parse_uri
    from wavemq_edge.wave import PSET_WAVEMQ, Verifier
    from wavemq_edge.wave import proof_cache as proof_cache_module

    grants = [world.grant(world.ns, world.a, [st("publish", f"p{i}/*")]) for i in range(2)]
    proofs = [world.proof(world.a.id, [g]) for g in grants]
    hashed: list[bytes] = []
    real = proof_cache_module.object_id

    def counting(data: bytes) -> bytes:
        hashed.append(data)
        return real(data)

    monkeypatch.setattr(proof_cache_module, "object_id", counting)
    verifier = Verifier()
    kw = dict(subject=world.a.id, namespace=world.ns.id, pset=PSET_WAVEMQ, permission="publish", now=T0)
    for _ in range(3):
        for i, proof in enumerate(proofs):
            verifier.check(proof.raw, resource=parse_uri(f"p{i}/x"), **kw)  # type: ignore[arg-type]
    assert hashed == [proofs[0].raw, proofs[1].raw]
    with pytest.raises(VerificationError) as info:
        verifier.check(proofs[0].raw, resource=parse_uri("p1/x"), **kw)  # type: ignore[arg-type]
    assert info.value.reason is Reason.INSUFFICIENT_PERMISSION
    verifier.add_revocation(grants[0].revocation_commitment)
    with pytest.raises(VerificationError) as info:
        verifier.check(proofs[0].raw, resource=parse_uri("p0/x"), **kw)  # type: ignore[arg-type]
    assert info.value.reason is Reason.REVOKED
