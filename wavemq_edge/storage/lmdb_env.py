"""The LMDB environment: directory checks, the single-process lock, open, and map growth.

The directory is created 0700 and every file in it 0600, whatever the umask (a store holds message
payloads); an existing directory that others may enter is kept as it is, with a warning.
``DamagedStoreError`` says LMDB itself found the store damaged (bad page type, page out of range, no
valid meta page, a file shorter than its last page): the caller may set the store aside
(``store_health.set_aside``). Any other failure to open (permissions, a read-only filesystem, another
kind of store) is a ``StorageError`` that names the path and the cause.

Opened with ``subdir``, ``sync=True``, ``metasync=True`` and without ``writemap``/``map_async``: a
committed transaction is on the card, and a power cut during a commit leaves the previous one intact
(LMDB's copy-on-write B+tree with two meta pages). ``writemap`` was measured at 1.8x device bytes and
a file as large as the map (bench_storage.py), so we keep the default ``malloc``-ed dirty pages.

``MapFullError`` never escapes: ``write()`` aborts, doubles the map (up to ``max_map_size``) and retries;
past the maximum, or when the filesystem is full (ENOSPC), it raises ``StorageFullError`` and the caller
keeps the data for a later attempt (or sheds backlog, counted, when configured to). Resizing needs
no transaction open in this process, so readers and the resize share ``lock`` (a ``threading.Lock``:
the flush writer runs in a worker thread while the event loop reads).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import lmdb

from .errors import CorruptStoreError, StorageError, StoreLockedError, UnexpectedFilesError

__all__ = ["DAMAGE_ERRORS", "LOCK_FILE", "DamagedStoreError", "DurableEnv", "StorageFullError", "StorageWriteError",
           "WrongStoreError", "ensure_private_dir", "is_damage"]

log = logging.getLogger("wavemq_edge.storage")

LOCK_FILE: Final = "wavemq-edge.lock"
#: Files we expect in a data directory; anything else means the path is wrong or shared.
_OWN_FILES: Final = frozenset({"data.mdb", "lock.mdb", LOCK_FILE, "lost+found"})
_MAGIC_KEY: Final = b"magic"
#: LMDB's errors that mean the file itself is damaged (not a permission, a full disk or a busy store).
DAMAGE_ERRORS: Final = (lmdb.CorruptedError, lmdb.PageNotFoundError, lmdb.InvalidError, lmdb.BadTxnError,
                        lmdb.PanicError, lmdb.IncompatibleError, lmdb.PageFullError)
_STATE_KEY: Final = b"state"
_STATE_OPEN: Final = b"open"
_STATE_CLOSED: Final = b"closed"
_LAST_COMMIT_KEY: Final = b"last_commit"
_F64: Final = struct.Struct("<d")
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600

T = TypeVar("T")


class StorageFullError(StorageError):
    """No room for a write transaction: the LMDB map cannot grow past ``max_map_size``, or the
    filesystem is full (ENOSPC). Nothing of it was committed; the store keeps the data and retries
    (and sheds the oldest backlog only under ``StoreOptions.shed_when_full``)."""


class StorageWriteError(StorageError):
    """A durable write transaction failed (I/O error, disk full); nothing of it was committed."""


class DamagedStoreError(CorruptStoreError):
    """LMDB reports the store's file damaged; setting the directory aside is safe (nothing else is
    wrong: the path is ours, the lock was ours, the filesystem is writable)."""


class WrongStoreError(CorruptStoreError):
    """The directory holds a sound LMDB environment that is not a store of this kind (another kind of
    our stores, or someone else's database such as the WAVE database): a wrong path, never set aside."""


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` (raised while opening a store) says the store's data is damaged, so setting it
    aside is the remedy; a wrong path, a lock held, a permission or a read-only filesystem is not."""
    if isinstance(exc, WrongStoreError):
        return False
    return isinstance(exc, (CorruptStoreError, *DAMAGE_ERRORS))


_warned_dirs: set[str] = set()


def ensure_private_dir(path: str, warn: bool = True) -> bool:
    """Create ``path`` (and missing parents) 0700 whatever the umask. ``False`` when it already exists
    and its group or others may enter it; with ``warn``, that is logged once per directory."""
    if os.path.isdir(path):
        mode = os.stat(path).st_mode & 0o777
        if not mode & 0o077:
            return True
        if warn and os.path.abspath(path) not in _warned_dirs:
            _warned_dirs.add(os.path.abspath(path))
            log.warning("event=data_dir_mode path=%s mode=%03o (group or others can reach the data; "
                        "chmod 700 %s)", path, mode, path)
        return False
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        ensure_private_dir(parent, warn=False)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return ensure_private_dir(path, warn)
    os.chmod(path, DIR_MODE)  # mkdir's mode is masked by the umask
    return True


def check_lmdb_build() -> None:
    """py-lmdb < 2.3 has the ``set_mapsize`` handle bug (handles go stale after a resize), and an LMDB
    1.x build writes a data format 0.9 builds cannot open; we need neither."""
    try:
        major, minor = (int(x) for x in str(lmdb.__version__).split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    if (major, minor) < (2, 3):
        raise StorageError(f"py-lmdb {lmdb.__version__} is too old: need >= 2.3 (set_mapsize handle bug)")
    if tuple(lmdb.version()[:2]) != (0, 9):
        raise StorageError(f"py-lmdb is built against LMDB {lmdb.version()}; stores use the LMDB 0.9 data format")


#: ``strerror`` texts of the errors that mean "no room" (py-lmdb reports system errors as text).
_FULL_TEXTS: Final = tuple(os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
#: LMDB turns a short page write into EIO (mdb.c, ``mdb_page_flush``): on a filesystem with less than
#: this free, an EIO at commit is a full disk too.
_NEARLY_FULL_BYTES: Final = 1 << 20


def _disk_full(exc: lmdb.Error, path: str) -> bool:
    """The filesystem is full (ENOSPC, quota, file size limit, or a short write on a full disk)."""
    text = str(exc)
    if any(t in text for t in _FULL_TEXTS):
        return True
    if os.strerror(errno.EIO) in text:
        try:
            st = os.statvfs(path)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES
    return False


class DurableEnv:
    """One LMDB environment owned by this process, with our magic in the ``meta`` database."""

    def __init__(self, path: str, magic: bytes, map_size: int, max_map_size: int, max_dbs: int) -> None:
        self.path = path
        self.magic = magic
        self.max_map_size = max_map_size
        self.lock = threading.Lock()
        self.commits = 0
        self.map_growths = 0
        self._lock_fd = -1
        #: the previous run did not close the store (kill -9, power cut); see ``report_lost_window``
        self.previous_run_unclosed = False
        self.last_commit_wall: float | None = None
        check_lmdb_build()
        try:
            self._check_dir()
            self._acquire_lock()
        except OSError as e:
            raise StorageError(f"cannot open {e.filename or path}: {e.strerror or e}") from None
        try:
            self.env = lmdb.open(
                path,
                map_size=map_size,
                subdir=True,
                max_dbs=max_dbs,
                sync=True,
                metasync=True,
                writemap=False,
                map_async=False,
                readahead=False,  # the backlog can exceed RAM on a Pi: no speculative reads
                meminit=False,
                max_readers=64,
                mode=FILE_MODE,
            )
        except lmdb.Error as e:
            self._release_lock()
            raise _open_error(path, e) from None
        try:
            self.map_size = int(self.env.info()["map_size"])
            self._check_length()
            self.meta = self.env.open_db(b"meta", create=True)
            self._check_magic()
            self._mark_open()
        except (lmdb.Error, StorageError) as e:
            self.env.close()
            self._release_lock()
            if isinstance(e, lmdb.Error):
                raise _open_error(path, e) from None
            raise

    def _check_dir(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise UnexpectedFilesError(f"store path {self.path!r} exists and is not a directory")
        ensure_private_dir(self.path)
        names = set(os.listdir(self.path))
        strange = sorted(names - _OWN_FILES)
        if strange:
            raise UnexpectedFilesError(
                f"store directory {self.path!r} holds files that are not ours: {strange[:5]!r}; "
                f"expected only {sorted(_OWN_FILES)!r} (wrong path, or two stores sharing a directory?)"
            )
        if "data.mdb" in names and os.path.getsize(os.path.join(self.path, "data.mdb")) == 0:
            # LMDB itself would treat an empty data file as a new store; an empty file where a store
            # was is truncation, so say so instead of silently starting empty.
            raise DamagedStoreError(f"store file {os.path.join(self.path, 'data.mdb')!r} is empty (truncated?)")

    def _check_length(self) -> None:
        """A data file shorter than its last page (truncated copy, full disk during a restore) would
        make LMDB fault (SIGBUS) on the first read past the end; refuse it up front instead."""
        info = self.env.info()
        psize = int(self.env.stat()["psize"])
        need = (int(info["last_pgno"]) + 1) * psize
        have = os.path.getsize(os.path.join(self.path, "data.mdb"))
        if have < need:
            raise DamagedStoreError(
                f"store file {os.path.join(self.path, 'data.mdb')!r} has {have} bytes but its last page "
                f"ends at {need} (truncated)"
            )

    def _acquire_lock(self) -> None:
        lock_path = os.path.join(self.path, LOCK_FILE)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise StoreLockedError(f"store {self.path!r} is locked by another process ({lock_path})") from e
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _check_magic(self) -> None:
        with self.env.begin(db=self.meta) as txn:
            found = txn.get(_MAGIC_KEY)
            empty = txn.stat(self.meta)["entries"] == 0
        if found is None:
            with self.env.begin() as txn:
                main_entries = txn.stat()["entries"]
            if not empty or main_entries > 1:
                raise WrongStoreError(f"LMDB store at {self.path!r} has no {self.magic!r} marker (not one of "
                                      f"our stores: a wrong path?)")
            with self.env.begin(write=True, db=self.meta) as txn:
                txn.put(_MAGIC_KEY, self.magic)
            self.commits += 1
        elif bytes(found) != self.magic:
            raise WrongStoreError(f"LMDB store at {self.path!r} is a {bytes(found)!r} store, expected {self.magic!r}")

    def _mark_open(self) -> None:
        """Record that the store is open (``close`` records that it was closed), so the next start
        knows whether this run ended without closing it (``kill -9``, a power cut). The commit also
        makes LMDB read its free-page list, which no read touches: damage there is found now rather
        than at the first flush. One small synced commit per start."""
        with self.env.begin(db=self.meta) as txn:
            state = txn.get(_STATE_KEY)
            last = txn.get(_LAST_COMMIT_KEY)
        self.previous_run_unclosed = state is not None and bytes(state) == _STATE_OPEN
        self.last_commit_wall = _F64.unpack(bytes(last))[0] if last is not None and len(last) == 8 else None
        try:
            with self.env.begin(write=True, db=self.meta) as txn:
                txn.put(_STATE_KEY, _STATE_OPEN)
        except lmdb.MapFullError:
            pass  # full, not damaged: write() grows the map when it needs to

    def report_lost_window(self, journal_segments: int, journal_stale: int) -> None:
        """Log once when the previous run ended without closing the store and no journal of it was
        replayed (a reboot wiped the tmpfs journal): what it accepted after its last commit is gone,
        the documented loss of one flush window. How many messages that was, nothing durable knows:
        they were only in the journal; the figures given are the last commit's time and age."""
        if not self.previous_run_unclosed or journal_segments:
            return
        age = time.time() - self.last_commit_wall if self.last_commit_wall is not None else -1.0
        log.warning("event=unflushed_window_lost store=%s last_flush=%s seconds_since_last_flush=%.0f "
                    "stale_journal_segments=%d (the previous run ended without closing the store and its "
                    "crash journal is gone, as after a reboot: what it accepted after the last flush is lost)",
                    self.path, _utc(self.last_commit_wall), age, journal_stale)

    def open_db(self, name: bytes, txn: Any = None, create: bool = True) -> Any:
        return self.env.open_db(name, txn=txn, create=create)

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(txn)`` in a read transaction (held under ``lock`` so a resize cannot race it)."""
        with self.lock, self.env.begin(buffers=False) as txn:
            return fn(txn)

    def write(self, fn: Callable[[Any], None], on_abort: Callable[[], None] | None = None) -> None:
        """Run ``fn(txn)`` in one write transaction committed with a full sync. On ``MapFullError``
        the map doubles and ``fn`` runs again (it must be repeatable; ``on_abort`` resets state)."""
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    fn(txn)
                    txn.put(_LAST_COMMIT_KEY, _F64.pack(time.time()), db=self.meta)  # meta is dirty anyway
                self.commits += 1
                return
            except lmdb.MapFullError:
                if on_abort is not None:
                    on_abort()
                if self.map_size >= self.max_map_size:
                    raise StorageFullError(
                        f"LMDB store {self.path!r} is full at map_size={self.map_size} "
                        f"(max_map_size={self.max_map_size})"
                    ) from None
                new_size = min(self.map_size * 2, self.max_map_size)
                with self.lock:
                    self.env.set_mapsize(new_size)
                log.warning("event=map_grown path=%s from=%d to=%d", self.path, self.map_size, new_size)
                self.map_size = new_size
                self.map_growths += 1
            except lmdb.Error as e:
                if on_abort is not None:
                    on_abort()
                if _disk_full(e, self.path):
                    raise StorageFullError(f"write transaction on {self.path!r} failed, the disk is full: {e}") from e
                raise StorageWriteError(f"write transaction on {self.path!r} failed: {e}") from e

    def disk_bytes(self) -> int:
        try:
            return os.path.getsize(os.path.join(self.path, "data.mdb"))
        except OSError:
            return 0

    def close(self) -> None:
        try:
            with self.env.begin(write=True, db=self.meta) as txn:
                txn.put(_STATE_KEY, _STATE_CLOSED)
        except lmdb.Error as e:  # a full or failing disk: the next start only misses the marker
            log.warning("event=store_close_mark_failed path=%s error=%r", self.path, str(e))
        self.env.close()
        self._release_lock()


def _open_error(path: str, e: lmdb.Error) -> StorageError:
    if isinstance(e, DAMAGE_ERRORS):
        return DamagedStoreError(f"LMDB store at {path!r} is damaged: {e}")
    return StorageError(f"cannot open LMDB store at {path!r}: {e}")


def _utc(wall: float | None) -> str:
    return "unknown" if wall is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))
