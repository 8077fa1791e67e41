"""Attack cases of reference §7.10 (groups 1-14 and 16; group 15, decryption, is a later issue).

Each test builds the malicious object and asserts the precise refusal reason.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from wave_world import DAY, T0, YEAR, World, make_world, raw_attestation, st

from wavemq_edge.uri import parse_pattern, parse_uri
from wavemq_edge.wave import (
    PSET_WAVEMQ,
    Entity,
    Message,
    Proof,
    Query,
    Reason,
    ReplayGuard,
    Subscribe,
    Unsubscribe,
    VerificationError,
    Verifier,
    builtin_pset_id,
    create_entity,
    decode,
    encode,
    revoke_attestation,
    sign_handshake,
    sign_message,
    sign_query,
    sign_subscribe,
    sign_unsubscribe,
    verify_handshake,
    verify_proof,
)
from wavemq_edge.wave.canonical import CborValue
from wavemq_edge.wave.proof import MAX_PROOF_BYTES

pytestmark = pytest.mark.timeout(60)


def refused(reason: Reason, fn: Callable[[], object]) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        fn()
    assert info.value.reason is reason, f"expected {reason}, got {info.value!r}"
    return info.value


def tamper(raw: bytes, mutate: Callable[[dict[int, CborValue]], None]) -> bytes:
    """Change the TBS of a signed envelope and keep the old signature."""
    env = decode(raw)
    assert isinstance(env, list) and isinstance(env[2], dict)
    mutate(env[2])
    return encode(env)


def flip_last(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 1])


def publish_check(world: World, proof: Proof, subject: bytes, uri: str = "a/b", perm: str = "publish") -> object:
    result = verify_proof(proof.raw, now=T0)
    result.require(subject, world.ns.id, PSET_WAVEMQ, perm, parse_pattern(uri))
    return result


# -- 1. forged or bit-flipped signatures ---------------------------------------------------------------


def test_g1_entity_signature_flipped(world: World) -> None:
    refused(Reason.BAD_SIGNATURE, lambda: Entity.from_bytes(flip_last(world.a.entity.raw)))


def test_g1_entity_field_changed_under_old_signature(world: World) -> None:
    forged = tamper(world.a.entity.raw, lambda t: t.__setitem__(4, int(T0) + 50 * YEAR))
    refused(Reason.BAD_SIGNATURE, lambda: Entity.from_bytes(forged))


def test_g1_attestation_signature_flipped(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    proof = Proof.create(world.a.id, world.ns.id, [flip_last(att.raw)], [[0]], [world.ns.entity.raw], int(T0))
    refused(Reason.BAD_SIGNATURE, lambda: verify_proof(proof.raw, now=T0, lookup=world.store.get_entity))


def test_g1_attestation_statement_widened_under_old_signature(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "a/*")])
    forged = tamper(att.raw, lambda t: t.__setitem__(7, [st("publish", "*").to_cbor()]))
    proof = Proof.create(world.a.id, world.ns.id, [forged], [[0]], [world.ns.entity.raw, world.a.entity.raw], 0)
    refused(Reason.BAD_SIGNATURE, lambda: verify_proof(proof.raw, now=T0))


def test_g1_message_signature_flipped(world: World) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[("s", b"x")], proof_id=b"\0" * 36, now=T0)
    forged = Message.parse(flip_last(msg.raw))
    refused(Reason.BAD_SIGNATURE, lambda: forged.verify(world.a.entity, now=T0))


def test_g1_subscribe_query_unsubscribe_signatures_flipped(world: World) -> None:
    sub = sign_subscribe(
        world.a, namespace=world.ns.id, uri="a/*", sub_id="s1", router_id=b"r", proof_id=b"\0" * 36, now=T0
    )
    qry = sign_query(world.a, namespace=world.ns.id, uri="a/+", proof_id=b"\0" * 36, now=T0)
    uns = sign_unsubscribe(world.a, sub_id="s1", now=T0)
    refused(Reason.BAD_SIGNATURE, lambda: Subscribe.parse(flip_last(sub.raw)).verify(world.a.entity, now=T0))
    refused(Reason.BAD_SIGNATURE, lambda: Query.parse(flip_last(qry.raw)).verify(world.a.entity, now=T0))
    refused(Reason.BAD_SIGNATURE, lambda: Unsubscribe.parse(flip_last(uns.raw)).verify(world.a.entity, now=T0))


def test_g1_handshake_signature_flipped(world: World) -> None:
    sig = sign_handshake(world.a, b"challenge-1")
    refused(Reason.BAD_SIGNATURE, lambda: verify_handshake(world.a.entity, b"challenge-1", flip_last(sig)))
    verify_handshake(world.a.entity, b"challenge-1", sig)


def test_g1_signature_of_one_kind_never_verifies_as_another(world: World) -> None:
    """Domain separation: a subscribe's TBS bytes signed as a subscribe do not verify as a query."""
    qry = sign_query(world.a, namespace=world.ns.id, uri="a/b", proof_id=b"\0" * 36, now=T0)
    as_unsub = encode([13, 1, decode(qry.raw)[2], decode(qry.raw)[3]])  # type: ignore[index]
    with pytest.raises(VerificationError) as info:
        Unsubscribe.parse(as_unsub).verify(world.a.entity, now=T0)
    assert info.value.reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE)
    refused(Reason.WRONG_KIND, lambda: Subscribe.parse(qry.raw))


