"""A store's health: a read-only walk that LMDB itself judges, and setting a damaged store aside.

LMDB keeps no checksums; what it does check is the shape of every page it reads (page type, page
number, bounds). ``check_store`` reads every page reachable from the store's roots: each named
database, every key and every value (so overflow pages too), in one read transaction of a read-only
environment, and reports ``ok`` with counts or ``corrupt`` with LMDB's own error. It never writes.

At start-up, a store that LMDB reports damaged (``DamagedStoreError``) is not repaired and never
deleted: ``set_aside`` renames its directory to ``<dir>.corrupt-<UTC time>`` and the caller opens a
fresh one, so a router under ``Restart=always`` comes up instead of looping on the same error.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import lmdb

from .lmdb_env import DAMAGE_ERRORS, DamagedStoreError

__all__ = ["SetAside", "StoreHealth", "check_isolated", "check_store", "set_aside"]

log = logging.getLogger("wavemq_edge.storage")

#: The suffix of a set-aside store directory: ``<dir>.corrupt-20261129T162700Z``.
SET_ASIDE_INFIX: Final = ".corrupt-"
_KINDS: Final = {b"wavemq-edge-queues/1": "queue", b"wavemq-edge-persist/1": "persist"}


@dataclass(frozen=True, slots=True)
class SetAside:
    """One store set aside at start-up (status shows it; the counter counts them)."""

    store: str
    path: str
    moved_to: str
    reason: str
    wall: float


@dataclass(slots=True)
class StoreHealth:
    """What ``check_store`` found: ``state`` is ``ok``, ``corrupt`` or ``absent``."""

    path: str
    state: str
    kind: str = "?"
    databases: int = 0
    entries: int = 0
    bytes: int = 0
    error: str = ""
    per_db: dict[str, int] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.state != "corrupt"

    def line(self) -> str:
        if self.state == "absent":
            return f"{self.path}: absent (no data.mdb)"
        if self.state == "corrupt":
            kind = f" ({self.kind} store)" if self.kind in ("queue", "persist") else ""
            return f"{self.path}: corrupt{kind}: {self.error}"
        if self.kind == "queue":
            queues = self.per_db.get("hdr", 0)  # one header per queue (an empty one has no database yet)
            items = sum(n for name, n in self.per_db.items() if name.startswith("q."))
            what = f"{queues} queues, {items} items, {self.per_db.get('dedup', 0)} dedup ids"
        elif self.kind == "persist":
            what = f"{self.per_db.get('msg', 0)} persisted messages"
        else:
            what = f"{self.databases} databases, {self.entries} entries"
        return f"{self.path}: ok ({self.kind} store): {what}, {self.bytes} bytes on disk"


def _kind(env: Any, health: StoreHealth) -> None:
    """The store's kind from its magic, read first so a damaged store still says what it was."""
    with contextlib.suppress(lmdb.Error):
        with env.begin() as txn:
            magic = txn.get(b"magic", db=env.open_db(b"meta", txn=txn, create=False))
        health.kind = _KINDS.get(bytes(magic), "unknown") if magic is not None else "unknown"


def _walk(env: Any, health: StoreHealth) -> None:
    with env.begin(buffers=True) as txn:
        names = [bytes(k) for k, _v in txn.cursor()]
        for name in names:
            db = env.open_db(name, txn=txn, create=False)
            n = 0
            for _key, value in txn.cursor(db=db):
                n += 1
                health.entries += 1
                _ = len(value)  # reading the length touches the value's page (an overflow page for a big one)
            health.per_db[name.decode("utf-8", "replace")] = n
            health.databases += 1
    if not names:
        health.kind = "empty"


