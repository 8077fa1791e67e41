"""``wv``: the WAVE-lite command line (reference §5 and §7.9), with no agent.

Commands work on files plus the local WAVE database: ``--db``, else ``$WAVE_HOME``, else
``~/.local/share/wavemq-edge/wave`` (:func:`wavemq_edge.wave.default_database_path`). ``mke`` records the new public
entity there, ``rtgrant`` records the grant (``-o`` also writes it to a file), ``rtprove`` searches it,
``import`` adds files to it, ``revoke`` adds revocations to it, and ``inspect``/``verify`` consult it for
entities and revocations.

Entity arguments (``--subject``, the namespace of a statement) are an existing file, else a 48-character
printable hash (WAVE's rule: no ``.``); a WAVE 3 ``Gy...==`` hash parses but is reported as unknown.

Passphrases: ``--passphrase`` gives one, ``--nopassphrase`` (mke) writes a plaintext keyring; otherwise
``wv`` prompts on a terminal, or reads one line from a non-terminal stdin (an empty line or end of input
means no passphrase, as in WAVE). Errors are one line on stderr and a non-zero exit status
(:class:`.exit_codes.ExitCode`): 2 for usage, 1 for everything else, 130 when interrupted.

Environment: ``WAVE_HOME`` (the database), ``WAVE_DEFAULT_EXPIRY`` (``--expiry``'s default) and
``WAVE_DEFAULT_ENTITY`` (``rtgrant --attester``'s and ``rtprove --subject``'s default).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Sequence
from typing import Final, NoReturn

from ..uri import UriError
from ..wave import (
    Attestation,
    Entity,
    InputError,
    ObjectType,
    Proof,
    ProofResult,
    Revocation,
    UnknownObjectError,
    VerificationError,
    WaveError,
    build_proof,
    create_attestation,
    create_entity,
    format_id,
    is_wave3_id,
    load_object,
    looks_like_id,
    parse_duration,
    parse_id,
    revoke_attestation,
    save_entity_secret,
    verify_proof,
)
from ..wave.files import SecretFile, write_armored
from .exit_codes import ExitCode
from .wv_render import attestation_block, entity_block, print_lines, proof_block
from .wv_session import Session, unknown_entity

__all__ = ["main"]

DEFAULT_EXPIRY: Final = "30d"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _now() -> float:
    return time.time()


# -- commands ----------------------------------------------------------------------------------------


def _cmd_mke(session: Session) -> ExitCode:
    args = session.args
    expiry_s = parse_duration(args.expiry)
    passphrase = session.new_passphrase()
    secret = create_entity(_now(), expiry_s, revocation_location=args.revocationlocation)
    out = args.outfile or f"ent_{secret.entity.printable_id}.pem"
    save_entity_secret(out, secret, passphrase)
    print(f"wrote entity: {out}")
    if not args.nopublish:
        session.store.put_entity(secret.entity)
    return ExitCode.OK


def _cmd_rtgrant(session: Session) -> ExitCode:
    args = session.args
    if not args.attester:
        raise InputError("--attester is required (or set WAVE_DEFAULT_ENTITY)")
    if not args.subject:
        raise InputError("--subject is required")
    expiry_s = parse_duration(args.expiry)
    attester = session.secret(args.attester, "attester")
    session.store.put_entity(attester.entity)
    subject = session.entity(args.subject, "subject")
    namespace, statements = session.statements(args.statements)
    att = create_attestation(
        attester, subject, namespace, statements, now=_now(), expiry_s=expiry_s, ttl=args.indirections
    )
    if args.outfile:
        write_armored(args.outfile, ObjectType.ATTESTATION, att.raw)
        print(f"wrote attestation: {args.outfile}")
    if not args.nopublish:
        session.store.put_attestation(att)
        print(f"published attestation: {format_id(att.id)}")
    return ExitCode.OK


def _cmd_rtprove(session: Session) -> ExitCode:
    args = session.args
    if not args.subject:
        raise InputError("--subject is required (or set WAVE_DEFAULT_ENTITY)")
    subject = session.entity(args.subject, "subject")
    namespace, statements = session.statements(args.statements)
    now = _now()
    proof = build_proof(session.store, subject.id, namespace, statements, now=now)
    # Refuse to write a proof that would not verify (e.g. an entity revoked after the search began).
    verify_proof(proof.raw, now=now, revoked=session.store.revoked_commitments()).require_all(
        subject.id, namespace, tuple(statements)
    )
    stamp = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = args.outfile or f"proof_{stamp}.pem"
    write_armored(out, ObjectType.PROOF, proof.raw)
    print(f"wrote proof: {out}")
    return ExitCode.OK


def _verify_file(session: Session, path: str) -> tuple[Proof, ProofResult]:
    obj = load_object(path)
    if not isinstance(obj, Proof):
        raise InputError(f"{path} is not a proof file")
    store = session.store
    result = verify_proof(obj, now=_now(), revoked=store.revoked_commitments(), lookup=store.get_entity)
    return obj, result


def _cmd_verify(session: Session) -> ExitCode:
    args = session.args
    proof, result = _verify_file(session, args.file)
    print_lines(proof_block(proof, result))
    if args.statements:
        namespace, statements = session.statements(args.statements)
        subject = session.entity_id(args.subject, "subject") if args.subject else result.subject
        result.require_all(subject, namespace, tuple(statements))
        print("Required policy: granted")
    return ExitCode.OK


def _cmd_inspect(session: Session) -> ExitCode:
    now = _now()
    status = ExitCode.OK
    for name in session.args.files:
        if not os.path.exists(name) and looks_like_id(name):
            object_id = parse_id(name)
            entity = None if is_wave3_id(object_id) else session.store.get_entity(object_id)
            att = None if is_wave3_id(object_id) else session.store.get_attestation(object_id)
            if entity is not None:
                print_lines(entity_block(entity, session.store.is_revoked(entity.revocation_commitment), now))
            elif att is not None:
                print_lines(attestation_block(session.store, att, name, now))
            else:
                raise UnknownObjectError(unknown_entity(object_id, "object"))
            continue
        obj = load_object(name)
        if isinstance(obj, SecretFile):
            obj = obj.entity
        if isinstance(obj, Entity):
            print_lines(entity_block(obj, session.store.is_revoked(obj.revocation_commitment), now))
        elif isinstance(obj, Attestation):
            print_lines(attestation_block(session.store, obj, name, now))
        elif isinstance(obj, Proof):
            try:
                _, result = _verify_file(session, name)
                print_lines([*proof_block(obj, result), "Valid: true"])
            except VerificationError as exc:
                print_lines([*proof_block(obj, None), "Valid: false", f"Message: {exc.reason.value}: {exc}"])
                status = ExitCode.FAILURE
        else:
            print_lines(["= Revocation", f"  Hash: {format_id(obj.id)}", f"  Commitment: {obj.commitment.hex()}"])
    return status


def _cmd_revoke(session: Session) -> ExitCode:
    args = session.args
    if bool(args.entity) == bool(args.attestation):
        raise InputError("give either --entity SECRETFILE or --attester SECRETFILE --attestation HASH|FILE")
    if args.entity:
        secret = session.secret(args.entity, "entity")
        revocation = secret.revocation()
        done = "entity revoked"
    else:
        if not args.attester:
            raise InputError("--attestation needs --attester (only the attester can revoke a grant)")
        attester = session.secret(args.attester, "attester")
        if os.path.exists(args.attestation):
            obj = load_object(args.attestation)
            if not isinstance(obj, Attestation):
                raise InputError(f"{args.attestation} is not an attestation file")
            att = obj
        else:
            att_id = parse_id(args.attestation)
            found = session.store.get_attestation(att_id)
            if found is None:
                raise UnknownObjectError(f"attestation {args.attestation} is not in the WAVE database")
            att = found
        revocation = revoke_attestation(attester, att)
        done = "attestation revoked"
    session.store.put_revocation(revocation)
    if args.outfile:
        write_armored(args.outfile, ObjectType.REVOCATION, revocation.raw)
        print(f"wrote revocation: {args.outfile}")
    print(done)
    return ExitCode.OK


def _cmd_import(session: Session) -> ExitCode:
    loaded = [(name, load_object(name)) for name in session.args.files]
    # Entities before attestations: an attestation is only stored once its attester's key is known.
    order = {Entity: 0, SecretFile: 0, Attestation: 1, Revocation: 2, Proof: 3}
    loaded.sort(key=lambda item: order[type(item[1])])
    store = session.store
    for name, obj in loaded:
        if isinstance(obj, SecretFile):
            obj = obj.entity
        if isinstance(obj, Entity):
            new = store.put_entity(obj)
            print(f"{'imported' if new else 'already known'}: entity {obj.printable_id} ({name})")
        elif isinstance(obj, Attestation):
            new = store.put_attestation(obj)
            print(f"{'imported' if new else 'already known'}: attestation {format_id(obj.id)} ({name})")
        elif isinstance(obj, Revocation):
            new = store.put_revocation(obj)
            print(f"{'imported' if new else 'already known'}: revocation {format_id(obj.id)} ({name})")
        else:
            for raw in obj.entities:
                store.put_entity(Entity.from_bytes(raw))
            for raw in obj.attestations:
                store.put_attestation(Attestation.parse(raw))
            print(f"imported: proof contents {format_id(obj.id)} ({name})")
    return ExitCode.OK


def _build_parser() -> _Parser:
    parser = _Parser(prog="wv", description="WAVE-lite entities, grants and proofs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    default_expiry = os.environ.get("WAVE_DEFAULT_EXPIRY", DEFAULT_EXPIRY)
    default_entity = os.environ.get("WAVE_DEFAULT_ENTITY")

    def command(name: str, help_text: str, aliases: Sequence[str] = ()) -> _Parser:
        p: _Parser = sub.add_parser(name, help=help_text, aliases=list(aliases))
        p.add_argument("--db", help="WAVE database directory (default $WAVE_HOME or ~/.local/share/wavemq-edge/wave)")
        return p

    p = command("mke", "create an entity", aliases=["mkentity"])
    p.add_argument("-o", "--outfile")
    p.add_argument("-e", "--expiry", default=default_expiry, help="duration such as 1y2d3h (default 30d)")
    p.add_argument("--revocationlocation", default="default")
    p.add_argument("--nopassphrase", action="store_true")
    p.add_argument("--passphrase")
    p.add_argument("--nopublish", action="store_true", help="do not record the entity in the database")
    p.set_defaults(func=_cmd_mke)

    p = command("rtgrant", "grant permissions (create an attestation)")
    p.add_argument("statements", nargs="+", metavar="STATEMENT")
    p.add_argument("--attester", default=default_entity)
    p.add_argument("--subject")
    p.add_argument("-e", "--expiry", default=default_expiry)
    p.add_argument("--indirections", "--indir", "--ttl", dest="indirections", type=int, default=0)
    p.add_argument("--partition", help="accepted for WAVE compatibility; WAVE-lite bodies are not partitioned")
    p.add_argument("--passphrase")
    p.add_argument("--nopublish", action="store_true")
    p.add_argument("--skipsync", action="store_true")
    p.add_argument("-o", "--outfile")
    p.set_defaults(func=_cmd_rtgrant)

    p = command("rtprove", "build a proof from the database")
    p.add_argument("statements", nargs="+", metavar="STATEMENT")
    p.add_argument("--subject", default=default_entity)
    p.add_argument("--passphrase")
    p.add_argument("--skipsync", action="store_true")
    p.add_argument("-o", "--outfile")
    p.set_defaults(func=_cmd_rtprove)

    p = command("verify", "verify a proof, optionally against required statements")
    p.add_argument("file")
    p.add_argument("statements", nargs="*", metavar="STATEMENT")
    p.add_argument("--subject", help="the entity presenting the proof (default: the proof's subject)")
    p.set_defaults(func=_cmd_verify)

    p = command("inspect", "show entities, attestations, proofs")
    p.add_argument("files", nargs="+", metavar="FILE_OR_HASH")
    p.set_defaults(func=_cmd_inspect)

    p = command("revoke", "revoke an entity or an attestation")
    p.add_argument("--entity")
    p.add_argument("--attester", default=None)
    p.add_argument("--attestation")
    p.add_argument("--passphrase")
    p.add_argument("-o", "--outfile")
    p.set_defaults(func=_cmd_revoke)

    p = command("import", "add entity, attestation, revocation or proof files to the database")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``wv`` entry point; returns the exit status (:class:`.exit_codes.ExitCode`)."""
    parser = _build_parser()
    session: Session | None = None
    try:
        args = parser.parse_args(argv)
        session = Session(args)
        status: ExitCode = args.func(session)
        return int(status)
    except _UsageError as exc:
        print(f"wv: usage: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except VerificationError as exc:
        print(f"wv: refused ({exc.reason.value}): {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except (WaveError, UriError) as exc:
        print(f"wv: error: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    except OSError as exc:
        print(f"wv: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return ExitCode.FAILURE
    except KeyboardInterrupt:
        print("wv: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    finally:
        if session is not None:
            session.close()