# -- 2. wrong signer, substituted entity ------------------------------------------------------------------


def test_g2_attestation_signed_by_other_key_than_claimed_attester(world: World) -> None:
    att = raw_attestation(
        world.b,  # b signs ...
        attester_id=world.ns.id,  # ... but claims the namespace issued it
        subject_id=world.b.id,
        namespace_id=world.ns.id,
        statements=[st("publish", "*")],
        not_before=int(T0),
        not_after=int(T0) + DAY,
    )
    refused(Reason.BAD_SIGNATURE, lambda: publish_check(world, world.proof(world.b.id, [att]), world.b.id))


def test_g2_entity_from_lookup_whose_id_differs(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    proof = world.proof(world.a.id, [att], entities=[])
    liar = {world.ns.id: world.b.entity, world.a.id: world.a.entity}
    refused(Reason.ID_MISMATCH, lambda: verify_proof(proof.raw, now=T0, lookup=liar.get))


def test_g2_message_verified_against_other_entity(world: World) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[], proof_id=b"\0" * 36, now=T0)
    refused(Reason.ID_MISMATCH, lambda: msg.verify(world.b.entity, now=T0))


# -- 3. expiry ----------------------------------------------------------------------------------------------


def test_g3_expired_attestation(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")], now=T0 - 10 * DAY, expiry_s=DAY)
    refused(Reason.EXPIRED, lambda: publish_check(world, world.proof(world.a.id, [att]), world.a.id))


def _short_lived_world(which: str) -> tuple[World, Proof]:
    world = make_world()
    short = create_entity(T0 - DAY, DAY)  # not_after == T0
    setattr(world, which, short)
    world.store.put_entity(short.entity)
    ns_to_a = world.grant(world.ns, world.a, [st("publish", "*")], ttl=1, now=T0 - DAY)
    a_to_b = world.grant(world.a, world.b, [st("publish", "*")], now=T0 - DAY)
    return world, world.proof(world.b.id, [ns_to_a, a_to_b])


@pytest.mark.parametrize("which", ["ns", "a", "b"])
def test_g3_expired_entity_anywhere_in_chain(which: str) -> None:
    world, proof = _short_lived_world(which)
    publish_check_at = verify_proof(proof.raw, now=T0 - 1)  # valid one second before
    publish_check_at.require(world.b.id, world.ns.id, PSET_WAVEMQ, "publish", ("x",))
    err = refused(Reason.EXPIRED, lambda: verify_proof(proof.raw, now=T0))  # now == not_after
    assert "expired" in str(err)


def test_g3_now_equal_not_after_is_expired(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")], expiry_s=DAY)
    proof = world.proof(world.a.id, [att])
    verify_proof(proof.raw, now=att.not_after - 1)
    refused(Reason.EXPIRED, lambda: verify_proof(proof.raw, now=att.not_after))


def test_g3_not_yet_valid_attestation(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")], now=T0 + 3600)
    refused(Reason.NOT_YET_VALID, lambda: verify_proof(world.proof(world.a.id, [att]).raw, now=T0))


# -- 4. TTL -------------------------------------------------------------------------------------------------


def test_g4_ttl_zero_then_redelegation(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=0),
        world.grant(world.a, world.b, [st("publish", "*")]),
    ]
    refused(Reason.TTL_EXCEEDED, lambda: verify_proof(world.proof(world.b.id, chain).raw, now=T0))


def test_g4_chain_longer_than_ttl_plus_one(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=1),
        world.grant(world.a, world.b, [st("publish", "*")], ttl=5),
        world.grant(world.b, world.c, [st("publish", "*")]),
    ]
    refused(Reason.TTL_EXCEEDED, lambda: verify_proof(world.proof(world.c.id, chain).raw, now=T0))
    verify_proof(world.proof(world.b.id, chain[:2]).raw, now=T0)


def test_g4_inner_link_lowers_ttl(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=5),
        world.grant(world.a, world.b, [st("publish", "*")], ttl=0),
        world.grant(world.b, world.c, [st("publish", "*")]),
    ]
    refused(Reason.TTL_EXCEEDED, lambda: verify_proof(world.proof(world.c.id, chain).raw, now=T0))


