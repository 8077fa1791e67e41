"""The seed README's ``wv`` sequence, verbatim, through the real ``wv`` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wavemq_edge.cli.wv import main
from wavemq_edge.wave import format_id, load_entity, load_object

pytestmark = pytest.mark.timeout(120)

WV = Path(sys.executable).parent / "wv"

SEED = [
    "wv mke -o namespace.ent --expiry 1y",
    "wv mke -o service.ent --expiry 1y",
    "wv rtgrant --attester namespace.ent --subject service.ent --expiry 1y"
    ' "wavemq:subscribe,publish,query@namespace.ent/*"',
    'wv rtgrant --attester namespace.ent --subject service.ent --expiry 1y "wave:decrypt@namespace.ent/*"',
    "wv mke -o router.ent --expiry 1y",
    'wv rtgrant --attester namespace.ent --subject router.ent --expiry 1y "wavemq:route@namespace.ent/*"',
    'wv rtprove --subject router.ent -o routerproof.pem "wavemq:route@namespace.ent/*"',
    "wv inspect namespace.ent",
]


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WV), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )


def test_seed_sequence_verbatim(tmp_path: Path) -> None:
    import shlex

    env = dict(os.environ, WAVE_HOME=str(tmp_path / "wavehome"))
    outputs = []
    for line in SEED:
        argv = shlex.split(line)
        assert argv[0] == "wv"
        proc = run(tmp_path, env, *argv[1:])
        assert proc.returncode == 0, f"{line}: {proc.stderr}"
        assert proc.stderr == ""
        outputs.append(proc.stdout)
    assert outputs[0] == "wrote entity: namespace.ent\n"
    assert outputs[2].startswith("published attestation: oOQC")
    assert outputs[6] == "wrote proof: routerproof.pem\n"
    ns = load_entity(tmp_path / "namespace.ent")
    inspect = outputs[7].splitlines()
    assert inspect[0] == "= Entity"
    assert inspect[1] == f"      Hash: {format_id(ns.id)}"
    assert inspect[2].startswith("   Created: ") and inspect[3].startswith("   Expires: ")
    assert inspect[4:] == [
        "  Validity:",
        "   - Valid: true",
        "   - Expired: false",
        "   - Malformed: false",
        "   - Revoked: false",
        "   - Message: ",
    ]

    # wv verify accepts the route proof for what it was built for ...
    ok = run(tmp_path, env, "verify", "routerproof.pem", "wavemq:route@namespace.ent/*")
    assert ok.returncode == 0, ok.stderr
    assert "Policy: RTree" in ok.stdout and "Permissions: route" in ok.stdout and "URI: *" in ok.stdout
    assert "Required policy: granted" in ok.stdout

    # ... and refuses a proof whose grant is narrower than the resource required.
    assert run(tmp_path, env, "mke", "-o", "sensor.ent", "--expiry", "1d").returncode == 0
    grant = run(
        tmp_path, env, "rtgrant", "--attester", "namespace.ent", "--subject", "sensor.ent", "--expiry", "1d",
        "-o", "narrow.pem", "wavemq:publish@namespace.ent/site1/*",
    )  # fmt: skip
    assert grant.returncode == 0, grant.stderr
    assert "wrote attestation: narrow.pem" in grant.stdout
    prove = run(tmp_path, env, "rtprove", "--subject", "sensor.ent", "-o", "pub.pem",
                "wavemq:publish@namespace.ent/site1/*")  # fmt: skip
    assert prove.returncode == 0, prove.stderr
    broader = run(tmp_path, env, "verify", "pub.pem", "wavemq:route@namespace.ent/*")
    assert broader.returncode == 1
    refusal = broader.stderr.strip().splitlines()
    assert len(refusal) == 1 and "insufficient_permission" in refusal[0]
    proof = load_object(tmp_path / "pub.pem")
    assert format_id(proof.id) in refusal[0]  # type: ignore[union-attr]
    for wider in ("wavemq:publish@namespace.ent/*", "wavemq:publish@namespace.ent/site2/x"):
        assert run(tmp_path, env, "verify", "pub.pem", wider).returncode == 1
    assert run(tmp_path, env, "verify", "pub.pem", "wavemq:publish@namespace.ent/site1/a/b").returncode == 0

    # the XBOS WAVE 3 hash from the seed config is accepted as syntax, reported as unknown
    xbos = run(tmp_path, env, "inspect", "GyAlyQyfJuai4MCyg6Rx9KkxnZZXWyDaIo0EXGY9-WEq6w==")
    assert xbos.returncode == 1
    assert (
        xbos.stderr.count("\n") == 1
        and "WAVE 3 hash" in xbos.stderr
        and "not known" in xbos.stderr.replace("no such entity is known", "not known")
    )

    # revoking the router entity makes its proof fail
    revoke = run(tmp_path, env, "revoke", "--entity", "router.ent")
    assert revoke.returncode == 0 and revoke.stdout == "entity revoked\n"
    after = run(tmp_path, env, "verify", "routerproof.pem", "wavemq:route@namespace.ent/*")
    assert after.returncode == 1 and "revoked" in after.stderr


def test_db_flag_import_and_attestation_inspect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db1, db2 = str(tmp_path / "db1"), str(tmp_path / "db2")
    monkeypatch.chdir(tmp_path)
    assert main(["mke", "--db", db1, "-o", "ns.ent", "--nopassphrase", "-e", "1d"]) == 0
    assert main(["mke", "--db", db1, "-o", "s.ent", "--nopassphrase", "-e", "1d"]) == 0
    assert main(["rtgrant", "--db", db1, "--attester", "ns.ent", "--subject", "s.ent", "-o", "g.pem",
                 "--ttl", "2", "wavemq:publish@ns.ent/a/*"]) == 0  # fmt: skip
    # a fresh database knows nothing until the files are imported
    assert main(["rtprove", "--db", db2, "--subject", "s.ent", "-o", "p.pem", "wavemq:publish@ns.ent/a/b"]) == 1
    assert main(["import", "--db", db2, "g.pem", "ns.ent"]) == 0
    assert main(["rtprove", "--db", db2, "--subject", "s.ent", "-o", "p.pem", "wavemq:publish@ns.ent/a/b"]) == 0
    assert main(["inspect", "--db", db2, "g.pem", "p.pem"]) == 0
    assert main(["revoke", "--db", db2, "--attester", "ns.ent", "--attestation", "g.pem", "-o", "r.pem"]) == 0
    assert main(["inspect", "--db", db2, "p.pem"]) == 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["mke", "--expiry", "1y2x"], "unknown unit 'x' at position 3"),
        (["frobnicate"], "invalid choice"),
        (["rtgrant", "--attester", "missing.ent", "--subject", "x.ent", "wavemq:publish@x.ent/*"], "cannot read"),
        (["inspect", "nosuchfile"], "cannot read nosuchfile"),
        (["rtprove", "--subject", "A" * 48, "wavemq:route@ns.ent/*"], "multihash"),
        (["verify"], "required"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, argv: list[str], words: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status = main(argv)
    err = capsys.readouterr().err
    assert status != 0
    assert err.count("\n") == 1 and err.startswith("wv: ") and words in err, err
    assert "Traceback" not in err


def test_passphrase_protected_secret_through_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nacl.pwhash.argon2id as argon2id

    from wavemq_edge.wave import entity as entity_module

    # Fast KDF in this test only; production defaults are the 64 MiB interactive limits.
    monkeypatch.setattr(entity_module, "DEFAULT_OPSLIMIT", argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(entity_module, "DEFAULT_MEMLIMIT_BYTES", argon2id.MEMLIMIT_MIN)
    monkeypatch.setattr(entity_module.EntitySecret.to_bytes, "__kwdefaults__",
                        {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN})  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["mke", "-o", "ns.ent", "--passphrase", "s3cret", "-e", "1d"]) == 0
    assert main(["mke", "-o", "s.ent", "--nopassphrase", "-e", "1d"]) == 0
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    assert main(["rtgrant", "--attester", "ns.ent", "--subject", "s.ent", "wavemq:publish@ns.ent/*"]) == 1
    assert main(["rtgrant", "--attester", "ns.ent", "--passphrase", "wrong", "--subject", "s.ent",
                 "wavemq:publish@ns.ent/*"]) == 1  # fmt: skip
    assert main(["rtgrant", "--attester", "ns.ent", "--passphrase", "s3cret", "--subject", "s.ent",
                 "wavemq:publish@ns.ent/*"]) == 0  # fmt: skip
