"""Persisted messages (``PersistDataStore``): the last message per exact URI per namespace.

Model (wavemq-behaviour.md §3.2-3.3, fixed per §12 #8/#9): ``put`` overwrites the value at
``(namespace, uri)``; ``query(namespace, pattern)`` returns every stored message whose URI the pattern
matches with whole-segment semantics from ``uri.py`` (``+`` one segment, ``*`` zero or more, at most
one ``*``), in URI order (segment by segment), at most ``limit`` per call plus a continuation. A
pattern with several ``*`` raises ``UriError`` (the original crashed the process).

Keys are ``len(ns) | ns | seg0 \\0 seg1 \\0 ...``: ``\\0`` sorts below every segment character, so byte
order is segment-tuple order and a literal prefix of the pattern is a contiguous key range. A query
seeks to that range and filters with ``matches``; it inspects at most ``max_scan`` keys per call and
returns a continuation when it stops early, so a leading wildcard over a big namespace cannot stall
the event loop.

Writes follow the queue store's rules: ``put`` lands in RAM and in the tmpfs journal; one synced LMDB
transaction per flush (prepare / write in a worker thread / complete). The store also keeps this
router's id (a UUID v4 created on first open, F18).
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from ..config.units import MIB
from ..uri import matches, parse_pattern, parse_uri
from .errors import CorruptStoreError, StorageError
from .flush_scheduler import FlushScheduler
from .journal import Journal, JournalReport
from .lmdb_env import DAMAGE_ERRORS, DamagedStoreError, DurableEnv, StorageFullError
from .options import DEFAULT_MAP_SIZE, DEFAULT_MAX_MAP_SIZE, FLUSH_BYTES, FLUSH_INTERVAL_S, JOURNAL_DIR_UNSET

__all__ = ["PersistOptions", "PersistStore", "QueryResult"]

log = logging.getLogger("wavemq_edge.storage")

PERSIST_MAGIC: Final = b"wavemq-edge-persist/1"
#: Longest namespace we store (a b64url entity hash is ~46 characters); the key length prefix is 1 byte.
MAX_NAMESPACE_BYTES: Final = 255
#: Default and hard cap of results per ``query`` call.
QUERY_LIMIT: Final = 100
MAX_QUERY_LIMIT: Final = 10_000
_REC_PUT: Final = 1
_PUT: Final = struct.Struct("<BI")
_U64: Final = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class PersistOptions:
    path: str
    journal_dir: str | None = None
    flush_interval_s: float = FLUSH_INTERVAL_S
    flush_bytes: int = FLUSH_BYTES
    journal_max_bytes: int = 16 * MIB
    map_size: int = DEFAULT_MAP_SIZE
    max_map_size: int = DEFAULT_MAX_MAP_SIZE
    #: Keys a single ``query`` call may inspect before it returns a continuation.
    max_scan: int = 10_000


@dataclass(frozen=True, slots=True)
class QueryResult:
    """``items``: (uri, message) in URI order. ``continuation``: pass as ``after_uri`` to get more;
    ``None`` when the query is complete."""

    items: list[tuple[str, bytes]]
    continuation: str | None


class PersistOutcome(Enum):
    OK = "ok"
    FAILED = "failed"


@dataclass(slots=True)
class PersistBatch:
    covers_gen: int
    puts: dict[bytes, bytes]


def _ns_key(namespace: str) -> bytes:
    nsb = namespace.encode("utf-8")
    if not nsb or len(nsb) > MAX_NAMESPACE_BYTES:
        raise ValueError(f"namespace of {len(nsb)} bytes; must be 1..MAX_NAMESPACE_BYTES={MAX_NAMESPACE_BYTES}")
    return bytes([len(nsb)]) + nsb


def _uri_key(segments: tuple[str, ...]) -> bytes:
    return "\0".join(segments).encode("utf-8")


def _key_uri(key: bytes, ns_len: int) -> str:
    return key[ns_len:].decode("utf-8").replace("\0", "/")


class PersistStore:
    """See the module docstring. ``write_flush`` may run in a worker thread; all else on one thread."""

    def __init__(self, denv: DurableEnv, options: PersistOptions, now: float) -> None:
        if options.journal_dir is None:  # before anything is written to a new store
            raise ValueError(f"PersistOptions.{JOURNAL_DIR_UNSET}")
        self.options = options
        self._denv = denv
        self._db = denv.env.open_db(b"msg", create=True)
        self._pending: dict[bytes, bytes] = {}
        self._pending_bytes = 0
        self._in_flight: PersistBatch | None = None
        self._scheduler = FlushScheduler(options.flush_interval_s, options.flush_bytes, options.journal_max_bytes, now)
        self.flushes = 0
        self.failed_flushes = 0
        #: why the last flush failed (None after a successful one): the router refuses new puts meanwhile
        self.flush_failure: str | None = None
        self._write_error = ""
        self.journal_report = JournalReport()
        meta = denv.meta
        with denv.env.begin(write=False) as txn:
            store_id = txn.get(b"store_id", db=meta)
            router_id = txn.get(b"router_id", db=meta)
            gen = txn.get(b"journal_gen", db=meta)
        if store_id is None or router_id is None:
            import uuid  # a new store only

            store_id = store_id or os.urandom(16)
            router_id = router_id or str(uuid.uuid4()).encode("ascii")
            with denv.env.begin(write=True, db=meta) as txn:
                txn.put(b"store_id", store_id)
                txn.put(b"router_id", router_id)
            denv.commits += 1
        if len(store_id) != 16:
            raise CorruptStoreError(f"persist store {options.path!r}: store id has {len(store_id)} bytes, expected 16")
        self.store_id = bytes(store_id)
        self.router_id = bytes(router_id).decode("ascii")
        self._covered_gen = _U64.unpack(gen)[0] if gen is not None else 0
        self._journal: Journal | None = None
        journal_dir = options.journal_dir
        if journal_dir:
            journal = Journal(os.path.join(journal_dir, self.store_id.hex()), "p", self.store_id)
            for body in journal.recover(self._covered_gen, self.journal_report):
                _t, klen = _PUT.unpack_from(body, 0)
                key = body[_PUT.size : _PUT.size + klen]
                self._set_pending(key, body[_PUT.size + klen :])
            denv.report_lost_window(self.journal_report.segments, len(self.journal_report.stale))
            journal.open_next()
            self._journal = journal
        self._dirty = bool(self._pending)

    @classmethod
    def open(cls, options: PersistOptions, now: float) -> PersistStore:
        """Open (or create) the store; every stored message is read once first, so a store LMDB reports
        damaged is refused here (``DamagedStoreError``) and not by each query later."""
        denv = DurableEnv(options.path, PERSIST_MAGIC, options.map_size, options.max_map_size, max_dbs=4)
        try:
            _read_all(denv)
            return cls(denv, options, now)
        except DAMAGE_ERRORS as e:
            denv.close()
            raise DamagedStoreError(f"LMDB store at {options.path!r} is damaged: {e}") from None
        except BaseException:
            denv.close()
            raise

    def _set_pending(self, key: bytes, message: bytes) -> None:
        old = self._pending.get(key)
        if old is not None:
            self._pending_bytes -= len(old)
        self._pending[key] = message
        self._pending_bytes += len(message)

    @property
    def unflushed_bytes(self) -> int:
        """Message bytes put but not yet in the LMDB file."""
        return self._pending_bytes

    # ----------------------------------------------------------------- API

    def put(self, namespace: str, uri: str, message: bytes) -> None:
        """Store ``message`` as the value of ``uri`` in ``namespace`` (replacing the previous one)."""
        key = _ns_key(namespace) + _uri_key(parse_uri(uri))
        if self._journal is not None and not self._journal.broken:
            self._journal.write(_PUT.pack(_REC_PUT, len(key)) + key + message)
        self._set_pending(key, message)
        self._dirty = True

    def get(self, namespace: str, uri: str) -> bytes | None:
        key = _ns_key(namespace) + _uri_key(parse_uri(uri))
        value = self._pending.get(key)
        if value is not None:
            return value
        return self._denv.read(lambda txn: _opt_bytes(txn.get(key, db=self._db)))

    def query(
        self, namespace: str, pattern: str, after_uri: str | None = None, limit: int = QUERY_LIMIT
    ) -> QueryResult:
        """Stored messages matching ``pattern`` with URI > ``after_uri``, in URI order, at most
        ``limit`` (<= ``MAX_QUERY_LIMIT``); see the module docstring for the continuation."""
        if not 1 <= limit <= MAX_QUERY_LIMIT:
            raise ValueError(f"query limit={limit} must be within 1..MAX_QUERY_LIMIT={MAX_QUERY_LIMIT}")
        pat = parse_pattern(pattern)
        nsk = _ns_key(namespace)
        literal: list[str] = []
        for seg in pat:
            if seg in ("+", "*"):
                break
            literal.append(seg)
        prefix = nsk + _uri_key(tuple(literal)) if literal else nsk
        after_key = nsk + _uri_key(parse_uri(after_uri)) if after_uri is not None else b""
        max_scan = self.options.max_scan
        ns_len = len(nsk)

        def scan(txn: Any) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
            found: list[tuple[bytes, bytes]] = []
            cur = txn.cursor(db=self._db)
            start = max(prefix, after_key)
            if not cur.set_range(start):
                return found, None
            scanned = 0
            for key, value in cur:
                if not key.startswith(prefix):
                    return found, None
                if key == after_key:
                    continue
                scanned += 1
                if matches(pat, tuple(key[ns_len:].decode("utf-8").split("\0"))):
                    found.append((key, value))
                    if len(found) > limit:
                        return found, key
                if scanned >= max_scan:
                    return found, key
            return found, None

        db_found, stopped_at = self._denv.read(scan)
        merged: dict[bytes, bytes] = dict(db_found)
        for key, value in self._pending.items():
            in_range = key.startswith(prefix) and key > after_key and (stopped_at is None or key <= stopped_at)
            if in_range and matches(pat, tuple(key[ns_len:].decode("utf-8").split("\0"))):
                merged[key] = value
        ordered = sorted(merged.items())
        continuation: str | None = None
        if len(ordered) > limit:
            ordered = ordered[:limit]
            continuation = _key_uri(ordered[-1][0], ns_len)
        elif stopped_at is not None:
            continuation = _key_uri(stopped_at, ns_len)
        return QueryResult([(_key_uri(k, ns_len), v) for k, v in ordered], continuation)

    # ----------------------------------------------------------------- flush

    def next_flush_deadline(self) -> float | None:
        j = self._journal
        return self._scheduler.next_deadline(
            self._dirty, self._pending_bytes, j.segment_bytes if j is not None else 0, j is not None and j.broken
        )

    def flush_due(self, now: float) -> bool:
        d = self.next_flush_deadline()
        return d is not None and d <= now

    def prepare_flush(self, now: float) -> PersistBatch | None:
        if self._in_flight is not None:
            return None
        covers = self._journal.open_next() if self._journal is not None else self._covered_gen
        batch = PersistBatch(covers, dict(self._pending))
        self._in_flight = batch
        self._dirty = False
        self._scheduler.started()
        return batch

    def write_flush(self, batch: PersistBatch) -> PersistOutcome:
        if not batch.puts and batch.covers_gen == self._covered_gen:
            return PersistOutcome.OK

        def apply(txn: Any) -> None:
            for key, value in sorted(batch.puts.items()):
                txn.put(key, value, db=self._db)
            txn.put(b"journal_gen", _U64.pack(batch.covers_gen), db=self._denv.meta)

        if not batch.puts:
            return PersistOutcome.OK  # nothing durable changed: journal rotation only, no flash write
        try:
            self._denv.write(apply)
        except (StorageFullError, StorageError) as e:
            self._write_error = str(e)
            log.error("event=persist_flush_failed detail=%r", str(e))
            return PersistOutcome.FAILED
        return PersistOutcome.OK

    def complete_flush(self, batch: PersistBatch, outcome: PersistOutcome, now: float) -> None:
        if batch is not self._in_flight:
            raise StorageError("complete_flush called with a batch that is not the one in flight")
        self._in_flight = None
        if outcome is PersistOutcome.OK:
            for key, value in batch.puts.items():
                if self._pending.get(key) is value:
                    del self._pending[key]
                    self._pending_bytes -= len(value)
            self._covered_gen = batch.covers_gen
            if self._journal is not None:
                self._journal.drop_upto(batch.covers_gen)
            self.flushes += 1
            self.flush_failure = None
        else:
            self.failed_flushes += 1
            self.flush_failure = self._write_error or "failed"
            self._dirty = True
        self._scheduler.completed(now, outcome is PersistOutcome.OK)

    def flush(self, now: float) -> PersistOutcome:
        batch = self.prepare_flush(now)
        if batch is None:
            raise StorageError("flush called while another flush is in flight")
        outcome = self.write_flush(batch)
        self.complete_flush(batch, outcome, now)
        return outcome

    def close(self, now: float) -> PersistOutcome:
        outcome = self.flush(now)
        if self._journal is not None:
            self._journal.close(remove_all=outcome is PersistOutcome.OK)
        self._denv.close()
        return outcome

    def abandon(self) -> None:
        if self._journal is not None:
            self._journal.close(remove_all=False)
        self._denv.close()


def _read_all(denv: DurableEnv) -> int:
    """Read every key and value of the messages database (its overflow pages too); returns the count."""
    db = denv.env.open_db(b"msg", create=True)
    n = 0
    with denv.env.begin(db=db, buffers=True) as txn:
        for _key, value in txn.cursor():
            n += len(value) >= 0
    return n


def _opt_bytes(value: bytes | None) -> bytes | None:
    return bytes(value) if value is not None else None