def test_g4_sufficient_ttl_passes(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=2),
        world.grant(world.a, world.b, [st("publish", "*")], ttl=2),
        world.grant(world.b, world.c, [st("publish", "*")]),
    ]
    result = verify_proof(world.proof(world.c.id, chain).raw, now=T0)
    assert result.indirections == 0


# -- 5. broadened permissions ------------------------------------------------------------------------------


def test_g5_later_link_adds_a_permission(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=1),
        world.grant(world.a, world.b, [st("publish,subscribe", "*")]),
    ]
    proof = world.proof(world.b.id, chain)
    publish_check(world, proof, world.b.id)
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, proof, world.b.id, perm="subscribe"))


def test_g5_wrong_permission_set_same_permission_name(world: World) -> None:
    other = builtin_pset_id("lookalike")
    att = world.grant(world.ns, world.a, [st("publish", "*", pset=other)])
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, world.proof(world.a.id, [att]), world.a.id))


# -- 6. broadened resources --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "required"),
    [
        ("a/*", "b/x", "b/x"),
        ("a/b", "a/b/c", "a/b/c"),
        ("a/+", "a/*", "a/b/c"),
    ],
)
def test_g6_later_link_broadens_resource(world: World, first: str, second: str, required: str) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", first)], ttl=1),
        world.grant(world.a, world.b, [st("publish", second)]),
    ]
    proof = world.proof(world.b.id, chain)
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, proof, world.b.id, uri=required))


def test_g6_plus_does_not_cover_star(world: World) -> None:
    proof = world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish,subscribe", "a/+")])])
    publish_check(world, proof, world.a.id, uri="a/b")
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, proof, world.a.id, uri="a/b/c"))
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, proof, world.a.id, "a/*", "subscribe"))


def test_g6_pattern_subscribe_not_covered(world: World) -> None:
    proof = world.proof(world.a.id, [world.grant(world.ns, world.a, [st("subscribe", "a/b/*")])])
    publish_check(world, proof, world.a.id, "a/b/*", "subscribe")
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: publish_check(world, proof, world.a.id, "a/*", "subscribe"))


# -- 7. wrong namespace -------------------------------------------------------------------------------------


def test_g7_link_in_another_namespace(world: World) -> None:
    first = world.grant(world.ns, world.a, [st("publish", "*")], ttl=1)
    second = world.grant(world.a, world.b, [st("publish", "*")], namespace=world.c.id)
    refused(Reason.WRONG_NAMESPACE, lambda: verify_proof(world.proof(world.b.id, [first, second]).raw, now=T0))