def check_store(path: str, probe: bool = True) -> StoreHealth:
    """Walk the store at ``path`` read-only; LMDB's errors become ``state="corrupt"``. With ``probe``
    (and write access), an aborted write transaction also makes LMDB read its free-page list, which no
    read touches; it changes nothing in the file."""
    health = StoreHealth(path=path, state="ok")
    data = os.path.join(path, "data.mdb")
    if not os.path.isfile(data):
        health.state = "absent"
        return health
    health.bytes = os.path.getsize(data)
    if health.bytes == 0:
        health.state, health.error = "corrupt", "data.mdb is empty (truncated?)"
        return health
    env = None
    try:
        # LMDB creates lock.mdb even for a read-only open: only the store's own user, and only when the
        # router made one, uses it (a live store is then read consistently). Otherwise read without it,
        # creating nothing that would later be another user's file in the store's directory.
        own = os.stat(data).st_uid == os.geteuid() and os.path.isfile(os.path.join(path, "lock.mdb"))
        try:
            env = lmdb.open(path, readonly=True, subdir=True, max_dbs=4096, lock=own, readahead=False)
        except lmdb.ReadonlyError:  # no write access to lock.mdb: read without it
            own = False
            env = lmdb.open(path, readonly=True, subdir=True, max_dbs=4096, lock=False, readahead=False)
        info = env.info()
        need = (int(info["last_pgno"]) + 1) * int(env.stat()["psize"])
        if health.bytes < need:
            raise DamagedStoreError(f"data.mdb has {health.bytes} bytes but its last page ends at {need} (truncated)")
        _kind(env, health)
        _walk(env, health)
        if probe and own and os.access(path, os.W_OK):
            env.close()
            env = lmdb.open(path, subdir=True, max_dbs=4096, readahead=False)
            txn = env.begin(write=True)
            try:
                txn.put(b"wavemq-edge-probe", b"")
            except lmdb.MapFullError:
                pass
            finally:
                txn.abort()
    except (lmdb.Error, DamagedStoreError) as exc:
        if isinstance(exc, lmdb.Error) and not isinstance(exc, DAMAGE_ERRORS):
            raise
        health.state, health.error = "corrupt", str(exc)
    finally:
        if env is not None:
            env.close()
    return health


def set_aside(path: str, store: str, reason: str, wall: float | None = None) -> SetAside:
    """Rename the store directory ``path`` to ``<path>.corrupt-<UTC time>`` (never deleted) and say
    so loudly; the caller then opens a fresh store at ``path``."""
    wall = time.time() if wall is None else wall
    base = f"{path.rstrip(os.sep)}{SET_ASIDE_INFIX}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(wall))}"
    target, n = base, 1
    while os.path.lexists(target):
        n += 1
        target = f"{base}.{n}"
    os.rename(path, target)
    log.error("event=store_set_aside store=%s path=%s moved_to=%s reason=%r (the store LMDB reports damaged "
              "was kept, not repaired; a fresh one is used; `wavemq-edge check-store %s` inspects it)",
              store, path, target, reason, target)
    return SetAside(store=store, path=path, moved_to=target, reason=reason, wall=wall)


def check_isolated(path: str, probe: bool = True) -> StoreHealth:
    """``check_store`` in a forked child: LMDB aborts the process on some damage (an assertion such as
    ``IS_LEAF(mp)`` on a zeroed page) instead of returning an error, and that must not take the router
    or the command down. The child's stderr (LMDB's assertion text) becomes the error."""
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        return StoreHealth(path=path, state="absent")
    import json

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's lines run after fork, outside coverage
        code = 0
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(err_w, 2)
            faulthandler.disable()  # an abort here is the finding, not a crash to dump
            os.write(out_w, json.dumps(asdict(check_store(path, probe))).encode())
        except BaseException as exc:  # reported to the parent, whatever it is
            os.write(err_w, f"{type(exc).__name__}: {exc}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    out, err = _read_all(out_r), _read_all(err_r)
    _pid, status = os.waitpid(pid, 0)
    text = err.decode("utf-8", "replace").strip().splitlines()
    last = text[-1] if text else ""
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        return StoreHealth(path=path, state="corrupt", bytes=os.path.getsize(os.path.join(path, "data.mdb")),
                           error=f"LMDB stopped the check with {sig}: {last or 'no message'}")
    if os.WEXITSTATUS(status) != 0 or not out:
        raise OSError(f"checking {path}: {last or 'the check failed'}")
    return StoreHealth(**json.loads(out))


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
