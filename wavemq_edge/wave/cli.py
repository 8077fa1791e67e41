"""``wv``: the WAVE-lite command line (reference §5 and §7.9), with no agent.

Commands work on files plus the local WAVE database: ``--db``, else ``$WAVE_HOME``, else
``~/.local/share/wavemq-edge/wave`` (:func:`.store.default_database_path`). ``mke`` records the new public
entity there, ``rtgrant`` records the grant (``-o`` also writes it to a file), ``rtprove`` searches it,
``import`` adds files to it, ``revoke`` adds revocations to it, and ``inspect``/``verify`` consult it for
entities and revocations.

Entity arguments (``--subject``, the namespace of a statement) are an existing file, else a 48-character
printable hash (WAVE's rule: no ``.``); a WAVE 3 ``Gy...==`` hash parses but is reported as unknown.

Passphrases: ``--passphrase`` gives one, ``--nopassphrase`` (mke) writes a plaintext keyring; otherwise
``wv`` prompts on a terminal, or reads one line from a non-terminal stdin (an empty line or end of input
means no passphrase, as in WAVE). Errors are one line on stderr and a non-zero exit status: 2 for usage,
1 for everything else.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

from ..uri import UriError, format_pattern
from .attestation import Attestation, create_attestation, revoke_attestation
from .entity import Entity, EntitySecret, create_entity
from .envelope import ObjectType
from .errors import InputError, PassphraseError, UnknownObjectError, VerificationError, WaveError
from .expiry import parse_duration
from .files import SecretFile, load_object, save_entity_secret, write_armored
from .ids import format_id, is_wave3_id, looks_like_id, parse_id
from .policy import BUILTIN_PSETS, Statement, parse_statement_text
from .proof import Proof, build_proof
from .revocation import Revocation
from .store import WaveStore, default_database_path
from .verify import DEFAULT_SKEW_S, ProofResult, verify_proof

__all__ = ["main"]

DEFAULT_EXPIRY: Final = "30d"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _now() -> float:
    return time.time()


def _fmt_time(t: float) -> str:
    """Go ``time.String()`` style in the local zone: ``2018-09-20 15:24:54 -0700 PDT``."""
    return datetime.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def _bool(v: bool) -> str:
    return "true" if v else "false"


class _Session:
    """Per-invocation context: the args and a lazily opened database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._store: WaveStore | None = None

    @property
    def db_path(self) -> Path:
        db = getattr(self.args, "db", None)
        return Path(db) if db else default_database_path()

    @property
    def store(self) -> WaveStore:
        if self._store is None:
            self._store = WaveStore(self.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- passphrases --------------------------------------------------------------------------------

    def _read_passphrase(self, prompt: str) -> str | None:
        given: str | None = getattr(self.args, "passphrase", None)
        if given is not None:
            return given
        if sys.stdin is None:
            return None
        if sys.stdin.isatty():
            return getpass.getpass(prompt) or None
        line = sys.stdin.readline()
        return line.rstrip("\r\n") or None

    def new_passphrase(self) -> str | None:
        if getattr(self.args, "nopassphrase", False):
            return None
        given: str | None = getattr(self.args, "passphrase", None)
        if given is not None or sys.stdin is None or not sys.stdin.isatty():
            return self._read_passphrase("")
        first = getpass.getpass("passphrase for the new entity secret (empty for none): ")
        if first and getpass.getpass("again: ") != first:
            raise PassphraseError("the two passphrases differ")
        return first or None

    def secret(self, path: str, role: str) -> EntitySecret:
        obj = load_object(path)
        if not isinstance(obj, SecretFile):
            raise InputError(f"{role} {path!r} is not an entity secret file (made by wv mke)")
        passphrase = self._read_passphrase(f"passphrase for {path}: ") if obj.encrypted else None
        return obj.unlock(passphrase)

    # -- entity arguments ---------------------------------------------------------------------------

    def entity_id(self, text: str, role: str) -> bytes:
        """An entity named by file or by hash; a file's entity is recorded in the database."""
        if os.path.exists(text):
            obj = load_object(text)
            if isinstance(obj, SecretFile):
                entity = obj.entity
            elif isinstance(obj, Entity):
                entity = obj
            else:
                raise InputError(f"{role} {text!r} is a {type(obj).__name__.lower()} file, not an entity")
            self.store.put_entity(entity)
            return entity.id
        if looks_like_id(text):
            return parse_id(text)
        raise InputError(f"{role} {text!r} is neither a file nor a 48-character hash")

    def entity(self, text: str, role: str) -> Entity:
        entity_id = self.entity_id(text, role)
        entity = self.store.get_entity(entity_id)
        if entity is None:
            raise UnknownObjectError(_unknown(entity_id, role))
        return entity

    def pset_id(self, text: str) -> bytes:
        if text in BUILTIN_PSETS:
            return BUILTIN_PSETS[text]
        if looks_like_id(text):
            return parse_id(text)
        raise InputError(f"permission set {text!r} is neither a builtin ({', '.join(BUILTIN_PSETS)}) nor a hash")

    def statements(self, texts: Sequence[str]) -> tuple[bytes, list[Statement]]:
        if not texts:
            raise InputError("at least one statement is required (pset:perm[,perm]@namespace/resource)")
        namespace: bytes | None = None
        out: list[Statement] = []
        for text in texts:
            st = parse_statement_text(text)
            ns = self.entity_id(st.namespace, "namespace")
            if namespace is not None and ns != namespace:
                raise InputError("all statements must share one namespace")
            namespace = ns
            out.append(st.resolve(self.pset_id(st.pset)))
        assert namespace is not None
        if is_wave3_id(namespace) or self.store.get_entity(namespace) is None:
            raise UnknownObjectError(_unknown(namespace, "namespace"))
        return namespace, out


def _unknown(entity_id: bytes, role: str) -> str:
    text = format_id(entity_id)
    if is_wave3_id(entity_id):
        return f"{role} {text} is a WAVE 3 hash; no such entity is known to WAVE-lite (re-create it with wv mke)"
    return f"{role} {text} is not known in the WAVE database (wv import its file first)"


# -- output blocks -----------------------------------------------------------------------------------


def _entity_block(entity: Entity, revoked: bool, now: float) -> list[str]:
    expired = now >= entity.not_after
    early = now < entity.not_before - DEFAULT_SKEW_S
    message = "entity has expired" if expired else "entity is revoked" if revoked else ""
    if early:
        message = "entity is not yet valid"
    return [
        "= Entity",
        f"      Hash: {entity.printable_id}",
        f"   Created: {_fmt_time(entity.not_before)}",
        f"   Expires: {_fmt_time(entity.not_after)}",
        "  Validity:",
        f"   - Valid: {_bool(not (expired or revoked or early))}",
        f"   - Expired: {_bool(expired)}",
        "   - Malformed: false",
        f"   - Revoked: {_bool(revoked)}",
        f"   - Message: {message}",
    ]


def _statement_lines(statements: Sequence[Statement]) -> list[str]:
    names = {v: k for k, v in BUILTIN_PSETS.items()}
    lines = [" Statements:"]
    for i, s in enumerate(statements):
        pset = format_id(s.pset) + (f" ({names[s.pset]})" if s.pset in names else "")
        lines += [
            f" [{i:02d}] Permission set: {pset}",
            f"      Permissions: {', '.join(sorted(s.permissions))}",
            f"      URI: {format_pattern(s.resource)}",
        ]
    return lines


def _attestation_block(session: _Session, att: Attestation, name: str, now: float) -> list[str]:
    store = session.store
    attester = store.get_entity(att.attester_id)
    subject = store.get_entity(att.subject_id)
    revoked = store.is_revoked(att.revocation_commitment)
    message = ""
    malformed = False
    if attester is None:
        message = "attester is not known: signature not checked"
    else:
        try:
            att.verify(attester)
        except VerificationError as exc:
            malformed, message = True, str(exc)
    attester_ok = attester is not None and attester.is_valid_at(now) and not store.is_revoked(
        attester.revocation_commitment
    )
    subject_ok = subject is not None and subject.is_valid_at(now) and not store.is_revoked(
        subject.revocation_commitment
    )
    expired = now >= att.not_after
    valid = attester is not None and not (malformed or revoked or expired) and attester_ok and subject_ok
    return [
        f'= Attestation "{name}"',
        f"  Hash : {format_id(att.id)}",
        f"Created: {_fmt_time(att.not_before)}",
        f"Expires: {_fmt_time(att.not_after)}",
        "  Validity:",
        "   - Readable: true",
        f"   - Revoked: {_bool(revoked)}",
        f"   - Malformed: {_bool(malformed)}",
        f"   - Subject invalid: {_bool(not subject_ok)}",
        f"   - Valid: {_bool(valid)}",
        f"   - Expired: {_bool(expired)}",
        f"   - Attester invalid: {_bool(not attester_ok)}",
        *([f"   - Message: {message}"] if message else []),
        f"  Attester: {format_id(att.attester_id)}",
        f"  Subject: {format_id(att.subject_id)}",
        f"  Namespace: {format_id(att.namespace_id)}",
        f"  Indirections: {att.ttl}",
        *(" " + line for line in _statement_lines(att.statements)),
    ]


def _proof_block(proof: Proof, result: ProofResult | None) -> list[str]:
    lines = ["Referenced attestations:"]
    for i, raw in enumerate(proof.attestations):
        lines.append(f" [{i:02d}] Hash: {format_id(Attestation.parse(raw).id)}")
    lines.append("Paths:")
    for i, path in enumerate(proof.paths):
        lines.append(f" [{i:02d}] " + " ".join(f"{k:02d}" for k in path))
    lines += [f"Subject: {format_id(proof.subject_id)}", "SubjectLoc: default"]
    if result is not None:
        lines += [
            f"Expires: {_fmt_time(result.expiry)}",
            "Policy: RTree",
            f" Namespace: {format_id(result.namespace)}",
            f" Indirections: {result.indirections}",
            *_statement_lines(result.statements),
        ]
    return lines


def _print(lines: Sequence[str]) -> None:
    sys.stdout.write("\n".join(lines) + "\n")


# -- commands ----------------------------------------------------------------------------------------


def _cmd_mke(session: _Session) -> int:
    args = session.args
    expiry_s = parse_duration(args.expiry)
    passphrase = session.new_passphrase()
    secret = create_entity(_now(), expiry_s, revocation_location=args.revocationlocation)
    out = args.outfile or f"ent_{secret.entity.printable_id}.pem"
    save_entity_secret(out, secret, passphrase)
    print(f"wrote entity: {out}")
    if not args.nopublish:
        session.store.put_entity(secret.entity)
    return 0


def _cmd_rtgrant(session: _Session) -> int:
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
    return 0


def _cmd_rtprove(session: _Session) -> int:
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
    return 0


def _verify_file(session: _Session, path: str) -> tuple[Proof, ProofResult]:
    obj = load_object(path)
    if not isinstance(obj, Proof):
        raise InputError(f"{path} is not a proof file")
    store = session.store
    result = verify_proof(obj, now=_now(), revoked=store.revoked_commitments(), lookup=store.get_entity)
    return obj, result


def _cmd_verify(session: _Session) -> int:
    args = session.args
    proof, result = _verify_file(session, args.file)
    _print(_proof_block(proof, result))
    if args.statements:
        namespace, statements = session.statements(args.statements)
        subject = session.entity_id(args.subject, "subject") if args.subject else result.subject
        result.require_all(subject, namespace, tuple(statements))
        print("Required policy: granted")
    return 0


def _cmd_inspect(session: _Session) -> int:
    now = _now()
    status = 0
    for name in session.args.files:
        if not os.path.exists(name) and looks_like_id(name):
            object_id = parse_id(name)
            entity = None if is_wave3_id(object_id) else session.store.get_entity(object_id)
            att = None if is_wave3_id(object_id) else session.store.get_attestation(object_id)
            if entity is not None:
                _print(_entity_block(entity, session.store.is_revoked(entity.revocation_commitment), now))
            elif att is not None:
                _print(_attestation_block(session, att, name, now))
            else:
                raise UnknownObjectError(_unknown(object_id, "object"))
            continue
        obj = load_object(name)
        if isinstance(obj, SecretFile):
            obj = obj.entity
        if isinstance(obj, Entity):
            _print(_entity_block(obj, session.store.is_revoked(obj.revocation_commitment), now))
        elif isinstance(obj, Attestation):
            _print(_attestation_block(session, obj, name, now))
        elif isinstance(obj, Proof):
            try:
                _, result = _verify_file(session, name)
                _print([*_proof_block(obj, result), "Valid: true"])
            except VerificationError as exc:
                _print([*_proof_block(obj, None), "Valid: false", f"Message: {exc.reason.value}: {exc}"])
                status = 1
        else:
            _print(["= Revocation", f"  Hash: {format_id(obj.id)}", f"  Commitment: {obj.commitment.hex()}"])
    return status


def _cmd_revoke(session: _Session) -> int:
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
    return 0


def _cmd_import(session: _Session) -> int:
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
    return 0


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
    parser = _build_parser()
    session: _Session | None = None
    try:
        args = parser.parse_args(argv)
        session = _Session(args)
        status: int = args.func(session)
        return status
    except _UsageError as exc:
        print(f"wv: usage: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except VerificationError as exc:
        print(f"wv: refused ({exc.reason.value}): {exc}", file=sys.stderr)
        return 1
    except (WaveError, UriError) as exc:
        print(f"wv: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wv: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wv: interrupted", file=sys.stderr)
        return 130
    finally:
        if session is not None:
            session.close()