def test_g7_proof_for_n_used_for_n_prime(world: World) -> None:
    result = verify_proof(world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", "*")])]).raw, now=T0)
    refused(Reason.WRONG_NAMESPACE, lambda: result.require(world.a.id, world.c.id, PSET_WAVEMQ, "publish", ("x",)))


def test_g7_self_issued_grant_claiming_namespace(world: World) -> None:
    """WAVE 3 accepted "B grants B publish@N/*" (reference §3 step 7); WAVE-lite must not."""
    att = world.grant(world.b, world.b, [st("publish", "*")])
    refused(Reason.NOT_FROM_NAMESPACE, lambda: verify_proof(world.proof(world.b.id, [att]).raw, now=T0))


# -- 8. revocation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["ns", "a", "b"])
def test_g8_revoked_entity_each_position(world: World, position: str) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=1),
        world.grant(world.a, world.b, [st("publish", "*")]),
    ]
    proof = world.proof(world.b.id, chain)
    revoked = {getattr(world, position).revocation().commitment}
    refused(Reason.REVOKED, lambda: verify_proof(proof.raw, now=T0, revoked=revoked))


def test_g8_revoked_attestation(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=1),
        world.grant(world.a, world.b, [st("publish", "*")]),
    ]
    revocation = revoke_attestation(world.a, chain[1])
    assert revocation.commitment == chain[1].revocation_commitment
    proof = world.proof(world.b.id, chain)
    refused(Reason.REVOKED, lambda: verify_proof(proof.raw, now=T0, revoked={revocation.commitment}))


def test_g8_revocation_after_cached_success(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    proof = world.proof(world.a.id, [att])
    verifier = Verifier()
    kwargs = dict(subject=world.a.id, namespace=world.ns.id, pset=PSET_WAVEMQ, permission="publish")
    verifier.check(proof.raw, resource=("x",), now=T0, **kwargs)  # type: ignore[arg-type]
    verifier.check(proof.raw, resource=("x",), now=T0 + 1, **kwargs)  # type: ignore[arg-type]
    assert verifier.stats.hits == 1
    assert verifier.add_revocation(world.a.revocation()) == 1
    refused(Reason.REVOKED, lambda: verifier.check(proof.raw, resource=("x",), now=T0 + 2, **kwargs))  # type: ignore[arg-type]


def test_g8_only_the_attester_can_revoke_a_grant(world: World) -> None:
    from wavemq_edge.wave import GrantError

    att = world.grant(world.ns, world.a, [st("publish", "*")])
    with pytest.raises(GrantError):
        revoke_attestation(world.b, att)
    # A revocation made with someone else's seed does not match the commitment.
    assert world.b.revocation().commitment != att.revocation_commitment


# -- 9. replay ----------------------------------------------------------------------------------------------


def test_g9_replayed_message_same_id(world: World) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[("s", b"1")], proof_id=b"\0" * 36, now=T0)
    guard = ReplayGuard(max_age_s=600)
    guard.accept(msg.src, msg.msg_id, msg.timestamp_ms, T0)
    refused(Reason.REPLAYED, lambda: guard.accept(msg.src, msg.msg_id, msg.timestamp_ms, T0 + 1))


def test_g9_replayed_subscribe_and_query_nonce(world: World) -> None:
    guard = ReplayGuard(max_age_s=600)
    sub = sign_subscribe(
        world.a, namespace=world.ns.id, uri="a/*", sub_id="s", router_id=b"", proof_id=b"\0" * 36, now=T0
    )
    qry = sign_query(world.a, namespace=world.ns.id, uri="a/*", proof_id=b"\0" * 36, now=T0)
    for obj in (sub, qry):
        guard.accept(obj.src, obj.nonce, obj.timestamp_ms, T0)
        refused(Reason.REPLAYED, lambda obj=obj: guard.accept(obj.src, obj.nonce, obj.timestamp_ms, T0))  # type: ignore[misc]


