"""``wv``'s per-invocation context: the WAVE database, passphrases, and entity arguments.

The database is ``--db``, else ``$WAVE_HOME``, else ``~/.local/share/wavemq-edge/wave``
(:func:`wavemq_edge.wave.default_database_path`), opened on first use. Entity arguments (``--subject``,
the namespace of a statement) are an existing file, else a 48-character printable hash (WAVE's rule: no
``.``); a WAVE 3 ``Gy...==`` hash parses but is reported as unknown. Passphrases: ``--passphrase``
gives one, ``--nopassphrase`` (mke) means none; otherwise a terminal is prompted, and a non-terminal
stdin gives one line (an empty line or end of input means no passphrase, as in WAVE).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..wave import (
    Entity,
    EntitySecret,
    InputError,
    PassphraseError,
    Statement,
    UnknownObjectError,
    WaveStore,
    default_database_path,
    format_id,
    is_wave3_id,
    load_object,
    looks_like_id,
    parse_id,
    parse_statement_text,
)
from ..wave.files import SecretFile
from ..wave.policy import BUILTIN_PSETS

__all__ = ["Session", "unknown_entity"]


class Session:
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
            raise UnknownObjectError(unknown_entity(entity_id, role))
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
            raise UnknownObjectError(unknown_entity(namespace, "namespace"))
        return namespace, out


def unknown_entity(entity_id: bytes, role: str) -> str:
    """Why ``entity_id`` cannot be used: a WAVE 3 hash, or an entity the database does not know."""
    text = format_id(entity_id)
    if is_wave3_id(entity_id):
        return f"{role} {text} is a WAVE 3 hash; no such entity is known to WAVE-lite (re-create it with wv mke)"
    return f"{role} {text} is not known in the WAVE database (wv import its file first)"
