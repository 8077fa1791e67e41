"""Recovery of a queue store: the durable headers and items, then the crash journal replayed over them.

The journal's record formats live here too: ``QueueStore`` writes them (``_log``) as it works, and only
recovery reads them. A record that does not fit the durable store (an append past the tail, a queue
that does not exist) stops the replay: what was applied so far is kept and the mismatch is reported.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import TYPE_CHECKING, Final

import cbor2

from .errors import CorruptStoreError
from .journal import Journal, is_tmpfs
from .lmdb_env import DAMAGE_ERRORS, DamagedStoreError
from .options import JOURNAL_DIR_UNSET, QueueKind, QueueLimits
from .ring_queue import RingQueue

if TYPE_CHECKING:
    from .queue_store import QueueStore

__all__ = ["recover"]

log = logging.getLogger("wavemq_edge.storage")

# Journal record types (first byte of a record body).
_REC_CREATE: Final = 1
_REC_APPEND: Final = 2
_REC_HEAD: Final = 3
_REC_TOUCH: Final = 4
_REC_REMOVE: Final = 5
_REC_DEDUP: Final = 6
_REC_TAIL: Final = 7
_APPEND: Final = struct.Struct("<BQQd")
_HEAD: Final = struct.Struct("<BQQB")
_TOUCH: Final = struct.Struct("<BQd")
_REMOVE: Final = struct.Struct("<BQ")
_DEDUP: Final = struct.Struct("<Bd")
_TAIL: Final = struct.Struct("<BQQ")


def recover(store: QueueStore, now: float) -> None:
    """Load the durable store, then replay the crash journal over it (a restart that was not a reboot).
    LMDB's reports of a damaged file while loading become ``DamagedStoreError``."""
    if store.options.journal_dir is None:  # before the load, which may create a new store
        raise ValueError(f"StoreOptions.{JOURNAL_DIR_UNSET}")
    try:
        _load_durable(store, now)
    except DAMAGE_ERRORS as e:
        raise DamagedStoreError(f"LMDB store at {store.options.path!r} is damaged: {e}") from None
    _replay_journal(store, now)


def _load_durable(store: QueueStore, now: float) -> None:
    loaded = store._backend.load(os.urandom(16))
    store.store_id = loaded.store_id
    store._covered_gen = loaded.covered_gen
    store._next_inc = loaded.next_incarnation
    for raw in loaded.headers:
        _load_queue(store, raw, now)
    store._removed_incs = [inc for inc in loaded.orphans if inc not in store._by_inc]
    for msg_id, wall in loaded.dedup:
        store.dedup.window.load(msg_id, store._from_wall(wall, now), durable=True)


def _replay_journal(store: QueueStore, now: float) -> None:
    journal_dir = store.options.journal_dir
    if journal_dir:
        store.journal_on_tmpfs = is_tmpfs(journal_dir) if os.path.isdir(journal_dir) else None
        journal = Journal(os.path.join(journal_dir, store.store_id.hex()), "q", store.store_id)
        store.journal_on_tmpfs = is_tmpfs(journal.directory)
        if store.journal_on_tmpfs is False:
            log.warning(
                "event=journal_not_tmpfs dir=%s (journal writes will reach the disk; "
                "set the journal dir to a tmpfs such as $RUNTIME_DIRECTORY)",
                journal.directory,
            )
        for body in journal.recover(store._covered_gen, store.journal_report):
            if not _replay(store, body, now):
                break
        denv = getattr(store._backend, "denv", None)  # the LMDB backend's environment (not the memory twin's)
        if denv is not None:
            denv.report_lost_window(store.journal_report.segments, len(store.journal_report.stale))
        journal.open_next()
        store._journal = journal
        if store.journal_report.records:
            store._dirty = True
            log.info(
                "event=journal_replayed store=%s records=%d segments=%d",
                store.options.path,
                store.journal_report.records,
                store.journal_report.segments,
            )