def test_g9_old_and_future_timestamps(world: World) -> None:
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[], proof_id=b"\0" * 36, now=T0)
    refused(Reason.STALE_TIMESTAMP, lambda: msg.verify(world.a.entity, now=T0 + 2 * DAY, max_age_s=DAY))
    refused(Reason.FUTURE_TIMESTAMP, lambda: msg.verify(world.a.entity, now=T0 - 301, skew_s=300))
    msg.verify(world.a.entity, now=T0 - 299, skew_s=300)
    qry = sign_query(world.a, namespace=world.ns.id, uri="a/b", proof_id=b"\0" * 36, now=T0)
    refused(Reason.STALE_TIMESTAMP, lambda: qry.verify(world.a.entity, now=T0 + 3600))


def test_g9_replay_window_bound_refuses_rather_than_forgets() -> None:
    guard = ReplayGuard(max_age_s=600, max_entries=2)
    for i in range(3):
        guard.accept(b"s", bytes([i]), int(T0 * 1000) + i, T0)
    assert len(guard) == 2 and guard.dropped == 1
    refused(Reason.REPLAYED, lambda: guard.accept(b"s", bytes([0]), int(T0 * 1000), T0))


# -- 10. tampering -------------------------------------------------------------------------------------------


def _signed(world: World, **kw: object) -> Message:
    args: dict[str, object] = dict(
        namespace=world.ns.id,
        uri="a/b",
        payload=[("s", b"ab"), ("s", b"c")],
        proof_id=b"\1" * 36,
        now=T0,
        origin_router=b"router-1",
        e2ee={1: "a/b", 2: 5},
    )
    args.update(kw)
    return sign_message(world.a, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (4, [["s", b"ab"], ["s", b"d"]]),  # payload content
        (4, [["t", b"ab"], ["s", b"c"]]),  # schema
        (4, [["s", b"a"], ["s", b"bc"]]),  # payload re-split
        (3, "a/c"),  # uri
        (2, b"\2" * 36),  # namespace
        (5, b"router-2"),  # origin router
        (10, {1: "x/y", 2: 5}),  # e2ee header: ciphertext moved to another partition
        (10, {1: "a/b", 2: 6}),  # ... or epoch
        (9, True),  # persist flag
        (8, b"\3" * 36),  # proof id
    ],
)
def test_g10_tampered_message_field(world: World, key: int, value: CborValue) -> None:
    msg = _signed(world)
    forged = Message.parse(tamper(msg.raw, lambda t: t.__setitem__(key, value)))
    refused(Reason.BAD_SIGNATURE, lambda: forged.verify(world.a.entity, now=T0))


def test_g10_message_id_is_derived_not_chosen(world: World) -> None:
    from wavemq_edge.wave.envelope import ObjectType, seal_envelope

    msg = _signed(world)
    tbs = dict(decode(msg.raw)[2])  # type: ignore[arg-type,index]
    tbs[7] = b"\0" * 16  # the source signs, but tries to pick an id of its choosing (to shadow another message)
    with pytest.raises(VerificationError) as info:
        Message.parse(seal_envelope(ObjectType.MESSAGE, tbs, world.a.signing_key))
    assert info.value.reason is Reason.MALFORMED and "[7]" in str(info.value)
    # the id is a function of the signed bytes: any change of content changes it
    other = _signed(world, uri="b")
    assert other.msg_id != msg.msg_id
    assert Message.parse(msg.raw).msg_id == msg.msg_id


def test_g10_publish_uri_with_wildcards_refused(world: World) -> None:
    from wavemq_edge.uri import UriError
    from wavemq_edge.wave.envelope import ObjectType, seal_envelope
    with pytest.raises(UriError):
        _signed(world, uri="a/*")
    tbs = dict(decode(_signed(world).raw)[2])  # type: ignore[arg-type,index]
    tbs[3] = "a/+"
    forged = Message.parse(seal_envelope(ObjectType.MESSAGE, tbs, world.a.signing_key))
    refused(Reason.WILDCARD_URI, lambda: forged.verify(world.a.entity, now=T0))


# -- 11. wrong subject --------------------------------------------------------------------------------------


