"""Round trips of every file format, armor and parser errors, printable hashes, the expiry grammar."""

from __future__ import annotations

from pathlib import Path

import pytest
from wave_world import DAY, T0, YEAR, World, st

from wavemq_edge.wave import (
    ArmorError,
    Attestation,
    Entity,
    EntitySecret,
    InputError,
    PassphraseError,
    Proof,
    Reason,
    Revocation,
    VerificationError,
    armor,
    create_entity,
    dearmor,
    format_id,
    is_wave3_id,
    load_entity,
    load_entity_secret,
    load_object,
    parse_duration,
    parse_id,
    parse_statement_text,
    save_entity_secret,
)
from wavemq_edge.wave.envelope import ObjectType
from wavemq_edge.wave.expiry import format_duration
from wavemq_edge.wave.files import SecretFile, write_armored

pytestmark = pytest.mark.timeout(60)

#: argon2id minimum cost, for tests only (production uses the 64 MiB "interactive" limits).
FAST_KDF = {"opslimit": 1, "memlimit": 8192}


def test_entity_secret_plain_roundtrip(tmp_path: Path) -> None:
    secret = create_entity(T0, YEAR, label="ns")
    save_entity_secret(tmp_path / "e.ent", secret)
    assert (tmp_path / "e.ent").stat().st_mode & 0o777 == 0o600
    loaded = load_entity_secret(tmp_path / "e.ent")
    assert loaded.entity == secret.entity and not loaded.encrypted
    assert bytes(loaded.signing_key) == bytes(secret.signing_key)
    assert load_entity(tmp_path / "e.ent") == secret.entity
    with pytest.raises(InputError, match="already exists"):
        save_entity_secret(tmp_path / "e.ent", secret)


def test_entity_secret_passphrase_roundtrip(tmp_path: Path) -> None:
    secret = create_entity(T0, YEAR)
    save_entity_secret(tmp_path / "e.ent", secret, "correct horse", **FAST_KDF)
    obj = load_object(tmp_path / "e.ent")
    assert isinstance(obj, SecretFile) and obj.encrypted and obj.entity == secret.entity
    assert load_entity_secret(tmp_path / "e.ent", "correct horse").revocation_seed == secret.revocation_seed
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_entity_secret(tmp_path / "e.ent", "wrong")
    with pytest.raises(PassphraseError, match="give --passphrase"):
        load_entity_secret(tmp_path / "e.ent")


def test_keyring_cannot_move_under_another_entity() -> None:
    a, b = create_entity(T0, YEAR), create_entity(T0, YEAR)
    from wavemq_edge.wave import decode, encode

    env = decode(a.to_bytes("pw", **FAST_KDF))
    assert isinstance(env, list) and isinstance(env[2], dict)
    env[2][1] = b.entity.raw
    with pytest.raises(PassphraseError):
        EntitySecret.from_bytes(encode(env), "pw")


def test_kdf_cost_in_a_hostile_file_is_bounded() -> None:
    from wavemq_edge.wave import decode, encode

    env = decode(create_entity(T0, YEAR).to_bytes("pw", **FAST_KDF))
    assert isinstance(env, list) and isinstance(env[2], dict) and isinstance(env[2][2], dict)
    env[2][2][12] = 4 * 1024**3
    with pytest.raises(VerificationError) as info:
        EntitySecret.from_bytes(encode(env), "pw")
    assert info.value.reason is Reason.MALFORMED and "memlimit" in str(info.value)


def test_public_attestation_proof_revocation_files_roundtrip(tmp_path: Path, world: World) -> None:
    att = world.grant(world.ns, world.a, [st("publish,subscribe", "a/*")], ttl=2)
    proof = world.proof(world.a.id, [att])
    rev = world.a.revocation()
    for name, kind, raw in [
        ("e.pub", ObjectType.ENTITY, world.a.entity.raw),
        ("a.pem", ObjectType.ATTESTATION, att.raw),
        ("p.pem", ObjectType.PROOF, proof.raw),
        ("r.pem", ObjectType.REVOCATION, rev.raw),
    ]:
        write_armored(tmp_path / name, kind, raw)
        (tmp_path / (name + ".raw")).write_bytes(raw)
        for path in (tmp_path / name, tmp_path / (name + ".raw")):
            obj = load_object(path)
            assert isinstance(obj, (Entity, Attestation, Proof, Revocation))
            assert obj.raw == raw
    loaded = load_object(tmp_path / "a.pem")
    assert isinstance(loaded, Attestation)
    assert loaded.statements == att.statements and loaded.ttl == 2
    assert Revocation.from_bytes(rev.raw).commitment == world.a.entity.revocation_commitment


def test_armor_format_and_errors() -> None:
    text = armor("WAVELITE ENTITY", b"x" * 100)
    lines = text.splitlines()
    assert lines[0] == "-----BEGIN WAVELITE ENTITY-----" and lines[-1] == "-----END WAVELITE ENTITY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    assert dearmor(text.encode()) == ("WAVELITE ENTITY", b"x" * 100)
    with pytest.raises(ArmorError, match="WAVE 3"):
        dearmor(b"-----BEGIN WAVE ENTITY SECRET-----\nAAAA\n-----END WAVE ENTITY SECRET-----\n")
    with pytest.raises(ArmorError, match="unknown label"):
        dearmor(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ArmorError, match="no '-----END"):
        dearmor(b"-----BEGIN WAVELITE ENTITY-----\nAAAA\n")
    with pytest.raises(ArmorError, match="base64"):
        dearmor(b"-----BEGIN WAVELITE ENTITY-----\nA!AA\n-----END WAVELITE ENTITY-----\n")
    with pytest.raises(ArmorError, match="one block"):
        dearmor((text + text).encode())


def test_printable_ids() -> None:
    entity = create_entity(T0, DAY).entity
    text = format_id(entity.id)
    assert len(text) == 48 and text.startswith("oOQC") and "=" not in text
    assert parse_id(text) == entity.id
    xbos = parse_id("GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w==")
    assert is_wave3_id(xbos) and format_id(xbos) == "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w=="
    for bad, words in [("abc", "48"), ("!" * 48, "base64"), ("A" * 48, "multihash")]:
        with pytest.raises(InputError, match=words):
            parse_id(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1y", 365 * DAY), ("30d", 30 * DAY), ("1y2d3h", YEAR + 2 * DAY + 3 * 3600), ("90m", 5400), ("1h1s", 3601)],
)
def test_expiry_grammar(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("1x", "position 1"),
        ("1d1y", "out of order"),
        ("d", "position 0"),
        ("12", "no unit"),
        ("0d", "zero"),
    ],
)
def test_expiry_grammar_errors(text: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse_duration(text)


def test_statement_grammar() -> None:
    s = parse_statement_text("wavemq:subscribe,publish,query@namespace.ent/*")
    assert (s.pset, s.permissions, s.namespace, s.resource) == (
        "wavemq",
        ("subscribe", "publish", "query"),
        "namespace.ent",
        ("*",),
    )
    assert parse_statement_text("wave:decrypt@ns/a/b/*").resource == ("a", "b", "*")
    for bad, words in [
        ("wavemq:publish", "'@'"),
        ("wavemq@ns/*", "pset:perm"),
        ("wavemq:Pub@ns/*", "permission 'Pub'"),
        ("wavemq:publish@ns", "namespace/resource"),
        ("wavemq:publish@ns/a//b", "empty inner segment"),
        ("wavemq:publish,publish@ns/*", "repeated"),
    ]:
        with pytest.raises(InputError, match=words):
            parse_statement_text(bad)
