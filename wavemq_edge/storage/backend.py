"""The durable side of the queue store behind a small interface, with an in-memory twin.

``QueueStore`` decides *what* to write (a ``FlushBatch``); a backend only applies a batch in one
transaction, loads what was committed, and reads payloads back. ``LmdbQueueBackend`` is the real one;
``MemoryBackend`` keeps the same committed state in dicts so property tests can "cut the power"
(forget everything not committed) thousands of times per second.

LMDB layout (measured choice, see README.md): one named database per queue, ``q.<incarnation hex>``,
keyed by an 8-byte big-endian sequence and written with ``append=True``; value = 8-byte little-endian
wall-clock enqueue time + payload. ``hdr`` maps a queue id to its CBOR header; ``meta`` holds the store
id, the highest journal generation the durable state covers, and the next incarnation number;
``dedup`` maps a message id to the time it was first seen. An incarnation number (never reused) names a
queue's database so that removing and re-creating a queue id inside one flush window cannot mix items.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import lmdb

from .errors import CorruptStoreError, StorageError
from .lmdb_env import DurableEnv, StorageFullError
from .ring_queue import FlushPlanEntry

__all__ = ["Backend", "FlushBatch", "LmdbQueueBackend", "LoadedStore", "MemoryBackend"]

QUEUE_MAGIC: Final = b"wavemq-edge-queues/1"
_SEQ: Final = struct.Struct(">Q")
_TIME: Final = struct.Struct("<d")
_U64: Final = struct.Struct("<Q")


def seq_key(seq: int) -> bytes:
    return _SEQ.pack(seq)


def db_name(incarnation: int) -> bytes:
    return b"q.%016x" % incarnation


@dataclass(slots=True)
class FlushBatch:
    """Everything one flush writes, as immutable data: safe to hand to a worker thread."""

    covers_gen: int
    next_incarnation: int
    entries: list[FlushPlanEntry] = field(default_factory=list)
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    drop_incarnations: list[int] = field(default_factory=list)
    dedup_put: list[tuple[bytes, float]] = field(default_factory=list)
    dedup_delete: list[bytes] = field(default_factory=list)
    #: Set when the durable state needs no change (only the journal rotates): no transaction at all.
    empty: bool = False
    item_count: int = 0
    item_bytes: int = 0


@dataclass(slots=True)
class LoadedStore:
    store_id: bytes
    covered_gen: int
    next_incarnation: int
    headers: list[bytes]
    dedup: list[tuple[bytes, float]]
    orphans: list[int]


class Backend(Protocol):
    """What ``QueueStore`` needs from durable storage."""

    def load(self, new_store_id: bytes) -> LoadedStore: ...

    def iter_items(self, incarnation: int) -> Iterator[tuple[int, int, float]]:
        """(seq, payload size, wall enqueue time) of every committed item, in order."""
        ...

    def read_items(self, incarnation: int, start: int, stop: int, limit: int) -> list[tuple[int, bytes]]: ...

    def commit(self, batch: FlushBatch) -> None:
        """Apply ``batch`` atomically and durably; raise ``StorageError`` and change nothing on failure."""
        ...

    def close(self) -> None: ...

    @property
    def commits(self) -> int: ...


class MemoryBackend:
    """In-memory twin of ``LmdbQueueBackend``: the committed state survives ``QueueStore`` objects."""

    def __init__(self) -> None:
        self.meta: dict[bytes, bytes] = {}
        self.headers: dict[str, bytes] = {}
        self.queues: dict[int, dict[int, tuple[float, bytes]]] = {}
        self.dedup: dict[bytes, float] = {}
        self._commits = 0
        self.fail_next_commits = 0

    @property
    def commits(self) -> int:
        return self._commits

    def load(self, new_store_id: bytes) -> LoadedStore:
        if b"store_id" not in self.meta:
            self.meta[b"store_id"] = new_store_id
        return LoadedStore(
            store_id=self.meta[b"store_id"],
            covered_gen=_U64.unpack(self.meta.get(b"journal_gen", _U64.pack(0)))[0],
            next_incarnation=_U64.unpack(self.meta.get(b"next_inc", _U64.pack(1)))[0],
            headers=list(self.headers.values()),
            dedup=sorted(self.dedup.items(), key=lambda kv: kv[1]),
            orphans=list(self.queues),
        )

    def iter_items(self, incarnation: int) -> Iterator[tuple[int, int, float]]:
        for seq, (when, item) in sorted(self.queues.get(incarnation, {}).items()):
            yield seq, len(item), when

    def read_items(self, incarnation: int, start: int, stop: int, limit: int) -> list[tuple[int, bytes]]:
        q = self.queues.get(incarnation, {})
        out: list[tuple[int, bytes]] = []
        for seq in range(start, stop):
            if len(out) >= limit:
                break
            got = q.get(seq)
            if got is not None:
                out.append((seq, got[1]))
        return out

    def commit(self, batch: FlushBatch) -> None:
        if self.fail_next_commits > 0:
            self.fail_next_commits -= 1
            from .lmdb_env import StorageFullError

            raise StorageFullError("memory backend: injected full map")
        for inc in batch.drop_incarnations:
            self.queues.pop(inc, None)
        for queue_id, header in batch.headers:
            if header is None:
                self.headers.pop(queue_id, None)
            else:
                self.headers[queue_id] = header
        for entry in batch.entries:
            q = self.queues.setdefault(entry.incarnation, {})
            for seq in range(entry.delete_from, entry.delete_to):
                q.pop(seq, None)
            for seq, when, item in entry.items:
                q[seq] = (when, item)
        for msg_id in batch.dedup_delete:
            self.dedup.pop(msg_id, None)
        for msg_id, when in batch.dedup_put:
            self.dedup[msg_id] = when
        self.meta[b"journal_gen"] = _U64.pack(batch.covers_gen)
        self.meta[b"next_inc"] = _U64.pack(batch.next_incarnation)
        self._commits += 1

    def close(self) -> None:
        pass


class LmdbQueueBackend:
    """The LMDB adapter. ``commit`` may run in a worker thread while the loop thread calls
    ``read_items``; nothing else is shared."""

    def __init__(self, path: str, map_size: int, max_map_size: int, max_queues: int) -> None:
        self.denv = DurableEnv(path, QUEUE_MAGIC, map_size, max_map_size, max_dbs=max_queues + 4)
        env = self.denv.env
        self._hdr = env.open_db(b"hdr", create=True)
        self._dedup = env.open_db(b"dedup", create=True)
        self._dbs: dict[int, Any] = {}
        self.path = path
        #: deletions committed ahead of a batch that did not fit (``commit``)
        self.releases = 0

    @property
    def commits(self) -> int:
        return self.denv.commits

    def load(self, new_store_id: bytes) -> LoadedStore:
        meta = self.denv.meta
        with self.denv.env.begin() as txn:
            store_id = txn.get(b"store_id", db=meta)
            gen = txn.get(b"journal_gen", db=meta)
            nxt = txn.get(b"next_inc", db=meta)
            headers = [bytes(v) for _k, v in txn.cursor(db=self._hdr)]
            dedup = [(bytes(k), _TIME.unpack(v)[0]) for k, v in txn.cursor(db=self._dedup)]
            names = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
        if store_id is None:
            store_id = new_store_id
            with self.denv.env.begin(write=True, db=meta) as txn:
                txn.put(b"store_id", store_id)
            self.denv.commits += 1
        if len(store_id) != 16:
            raise CorruptStoreError(f"store {self.path!r}: store id has {len(store_id)} bytes, expected 16")
        orphans: list[int] = []
        for name in names:
            if name.startswith(b"q.") and len(name) == 18:
                try:
                    orphans.append(int(name[2:], 16))
                except ValueError:
                    continue
        dedup.sort(key=lambda kv: kv[1])
        return LoadedStore(
            store_id=bytes(store_id),
            covered_gen=_U64.unpack(gen)[0] if gen is not None else 0,
            next_incarnation=_U64.unpack(nxt)[0] if nxt is not None else 1,
            headers=headers,
            dedup=dedup,
            orphans=orphans,  # the store removes the incarnations that headers still reference
        )

    def _db(self, incarnation: int, txn: Any, create: bool) -> Any:
        db = self._dbs.get(incarnation)
        if db is None:
            try:
                db = self.denv.env.open_db(db_name(incarnation), txn=txn, create=create)
            except lmdb.NotFoundError:
                return None
            self._dbs[incarnation] = db
        return db

    def iter_items(self, incarnation: int) -> Iterator[tuple[int, int, float]]:
        # A handle opened inside a read transaction dies with it (py-lmdb), so open it on its own.
        db = self._db(incarnation, None, create=False)
        if db is None:
            return
        with self.denv.env.begin(buffers=True) as txn:
            unpack_seq = _SEQ.unpack
            unpack_time = _TIME.unpack_from
            for key, value in txn.cursor(db=db):
                if len(key) != 8 or len(value) < 8:
                    raise CorruptStoreError(
                        f"store {self.path!r}: queue database {db_name(incarnation)!r} has a malformed "
                        f"item (key {len(key)} bytes, value {len(value)} bytes)"
                    )
                yield unpack_seq(key)[0], len(value) - 8, unpack_time(value)[0]

    def read_items(self, incarnation: int, start: int, stop: int, limit: int) -> list[tuple[int, bytes]]:
        def read(txn: Any) -> list[tuple[int, bytes]]:
            out: list[tuple[int, bytes]] = []
            db = self._dbs.get(incarnation)
            if db is None:
                return out
            cur = txn.cursor(db=db)
            if not cur.set_range(seq_key(start)):
                return out
            for key, value in cur:
                seq = _SEQ.unpack(key)[0]
                if seq >= stop or len(out) >= limit:
                    break
                out.append((seq, value[8:]))
            return out

        return self.denv.read(read)

    def commit(self, batch: FlushBatch) -> None:
        try:
            self._commit(batch)
        except StorageFullError:
            # No room for the whole batch. Its deletions (acked, dropped, removed queues) free pages, but
            # only for later transactions (LMDB keeps the last two snapshots intact, so pages freed by
            # transaction N are reused from N + 2): commit them alone first, then one small transaction,
            # then try the batch once more, so a full store whose consumers keep acking is not stuck
            # retrying a batch that can never fit.
            if not self._release(batch):
                raise
            self._commit(batch)

    def _release(self, batch: FlushBatch) -> bool:
        """Commit only the deletions of ``batch`` (idempotent: the full batch repeats them; recovery
        derives each queue's head from its first item). False when there is nothing to delete or even
        that does not fit."""
        deletes = [e for e in batch.entries if e.delete_to > e.delete_from and e.incarnation in self._dbs]
        if not deletes and not batch.drop_incarnations:
            return False

        def apply(txn: Any) -> None:
            for inc in batch.drop_incarnations:
                db = self._dbs.get(inc)
                if db is not None:
                    txn.drop(db, delete=True)
            for entry in deletes:
                cur = txn.cursor(db=self._dbs[entry.incarnation])
                if cur.set_range(seq_key(entry.delete_from)):
                    stop_key = seq_key(entry.delete_to)
                    while cur.key() and cur.key() < stop_key:
                        if not cur.delete():
                            break

        self.releases += 1
        meta = self.denv.meta

        def step(txn: Any) -> None:  # any change: the next transaction may reuse what ``apply`` freed
            txn.put(b"releases", _U64.pack(self.releases), db=meta)

        try:
            self.denv.write(apply)
        except StorageError:
            return False
        for inc in batch.drop_incarnations:
            self._dbs.pop(inc, None)
        try:
            self.denv.write(step)
        except StorageError:
            return False
        return True

    def _commit(self, batch: FlushBatch) -> None:
        opened: list[int] = []

        def apply(txn: Any) -> None:
            for inc in batch.drop_incarnations:
                db = self._db(inc, txn, create=False)
                if db is not None:
                    txn.drop(db, delete=True)
                    self._dbs.pop(inc, None)
            for queue_id, header in batch.headers:
                key = queue_id.encode("utf-8")
                if header is None:
                    txn.delete(key, db=self._hdr)
                else:
                    txn.put(key, header, db=self._hdr)
            pack_time = _TIME.pack
            for entry in batch.entries:
                known = entry.incarnation in self._dbs
                db = self._db(entry.incarnation, txn, create=True)
                if not known:
                    opened.append(entry.incarnation)
                if entry.delete_to > entry.delete_from:
                    cur = txn.cursor(db=db)
                    if cur.set_range(seq_key(entry.delete_from)):
                        stop_key = seq_key(entry.delete_to)
                        while cur.key() and cur.key() < stop_key:
                            if not cur.delete():
                                break
                if entry.items:
                    cur = txn.cursor(db=db)
                    cur.putmulti(
                        [(seq_key(seq), pack_time(when) + item) for seq, when, item in entry.items],
                        append=True,
                    )
            for msg_id in batch.dedup_delete:
                txn.delete(msg_id, db=self._dedup)
            for msg_id, when in batch.dedup_put:
                txn.put(msg_id, pack_time(when), db=self._dedup)
            meta = self.denv.meta
            txn.put(b"journal_gen", _U64.pack(batch.covers_gen), db=meta)
            txn.put(b"next_inc", _U64.pack(batch.next_incarnation), db=meta)

        def forget_opened() -> None:
            # A handle opened inside an aborted transaction is invalid (py-lmdb docs).
            for inc in opened:
                self._dbs.pop(inc, None)
            opened.clear()

        self.denv.write(apply, on_abort=forget_opened)

    def disk_bytes(self) -> int:
        return self.denv.disk_bytes()

    def close(self) -> None:
        self.denv.close()