def _load_queue(store: QueueStore, raw: bytes, now: float) -> None:
    try:
        h = cbor2.loads(raw)
        limits = QueueLimits(int(h["ml"]), int(h["mb"]), float(h["exp"]))
        q = RingQueue(str(h["id"]), QueueKind(h["kind"]), limits, int(h["inc"]), store._from_wall(h["created"], now))
        next_seq = int(h["next"])
        drops = [int(x) for x in h["drops"]]
        active = store._from_wall(float(h["active"]), now)
    except (ValueError, KeyError, TypeError, cbor2.CBORDecodeError) as e:
        raise CorruptStoreError(f"store {store.options.path!r}: unreadable queue header: {e}") from e
    first = True
    try:
        for seq, size, wall in store._backend.iter_items(q.incarnation):
            if first:
                q.reset_empty(seq)
                first = False
            q.restore(seq, size, store._from_wall(wall, now))
    except ValueError as e:  # a gap in the keys: not something we ever write
        raise CorruptStoreError(f"store {store.options.path!r}: {e}") from e
    if first:
        q.reset_empty(max(next_seq, 1))
    q.persisted_next = q.tail
    q.drops = (drops + [0] * 6)[:6]
    q.last_active = q.persisted_last_active = active
    q.header_dirty = False
    q.has_db = True
    store._queues[q.queue_id] = q
    store._by_inc[q.incarnation] = q

def _replay(store: QueueStore, body: bytes, now: float) -> bool:
    """Apply one journal record; ``False`` stops replay (a record that does not fit means the
    journal and the durable store disagree; what was applied so far is kept)."""
    kind = body[0]
    if kind == _REC_APPEND:
        _t, inc, seq, wall = _APPEND.unpack_from(body, 0)
        q = store._by_inc.get(inc)
        if q is None:
            return _replay_mismatch(store, "append to unknown queue", inc)
        if seq < q.tail:
            return True
        if seq != q.tail:
            return _replay_mismatch(store, f"append seq {seq} but tail {q.tail}", inc)
        q.append(body[_APPEND.size :], store._from_wall(wall, now))
    elif kind == _REC_HEAD:
        _t, inc, new_head, reason = _HEAD.unpack_from(body, 0)
        q = store._by_inc.get(inc)
        if q is None:
            return _replay_mismatch(store, "head of unknown queue", inc)
        q.advance_head(new_head, reason)
    elif kind == _REC_TOUCH:
        _t, inc, wall = _TOUCH.unpack_from(body, 0)
        q = store._by_inc.get(inc)
        if q is not None:
            q.touch(store._from_wall(wall, now), store.options.touch_persist_granularity_s)
    elif kind == _REC_CREATE:
        h = cbor2.loads(body[1:])
        if int(h["inc"]) in store._by_inc:
            return True
        limits = QueueLimits(int(h["ml"]), int(h["mb"]), float(h["exp"]))
        old = store._queues.get(str(h["id"]))
        if old is not None:
            store._forget_queue(old)
        q = RingQueue(str(h["id"]), QueueKind(h["kind"]), limits, int(h["inc"]), store._from_wall(h["created"], now))
        store._queues[q.queue_id] = q
        store._by_inc[q.incarnation] = q
        store._next_inc = max(store._next_inc, q.incarnation + 1)
    elif kind == _REC_REMOVE:
        _t, inc = _REMOVE.unpack_from(body, 0)
        q = store._by_inc.get(inc)
        if q is not None:
            store._forget_queue(q)
    elif kind == _REC_TAIL:
        _t, inc, tail = _TAIL.unpack_from(body, 0)
        q = store._by_inc.get(inc)
        if q is not None and q.depth == 0 and tail > q.tail:
            q.reset_empty(tail)
    elif kind == _REC_DEDUP:
        _t, wall = _DEDUP.unpack_from(body, 0)
        store.dedup.window.load(body[_DEDUP.size :], store._from_wall(wall, now), durable=False)
    else:
        return _replay_mismatch(store, f"unknown record type {kind}", 0)
    return True

def _replay_mismatch(store: QueueStore, what: str, inc: int) -> bool:
    log.error("event=journal_mismatch store=%s detail=%r incarnation=%d", store.options.path, what, inc)
    store.journal_report.corrupt.append(f"replay stopped: {what} (incarnation {inc})")
    return False