def test_g11_proof_for_another_subject_first_use_and_cache_hit(world: World) -> None:
    proof = world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", "*")])])
    verifier = Verifier()

    def check(subject: bytes) -> object:
        return verifier.check(
            proof.raw,
            subject=subject,
            namespace=world.ns.id,
            pset=PSET_WAVEMQ,
            permission="publish",
            resource=("x",),
            now=T0,
        )

    refused(Reason.WRONG_SUBJECT, lambda: check(world.b.id))  # first use
    check(world.a.id)  # cached success for a ...
    refused(Reason.WRONG_SUBJECT, lambda: check(world.b.id))  # ... is not a success for b
    assert verifier.stats.hits >= 2


def test_g11_second_path_ends_elsewhere(world: World) -> None:
    to_a = world.grant(world.ns, world.a, [st("publish", "x/*")])
    to_b = world.grant(world.ns, world.b, [st("publish", "y/*")])
    proof = world.proof(world.a.id, [to_a, to_b], paths=[[0], [1]])
    refused(Reason.WRONG_SUBJECT, lambda: verify_proof(proof.raw, now=T0))


# -- 12. clock skew ------------------------------------------------------------------------------------------


def test_g12_not_before_in_future_within_and_beyond_skew(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")], now=T0 + 200)
    proof = world.proof(world.a.id, [att])
    verify_proof(proof.raw, now=T0, skew_s=300)
    refused(Reason.NOT_YET_VALID, lambda: verify_proof(proof.raw, now=T0, skew_s=100))


# -- 13. malformed chains -------------------------------------------------------------------------------------


def test_g13_broken_link(world: World) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=1),
        world.grant(world.b, world.c, [st("publish", "*")]),
    ]
    refused(Reason.BROKEN_LINK, lambda: verify_proof(world.proof(world.c.id, chain).raw, now=T0))


@pytest.mark.parametrize("paths", [[[0, 5]], [[]], [[0, 1, 0]]], ids=["out-of-range", "empty", "cycle"])
def test_g13_bad_paths(world: World, paths: list[list[int]]) -> None:
    chain = [
        world.grant(world.ns, world.a, [st("publish", "*")], ttl=3),
        world.grant(world.a, world.ns, [st("publish", "*")], ttl=3),
    ]
    refused(Reason.BAD_PATH, lambda: verify_proof(world.proof(world.a.id, chain, paths=paths).raw, now=T0))


def test_g13_duplicate_attestation(world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish", "*")])
    refused(Reason.BAD_PATH, lambda: verify_proof(world.proof(world.a.id, [att, att], paths=[[0]]).raw, now=T0))


def test_g13_zero_path_proof(world: World) -> None:
    refused(Reason.BAD_PATH, lambda: verify_proof(world.proof(world.a.id, [], paths=[]).raw, now=T0))
    own = verify_proof(world.proof(world.ns.id, [], paths=[]).raw, now=T0)
    own.require(world.ns.id, world.ns.id, PSET_WAVEMQ, "publish", parse_uri("any/thing"))


# -- 14. encoding ---------------------------------------------------------------------------------------------


def _proof_bytes(world: World) -> bytes:
    return world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", "*")])]).raw


def test_g14_long_form_integer_in_proof(world: World) -> None:
    raw = _proof_bytes(world)
    assert raw[:3] == b"\x83\x03\x01"
    refused(Reason.NON_CANONICAL, lambda: verify_proof(b"\x83\x18\x03" + raw[2:], now=T0))


def test_g14_trailing_bytes_and_indefinite_length(world: World) -> None:
    raw = _proof_bytes(world)
    refused(Reason.NON_CANONICAL, lambda: verify_proof(raw + b"\x00", now=T0))
    refused(Reason.NON_CANONICAL, lambda: verify_proof(b"\x9f" + raw[1:] + b"\xff", now=T0))


def test_g14_unsorted_and_duplicate_keys(world: World) -> None:
    raw = _proof_bytes(world)
    # The TBS map starts at byte 3 with head 0xa6 and key 1 first: swap in a key 2 before it.
    unsorted = raw[:3] + b"\xa7\x02\x00" + raw[4:]
    refused(Reason.NON_CANONICAL, lambda: verify_proof(unsorted, now=T0))
    dup = raw[:3] + b"\xa7\x01\x00" + raw[4:]
    refused(Reason.NON_CANONICAL, lambda: verify_proof(dup, now=T0))


def test_g14_true_in_place_of_type_or_version_one(world: World) -> None:
    """``true == 1`` in Python: an envelope with 0xf5 where the entity type or the version 1 belongs
    would be a second encoding (hence a second ID) of the same signed object."""
    raw = world.a.entity.raw
    assert raw[:3] == b"\x84\x01\x01"
    Entity.from_bytes(raw)
    refused(Reason.WRONG_KIND, lambda: Entity.from_bytes(b"\x84\xf5" + raw[2:]))
    refused(Reason.MALFORMED, lambda: Entity.from_bytes(b"\x84\x01\xf5" + raw[3:]))
    msg = sign_message(world.a, namespace=world.ns.id, uri="a/b", payload=[], proof_id=b"\0" * 36, now=T0)
    refused(Reason.MALFORMED, lambda: Message.parse(msg.raw[:2] + b"\xf5" + msg.raw[3:]))


def test_g14_oversize_proof(world: World) -> None:
    refused(Reason.OVERSIZE, lambda: verify_proof(b"\x83" + b"\x00" * MAX_PROOF_BYTES, now=T0))


# -- 16. protocol level ----------------------------------------------------------------------------------------


def test_g16_elided_proof_id_unknown_asks_for_resend(world: World) -> None:
    proof = world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", "*")])])
    verifier = Verifier()
    kwargs = dict(subject=world.a.id, namespace=world.ns.id, pset=PSET_WAVEMQ, permission="publish", resource=("x",))
    refused(Reason.UNKNOWN_PROOF, lambda: verifier.check_id(proof.id, now=T0, **kwargs))  # type: ignore[arg-type]
    verifier.check(proof.raw, now=T0, **kwargs)  # type: ignore[arg-type]
    verifier.check_id(proof.id, now=T0, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("default_to_unrevoked", [False, True])
def test_g16_stale_revocation_feed(world: World, default_to_unrevoked: bool) -> None:
    proof = world.proof(world.a.id, [world.grant(world.ns, world.a, [st("publish", "*")])])
    verifier = Verifier(max_revocation_staleness_s=3600, default_to_unrevoked=default_to_unrevoked)
    verifier.mark_revocations_synced(T0)
    verifier.verify(proof.raw, T0 + 60)
    if default_to_unrevoked:
        verifier.verify(proof.raw, T0 + 7200)
        assert verifier.stats.stale_passes == 1
    else:
        refused(Reason.REVOCATION_FEED_STALE, lambda: verifier.verify(proof.raw, T0 + 7200))


def test_g16_unsubscribe_by_someone_else(world: World) -> None:
    uns = sign_unsubscribe(world.b, sub_id="a's subscription", now=T0)
    refused(Reason.ID_MISMATCH, lambda: uns.verify(world.a.entity, now=T0))
    forged = Unsubscribe.parse(tamper(uns.raw, lambda t: t.__setitem__(1, world.a.id)))
    refused(Reason.BAD_SIGNATURE, lambda: forged.verify(world.a.entity, now=T0))


def test_g16_designated_router_handshake(world: World) -> None:
    router = world.c
    narrow = world.proof(router.id, [world.grant(world.ns, router, [st("route", "site1/*")])])
    full = world.proof(router.id, [world.grant(world.ns, router, [st("route", "*")])])
    verifier = Verifier()

    def route_ok(proof: Proof, namespace: bytes) -> object:
        return verifier.check(
            proof.raw,
            subject=router.id,
            namespace=namespace,
            pset=PSET_WAVEMQ,
            permission="route",
            resource=("*",),
            now=T0,
        )

    route_ok(full, world.ns.id)
    refused(Reason.INSUFFICIENT_PERMISSION, lambda: route_ok(narrow, world.ns.id))  # route on a sub-resource
    refused(Reason.WRONG_NAMESPACE, lambda: route_ok(full, world.a.id))  # for another namespace
    sig = sign_handshake(router, b"transcript of channel 1")
    verify_handshake(router.entity, b"transcript of channel 1", sig)
    refused(Reason.BAD_SIGNATURE, lambda: verify_handshake(router.entity, b"transcript of channel 2", sig))
